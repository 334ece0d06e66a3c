// The response codec, answering GET or HEAD, with the peer closing at the end (close-delimited
// bodies, truncation).
#include "fuzz.hpp"
#include "proxy/http1_codec.hpp"

using namespace leakscope::proxy::http1;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fuzz::input in(data, size);
  parser p(message_kind::response, codec_limits{4096, 32});
  p.set_body_cap(1024);
  p.expect_response_to(in.choice & 1 ? "HEAD" : "GET");
  std::string pending(in.rest);
  for (int rounds = 0; rounds < 10000; ++rounds) {
    const auto r = p.feed(pending);
    FUZZ_CHECK(r.consumed <= pending.size());
    pending.erase(0, r.consumed);
    if (r.error != codec_error::none || r.upgrade || (!r.head_complete && !r.message_complete)) {
      break;
    }
  }
  p.finish();
  FUZZ_CHECK(p.body().size() <= 1024);
  return 0;
}
