#pragma once
// Shared by the fuzz targets: each defines LLVMFuzzerTestOneInput. Built with clang's libFuzzer
// by `make fuzz`, and with replay_main.cpp by `make test`, which runs every input of the
// target's corpus (tests/fuzz/corpus/<target>/) once.
//
// A failed `check` aborts: libFuzzer keeps the input as a crash, replay fails the test.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (false)

namespace fuzz {

// The input as bytes, with the first byte taken off as a choice (encoding, split point, …).
struct input {
  std::uint8_t choice = 0;
  std::string_view rest;
  input(const std::uint8_t* data, std::size_t size) {
    if (size > 0) {
      choice = data[0];
      rest = std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1);
    }
  }
};

}  // namespace fuzz
