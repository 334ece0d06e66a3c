// The ClientHello reader and the first-bytes classifier: every prefix of the input gets a
// verdict consistent with the whole.
#include "fuzz.hpp"
#include "proxy/client_hello.hpp"

using namespace leakscope::proxy;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto whole = parse_client_hello(bytes, 16 * 1024);
  if (whole.status == hello_status::complete) {
    FUZZ_CHECK(whole.hello.sni.size() <= bytes.size());
  }
  const auto kind = classify_first_bytes(bytes, 443).kind;
  for (std::size_t n = 0; n < bytes.size() && n < 64; ++n) {
    const auto part = classify_first_bytes(bytes.substr(0, n), 443).kind;
    FUZZ_CHECK(part == first_bytes_kind::need_more || part == kind);
    const auto prefix = parse_client_hello(bytes.substr(0, n), 16 * 1024).status;
    // A prefix of a complete hello is never judged malformed or not TLS.
    if (whole.status == hello_status::complete) {
      FUZZ_CHECK(prefix == hello_status::need_more || prefix == hello_status::complete);
    }
  }
  return 0;
}
