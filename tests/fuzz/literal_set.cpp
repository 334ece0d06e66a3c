// The multi-literal matcher against a search for each literal: literals are carved from the
// input itself, so the fuzzer steers both the set and the text.
#include "detectors/literals.hpp"
#include "fuzz.hpp"

#include <algorithm>
#include <string>
#include <vector>

using namespace leakscope::detectors;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fuzz::input in(data, size);
  // "lit1\0lit2\0…\0\0text"
  std::vector<std::string> literals;
  std::string_view rest = in.rest;
  while (!rest.empty() && literals.size() < 64) {
    const auto nul = rest.find('\0');
    if (nul == 0 || nul == std::string_view::npos) {
      rest.remove_prefix(nul == 0 ? 1 : rest.size());
      break;
    }
    literals.emplace_back(rest.substr(0, nul));
    rest.remove_prefix(nul + 1);
  }
  const literal_set set(literals);
  std::vector<std::uint32_t> got, want;
  set.find_all(rest, got);
  for (std::uint32_t i = 0; i < literals.size(); ++i) {
    if (rest.find(literals[i]) != std::string_view::npos) {
      want.push_back(i);
    }
  }
  FUZZ_CHECK(got == want);
  // Every occurrence, by position.
  std::vector<literal_set::occurrence> each;
  set.find_each(rest, each);
  std::vector<std::pair<std::size_t, std::uint32_t>> got_at, want_at;
  for (const auto& o : each) {
    got_at.emplace_back(o.at, o.id);
  }
  for (std::uint32_t i = 0; i < literals.size(); ++i) {
    for (auto at = rest.find(literals[i]); at != std::string_view::npos; at = rest.find(literals[i], at + 1)) {
      want_at.emplace_back(at, i);
    }
  }
  std::sort(want_at.begin(), want_at.end());
  FUZZ_CHECK(got_at == want_at);
  return 0;
}
