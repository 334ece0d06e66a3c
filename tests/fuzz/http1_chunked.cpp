// Chunked transfer coding: a fixed chunked head, then the input as the body, byte by byte for
// the first bytes (chunk sizes split across reads) and the rest at once.
#include "fuzz.hpp"
#include "proxy/http1_codec.hpp"

using namespace leakscope::proxy::http1;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fuzz::input in(data, size);
  parser p(in.choice & 1 ? message_kind::request : message_kind::response, codec_limits{4096, 32});
  p.set_body_cap(1024);
  std::string pending = in.choice & 1 ? "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      : "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::size_t fed = 0;
  const std::size_t bytewise = in.choice >> 1;
  bool done = false;
  while (!done) {
    if (fed < in.rest.size()) {
      const std::size_t n = fed < bytewise ? 1 : in.rest.size() - fed;
      pending.append(in.rest.substr(fed, n));
      fed += n;
    } else {
      done = true;
    }
    for (int rounds = 0; rounds < 10000; ++rounds) {
      const auto r = p.feed(pending);
      FUZZ_CHECK(r.consumed <= pending.size());
      pending.erase(0, r.consumed);
      if (r.error != codec_error::none) {
        return 0;
      }
      if (r.message_complete) {
        FUZZ_CHECK(p.body().size() <= 1024);
        FUZZ_CHECK(p.body_size() >= p.body().size());
      }
      if (!r.head_complete && !r.message_complete) {
        break;
      }
    }
  }
  p.finish();
  return 0;
}
