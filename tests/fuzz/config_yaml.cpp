// The config loader on hostile YAML: it returns a config or throws config_error, nothing else
// (no crash, no other exception, no hang on aliases or nesting).
#include "config/config.hpp"
#include "fuzz.hpp"

#include <filesystem>

using namespace leakscope;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  static const auto base = std::filesystem::temp_directory_path() / "leakscope-fuzz-config";
  try {
    config::parse_config(text, "fuzz.yaml", base);
  } catch (const config::config_error&) {
  }
  try {
    config::parse_sdk_catalog(text, "fuzz.yaml");
  } catch (const config::config_error&) {
  }
  return 0;
}
