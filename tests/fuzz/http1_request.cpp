// The request codec: any bytes, fed in two pieces split where the first byte says. Invariants:
// consumed never exceeds what was fed, a head is never complete twice without a message, and
// the parser never reports success after an error.
#include "fuzz.hpp"
#include "proxy/http1_codec.hpp"

using namespace leakscope::proxy::http1;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fuzz::input in(data, size);
  parser p(message_kind::request, codec_limits{4096, 32});
  p.set_body_cap(1024);
  const std::size_t cut = in.rest.empty() ? 0 : in.choice % (in.rest.size() + 1);
  std::string pending;
  for (const auto piece : {in.rest.substr(0, cut), in.rest.substr(cut)}) {
    pending.append(piece);
    for (int rounds = 0; rounds < 10000; ++rounds) {
      const auto r = p.feed(pending);
      FUZZ_CHECK(r.consumed <= pending.size());
      pending.erase(0, r.consumed);
      if (r.error != codec_error::none) {
        FUZZ_CHECK(p.feed("GET / HTTP/1.1\r\n\r\n").error != codec_error::none);  // errors stick
        return 0;
      }
      if (r.head_complete) {
        FUZZ_CHECK(p.head().raw.size() <= 4096);
      }
      if (r.upgrade || (!r.head_complete && !r.message_complete)) {
        break;
      }
    }
  }
  p.finish();
  FUZZ_CHECK(p.body().size() <= 1024);
  return 0;
}
