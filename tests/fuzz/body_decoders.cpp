// Each body decoder behind its cap: gzip, deflate (zlib and raw), br, zstd, and stacked
// Content-Encoding lists. Output never exceeds the cap, and where zlib (the reference) decodes a
// whole single stream, ISA-L's inflate must produce the same bytes.
#include "detectors/decode.hpp"
#include "fuzz.hpp"

#include <zlib.h>

#include <optional>
#include <string>

using namespace leakscope::detectors;

namespace {

// zlib's reading of one complete stream that uses all of the input, or nullopt.
std::optional<std::string> zlib_reference(std::string_view in, bool raw, std::size_t cap) {
  z_stream z{};
  if (inflateInit2(&z, raw ? -15 : 15 + 32) != Z_OK) {
    return std::nullopt;
  }
  std::string out(cap, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_FINISH);
  const bool whole = rc == Z_STREAM_END && z.avail_in == 0;
  out.resize(z.total_out);
  inflateEnd(&z);
  return whole ? std::optional<std::string>(out) : std::nullopt;
}

void check_against_zlib(std::string_view in, bool raw, std::size_t cap) {
  const auto d = inflate_capped(in, cap, raw);
  FUZZ_CHECK(d.data.size() <= cap);
  if (const auto ref = zlib_reference(in, raw, cap); ref && ref->size() < cap) {
    FUZZ_CHECK(d.ok);
    FUZZ_CHECK(d.data == *ref);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fuzz::input in(data, size);
  constexpr std::size_t cap = 1 << 20;
  switch (in.choice % 6) {
    case 0:
      check_against_zlib(in.rest, false, cap);
      break;
    case 1:
      check_against_zlib(in.rest, true, cap);
      break;
    case 2:
      FUZZ_CHECK(brotli_capped(in.rest, cap).data.size() <= cap);
      break;
    case 3:
      FUZZ_CHECK(zstd_capped(in.rest, cap).data.size() <= cap);
      break;
    case 4:
      FUZZ_CHECK(decode_content(in.rest, "gzip, br", cap).data.size() <= cap);
      break;
    default:
      FUZZ_CHECK(decode_content(in.rest, "", cap).data.size() <= cap);  // undeclared gzip/zlib
      break;
  }
  return 0;
}
