// Each body decoder behind its cap: gzip, deflate (zlib and raw), br, zstd, and stacked
// Content-Encoding lists. Output never exceeds the cap.
#include "detectors/decode.hpp"
#include "fuzz.hpp"

using namespace leakscope::detectors;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fuzz::input in(data, size);
  constexpr std::size_t cap = 1 << 20;
  switch (in.choice % 6) {
    case 0:
      FUZZ_CHECK(inflate_capped(in.rest, cap).data.size() <= cap);
      break;
    case 1:
      FUZZ_CHECK(inflate_capped(in.rest, cap, true).data.size() <= cap);
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
