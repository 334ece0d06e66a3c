# The two set-up commands: `make run` and `make test`. Both install what is missing first.
BUILD ?= build
CONFIG ?= config/leakscope.yaml
JOBS ?= $(shell nproc)

.PHONY: deps build run test clean

deps:
	scripts/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/app/leakscope run -c $(CONFIG)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD)
