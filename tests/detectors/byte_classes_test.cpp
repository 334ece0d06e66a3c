#include "detectors/byte_classes.hpp"

#include <doctest/doctest.h>

#include <random>
#include <string>

using namespace leakscope::detectors;

TEST_CASE("a value's byte classes come out the same 16 bytes a step as a byte at a time") {
  // Bytes drawn mostly from the classes' edges (each range's neighbours, the trigger marks, the
  // code-word letters) and sometimes from anywhere, at every length and alignment around the
  // 16-byte steps, and past the 255 steps after which the digit counts are emptied.
  static constexpr char edge_bytes[] = "/09:`az{@AZ[dtToO%,;|+=&\x7f\x80\xff -_.x";
  const std::string edges(edge_bytes, sizeof edge_bytes - 1);
  std::mt19937 rng(20261125);
  for (int round = 0; round < 20000; ++round) {
    const std::size_t size = round < 19000 ? rng() % 80 : 4000 + rng() % 200;
    std::string text(size + 15, '\0');
    for (auto& c : text) {
      c = rng() % 4 == 0 ? static_cast<char>(rng()) : edges[rng() % edges.size()];
    }
    if (rng() % 3 == 0) {
      std::fill(text.begin(), text.end(), "0aZx"[rng() % 4]);  // one class all along
    }
    const std::string_view v = std::string_view(text).substr(rng() % 16, size);
    const auto fast = summarize_bytes(v);
    const auto slow = summarize_bytes_one_by_one(v);
    CAPTURE(v.size());
    REQUIRE(fast.seen == slow.seen);
    REQUIRE(fast.digits == slow.digits);
  }
}

TEST_CASE("a value's byte classes: what each says") {
  CHECK(summarize_bytes("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx").seen == char_class::lower);
  CHECK(summarize_bytes("XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX").seen == char_class::upper);
  const auto digits = summarize_bytes(std::string(5000, '7'));
  CHECK(digits.seen == char_class::digit);
  CHECK(digits.digits == 5000);
  CHECK((summarize_bytes("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=aaaa").seen & char_class::trigger) != 0);
  CHECK((summarize_bytes("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xe7\xa0\x81").seen & char_class::trigger) != 0);
  CHECK((summarize_bytes("your code is ready, not an otp...").seen & char_class::code_word) == char_class::code_word);
  CHECK((summarize_bytes("deadbeefdeadbeefdeadbeefdeadbeef").seen & char_class::code_word) == char_class::code_middle);
}
