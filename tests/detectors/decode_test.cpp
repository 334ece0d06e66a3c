#include "detectors/decode.hpp"

#include <brotli/encode.h>
#include <doctest/doctest.h>
#include <zlib.h>
#include <zstd.h>

#include <random>

using namespace leakscope::detectors;

namespace {

std::string deflate_stream(const std::string& text, int window_bits, int level, int strategy) {
  z_stream z{};
  deflateInit2(&z, level, Z_DEFLATED, window_bits, 9, strategy);
  std::string out(deflateBound(&z, text.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

// Shared with the other detector tests.
std::string deflate_with(const std::string& text, int window_bits) {
  return deflate_stream(text, window_bits, Z_BEST_COMPRESSION, Z_DEFAULT_STRATEGY);
}

namespace {

std::string gzip(const std::string& t) { return deflate_with(t, 15 + 16); }
std::string zlib(const std::string& t) { return deflate_with(t, 15); }
std::string raw_deflate(const std::string& t) { return deflate_with(t, -15); }

std::string brotli(const std::string& t) {
  std::string out(BrotliEncoderMaxCompressedSize(t.size()) + 64, '\0');
  std::size_t n = out.size();
  BrotliEncoderCompress(9, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, t.size(),
                        reinterpret_cast<const std::uint8_t*>(t.data()), &n, reinterpret_cast<std::uint8_t*>(out.data()));
  out.resize(n);
  return out;
}

std::string zstd(const std::string& t) {
  std::string out(ZSTD_compressBound(t.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), t.data(), t.size(), 19));
  return out;
}

const std::string text = "{\"imei\":\"865432101234564\",\"pad\":\"" + std::string(1000, 'p') + "\"}";

}  // namespace

TEST_CASE("each coding round-trips through decode_content") {
  CHECK(decode_content(gzip(text), "gzip", 1 << 20).data == text);
  CHECK(decode_content(gzip(text), "x-gzip", 1 << 20).chain == std::vector<std::string>{"gzip"});
  CHECK(decode_content(zlib(text), "deflate", 1 << 20).data == text);
  CHECK(decode_content(raw_deflate(text), "deflate", 1 << 20).data == text);  // raw deflate, as many servers send
  CHECK(decode_content(brotli(text), "br", 1 << 20).data == text);
  CHECK(decode_content(zstd(text), "zstd", 1 << 20).data == text);
  CHECK(decode_content(text, "identity", 1 << 20).data == text);
}

TEST_CASE("two stacked codings are undone last-applied first") {
  const auto body = brotli(gzip(text));  // Content-Encoding: gzip, br
  const auto c = decode_content(body, "gzip, br", 1 << 20);
  CHECK(c.data == text);
  CHECK(c.chain == std::vector<std::string>{"br", "gzip"});
  CHECK(c.incomplete.empty());
}

TEST_CASE("more than two codings is marked, the last two are undone") {
  const auto c = decode_content(gzip(gzip(gzip(text))), "gzip, gzip, gzip", 1 << 20);
  CHECK(c.incomplete == std::vector<std::string>{"too_many_encodings"});
  // two declared layers, then the undeclared third is recognised by its magic bytes
  CHECK(c.data == text);
}

TEST_CASE("gzip or zlib without a Content-Encoding header is still decoded") {
  auto c = decode_content(gzip(text), "", 1 << 20);
  CHECK(c.data == text);
  CHECK(c.chain == std::vector<std::string>{"gzip"});
  c = decode_content(zlib(text), "", 1 << 20);
  CHECK(c.data == text);
  CHECK(c.chain == std::vector<std::string>{"deflate"});
}

TEST_CASE("multi-member gzip decodes as one body") {
  const auto d = inflate_capped(gzip("first half, ") + gzip("second half"), 1 << 20);
  CHECK(d.ok);
  CHECK(d.data == "first half, second half");
}

TEST_CASE("truncated gzip keeps what was decoded and says it failed") {
  const auto full = gzip(text);
  const auto d = inflate_capped(std::string_view(full).substr(0, full.size() / 2), 1 << 20);
  CHECK_FALSE(d.ok);
  CHECK(text.rfind(d.data, 0) == 0);
  const auto c = decode_content(std::string_view(full).substr(0, full.size() / 2), "gzip", 1 << 20);
  CHECK(c.incomplete == std::vector<std::string>{"decode_error"});
  CHECK(c.data == d.data);  // what inflated before the cut is what gets scanned
  CHECK(c.chain == std::vector<std::string>{"gzip"});
  const auto z = zlib(text);
  const auto cut = decode_content(std::string_view(z).substr(0, z.size() / 2), "deflate", 1 << 20);
  CHECK(cut.incomplete == std::vector<std::string>{"decode_error"});
  CHECK_FALSE(cut.data.empty());
  CHECK(text.rfind(cut.data, 0) == 0);
}

// zlib's own reading of a stream: what it inflates and whether the stream ended there.
std::pair<std::string, bool> zlib_inflate(std::string_view in, int window_bits) {
  z_stream z{};
  inflateInit2(&z, window_bits);
  std::string out(1 << 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_FINISH);
  out.resize(z.total_out);
  inflateEnd(&z);
  return {out, rc == Z_STREAM_END};
}

// The inflater is ISA-L's; zlib is the reference it must agree with, on streams made with every
// level and strategy, whole, cut short and with a flipped byte.
TEST_CASE("inflate agrees with zlib on whole, truncated and corrupted streams") {
  std::mt19937 rng(3);
  std::string sample;
  while (sample.size() < 200000) {
    sample += "{\"imei\":\"86543210123456" + std::to_string(rng() % 10) + "\",\"ts\":" + std::to_string(rng()) + "},";
    if (rng() % 7 == 0) {
      for (int i = 0; i < 300; ++i) {
        sample += static_cast<char>(rng());  // incompressible stretches: stored blocks
      }
    }
  }
  const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED};
  for (const int window_bits : {15 + 16, 15, -15}) {
    for (int level = 0; level <= 9; level += 3) {
      for (const int strategy : strategies) {
        CAPTURE(window_bits);
        CAPTURE(level);
        CAPTURE(strategy);
        const std::string packed = deflate_stream(sample, window_bits, level, strategy);
        const bool raw = window_bits < 0;
        const auto whole = inflate_capped(packed, 1 << 20, raw);
        CHECK(whole.ok);
        CHECK(whole.data == sample);
        for (int trial = 0; trial < 8; ++trial) {
          const std::string_view cut = std::string_view(packed).substr(0, rng() % packed.size());
          const auto d = inflate_capped(cut, 1 << 20, raw);
          CHECK_FALSE(d.ok);
          CHECK(sample.compare(0, d.data.size(), d.data) == 0);
          std::string flipped = packed;
          flipped[rng() % flipped.size()] ^= static_cast<char>(1 + rng() % 255);
          const auto [ref, ref_ok] = zlib_inflate(flipped, raw ? -15 : 15 + 32);
          const auto f = inflate_capped(flipped, 1 << 20, raw);
          if (ref_ok) {
            CHECK(f.ok);
            CHECK(f.data == ref);
          }
        }
      }
    }
  }
}

TEST_CASE("a bomb in every coding stops at the cap") {
  const std::string huge = "imei=865432101234564&" + std::string(64u << 20, 'A');
  const std::size_t cap = 1u << 20;
  const std::pair<const char*, std::string> bombs[] = {
      {"gzip", gzip(huge)}, {"deflate", zlib(huge)}, {"br", brotli(huge)}, {"zstd", zstd(huge)}};
  for (const auto& [coding, bomb] : bombs) {
    CAPTURE(coding);
    CHECK(bomb.size() < cap);
    const auto c = decode_content(bomb, coding, cap);
    CHECK(c.data.size() == cap);
    CHECK(c.incomplete == std::vector<std::string>{"decompression_limit"});
    CHECK(c.data.rfind("imei=865432101234564&", 0) == 0);
  }
}

// A string asked to grow past its capacity may take twice that capacity, past the cap: the
// output must still stop at the cap, and inflate must never be given room the string lacks.
TEST_CASE("a recycled buffer that grows past the cap still stops there") {
  const std::size_t cap = 1u << 20;
  const std::string bomb = gzip("imei=865432101234564&" + std::string(8u << 20, 'A'));
  for (const std::size_t spare : {cap / 2 + 4096, cap * 3 / 4, cap - 1, cap + 1}) {
    CAPTURE(spare);
    std::string buffer;
    buffer.reserve(spare);
    recycle(std::move(buffer));
    const auto d = inflate_capped(bomb, cap, false);
    CHECK(d.limit_hit);
    CHECK(d.data.size() == cap);
    CHECK(d.data.rfind("imei=865432101234564&", 0) == 0);
    CHECK(d.data.find_first_not_of('A', 21) == std::string::npos);
  }
}

TEST_CASE("a lying Content-Encoding is a decode error, not a lost body") {
  const auto c = decode_content(text, "br", 1 << 20);
  CHECK(c.incomplete == std::vector<std::string>{"decode_error"});
  CHECK(c.data == text);
  CHECK(decode_content(text, "compress", 1 << 20).incomplete == std::vector<std::string>{"decode_error"});
}

TEST_CASE("base64 and hex") {
  for (const std::string s : {"", "a", "ab", "abc", "abcd", "\xff\xfe\x00zz"}) {
    CHECK(base64_decode(base64_encode(s)) == s);
    CHECK(base64_decode(base64_encode(s, true, false)) == s);
  }
  CHECK(base64_encode("865432101234564") == "ODY1NDMyMTAxMjM0NTY0");
  CHECK_FALSE(base64_decode("abc$").has_value());
  CHECK_FALSE(base64_decode("abcde").has_value());
  CHECK(hex_encode("\x01\xab", true) == "01AB");
}

// Shared with known_patterns_test.cpp.
std::string test_gzip(const std::string& t) { return gzip(t); }
