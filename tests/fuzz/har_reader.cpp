// The HAR reader: a list of requests or har_error, for any text.
#include "captures/har_reader.hpp"
#include "fuzz.hpp"

using namespace leakscope::captures;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    std::vector<std::string> skipped;
    for (const auto& r : read_har(text, &skipped)) {
      FUZZ_CHECK(!r.host.empty());
    }
  } catch (const har_error&) {
  }
  return 0;
}
