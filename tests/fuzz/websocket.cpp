// The WebSocket reader: the same bytes give the same messages however they are split.
#include "fuzz.hpp"
#include "proxy/websocket.hpp"

using namespace leakscope::proxy::websocket;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fuzz::input in(data, size);
  options o;
  o.deflate = in.choice & 1;
  o.no_context_takeover = in.choice & 2;
  o.max_message = 4096;
  o.max_decoded = 8192;
  std::vector<message> whole, split;
  reader a(o), b(o);
  a.feed(in.rest, whole);
  const std::size_t step = 1 + (in.choice >> 2);
  for (std::size_t i = 0; i < in.rest.size(); i += step) {
    b.feed(in.rest.substr(i, step), split);
  }
  FUZZ_CHECK(a.failed() == b.failed());
  FUZZ_CHECK(whole.size() == split.size());
  for (std::size_t i = 0; i < whole.size(); ++i) {
    FUZZ_CHECK(whole[i].data == split[i].data);
    FUZZ_CHECK(whole[i].data.size() <= o.max_message);
  }
  return 0;
}
