#include "detectors/literals.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>

using leakscope::detectors::literal_set;

namespace {

std::vector<std::uint32_t> find(const literal_set& set, std::string_view text) {
  std::vector<std::uint32_t> ids;
  set.find_all(text, ids);
  return ids;
}

// The reference: every literal searched for on its own.
std::vector<std::uint32_t> naive(const std::vector<std::string>& literals, std::string_view text) {
  std::vector<std::uint32_t> ids;
  for (std::uint32_t i = 0; i < literals.size(); ++i) {
    if (!literals[i].empty() && text.find(literals[i]) != std::string_view::npos) {
      ids.push_back(i);
    }
  }
  return ids;
}

}  // namespace

TEST_CASE("literals of every width are found at the start, middle and end, once each") {
  const std::vector<std::string> literals = {"865432101234567", "abcd1234", "4829", "48291", "李", "ab", "", "865432101234567x"};
  const literal_set set(literals);
  CHECK(find(set, "865432101234567").size() == 1);
  CHECK(find(set, "865432101234567") == std::vector<std::uint32_t>{0});
  CHECK(find(set, "x=865432101234567&y=865432101234567") == std::vector<std::uint32_t>{0});
  CHECK(find(set, "865432101234567x") == std::vector<std::uint32_t>{0, 7});
  CHECK(find(set, "zzabcd1234") == std::vector<std::uint32_t>{1, 5});
  CHECK(find(set, "code 48291.") == std::vector<std::uint32_t>{2, 3});
  CHECK(find(set, "4829") == std::vector<std::uint32_t>{2});
  CHECK(find(set, "482") .empty());
  CHECK(find(set, "张三李四") == std::vector<std::uint32_t>{4});
  CHECK(find(set, "") .empty());
  CHECK(find(set, "86543210123456").empty());  // one byte short
}

TEST_CASE("a literal is not reported from bytes past the end of the buffer") {
  const std::string backing = "86543210123456789";
  const literal_set set({"8654321012345678"});
  CHECK(find(set, std::string_view(backing).substr(0, 15)).empty());
  CHECK(find(set, std::string_view(backing).substr(0, 16)) == std::vector<std::uint32_t>{0});
}

TEST_CASE("literals sharing their first bytes are told apart") {
  const std::vector<std::string> literals = {"13812345678", "13812345679", "1381234567", "13812345"};
  const literal_set set(literals);
  CHECK(find(set, "tel=13812345679") == std::vector<std::uint32_t>{1, 2, 3});
  CHECK(find(set, "tel=1381234567") == std::vector<std::uint32_t>{2, 3});
}

TEST_CASE("thousands of literals agree with a search for each, over random and binary text") {
  std::mt19937 rng(42);
  const std::string alphabet = "0123456789abcdef";
  std::vector<std::string> literals;
  for (int i = 0; i < 3000; ++i) {
    std::string l(4 + rng() % 40, '0');
    for (auto& c : l) {
      c = alphabet[rng() % alphabet.size()];
    }
    literals.push_back(l);
  }
  const literal_set set(literals);
  for (int round = 0; round < 20; ++round) {
    std::string text(4096, '\0');
    for (auto& c : text) {
      c = round % 2 ? static_cast<char>(rng()) : alphabet[rng() % alphabet.size()];
    }
    // Plant some literals, one across the very end of the buffer.
    for (int k = 0; k < 5; ++k) {
      const auto& l = literals[rng() % literals.size()];
      text.replace(rng() % (text.size() - l.size()), l.size(), l);
    }
    const auto& tail = literals[rng() % literals.size()];
    text.replace(text.size() - tail.size(), tail.size(), tail);
    CHECK(find(set, text) == naive(literals, text));
  }
}

// With no literal shorter than m bytes only every (m - 3)th position (8 to 15 bytes) or
// (m - 7)th (16 and more) is looked at: a literal must be found whatever its position relative
// to those samples, and at the buffer's edges.
TEST_CASE("long literals are found at every position relative to the sampled ones") {
  for (const std::size_t shortest : {8u, 9u, 10u, 15u, 16u, 17u, 22u, 40u}) {
    CAPTURE(shortest);
    std::mt19937 rng(static_cast<unsigned>(shortest));
    std::vector<std::string> literals;
    for (int i = 0; i < 200; ++i) {
      std::string l(shortest + rng() % 30, '0');
      for (auto& c : l) {
        c = static_cast<char>('a' + rng() % 26);
      }
      literals.push_back(l);
    }
    literals[0].resize(shortest);
    const literal_set set(literals);
    for (std::size_t at = 0; at < 40; ++at) {
      for (const std::uint32_t id : {0u, 1u, 199u}) {
        const auto& l = literals[id];
        std::string text(at, '.');
        text += l;
        CHECK(find(set, text) == std::vector<std::uint32_t>{id});
        text += std::string(at % 7, '.');
        CHECK(find(set, text) == std::vector<std::uint32_t>{id});
        CHECK(find(set, std::string_view(text).substr(0, at + l.size() - 1)).empty());
      }
    }
    std::string text(8192, '.');
    for (int k = 0; k < 40; ++k) {
      const auto& l = literals[rng() % literals.size()];
      text.replace(rng() % (text.size() - l.size()), l.size(), l);
    }
    CHECK(find(set, text) == naive(literals, text));
  }
}

TEST_CASE("every occurrence is reported at its position, overlapping and repeated ones included") {
  std::mt19937 rng(5);
  const std::string alphabet = "0123ab";
  std::vector<std::string> literals = {"aaaa", "aaaaaaaa", "abab", "ababababab", "0123"};
  for (int i = 0; i < 300; ++i) {
    std::string l(4 + rng() % 20, '0');
    for (auto& c : l) {
      c = alphabet[rng() % alphabet.size()];
    }
    literals.push_back(l);
  }
  literals.push_back("a");  // a one-byte profile value is searched on its own
  const literal_set set(literals);
  for (int round = 0; round < 20; ++round) {
    std::string text(2000, 'a');
    for (auto& c : text) {
      c = round == 0 ? 'a' : alphabet[rng() % alphabet.size()];
    }
    std::vector<literal_set::occurrence> found;
    set.find_each(text, found);
    std::vector<std::pair<std::size_t, std::uint32_t>> got, want;
    for (const auto& o : found) {
      got.emplace_back(o.at, o.id);
    }
    for (std::uint32_t id = 0; id < literals.size(); ++id) {
      for (auto at = text.find(literals[id]); at != std::string::npos; at = text.find(literals[id], at + 1)) {
        want.emplace_back(at, id);
      }
    }
    std::sort(want.begin(), want.end());
    CHECK(got == want);
  }
}
