# The two set-up commands: `make run` and `make test`. Both install what is missing first.
BUILD ?= build
CONFIG ?= config/leakscope.yaml
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60

.PHONY: deps build run test test-sanitize fuzz clean

deps:
	scripts/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/app/leakscope run -c $(CONFIG)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The whole suite with AddressSanitizer and UBSan: any report fails the test that caused it.
test-sanitize: deps
	cmake -S . -B $(BUILD)-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEAKSCOPE_SANITIZE=ON >/dev/null
	cmake --build $(BUILD)-sanitize -j $(JOBS)
	cd $(BUILD)-sanitize && LEAKSCOPE_SANITIZED=1 ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

# libFuzzer on every target of tests/fuzz for FUZZ_SECONDS each (default 60); `make test`
# replays their seed corpora.
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz

clean:
	rm -rf $(BUILD) $(BUILD)-sanitize build-fuzz
