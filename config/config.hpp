#pragma once
// The whole configuration as immutable values. Parsed once from YAML by `load_config`; nothing
// outside config/ sees a YAML node. Every key of the DESIGN.md schema is known here, also those
// whose features arrive later, so a config written today keeps loading.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace leakscope::config {

// Raised only at start-up; the message already names file, line and key.
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The fixed vocabulary of personal-data categories used in every output.
inline const std::vector<std::string>& categories() {
  static const std::vector<std::string> all = {
      "imei",          "meid",        "imsi",          "iccid",        "serial_number",
      "android_id",    "advertising_id", "mac_address", "phone_number", "email",
      "id_card",       "bank_card",   "location",      "cell_location", "wifi_location",
      "sms",           "contacts",    "installed_apps"};
  return all;
}
bool is_category(const std::string& name);

enum class listen_mode { explicit_proxy, transparent };

struct listen_config {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;
  listen_mode mode = listen_mode::explicit_proxy;
};

// An address block such as 10.0.0.0/8 or ::1/128, kept as bytes so matching needs no sockets.
struct cidr {
  std::vector<std::uint8_t> network;  // 4 or 16 bytes
  unsigned prefix = 0;
  std::string text;
  bool contains(const std::vector<std::uint8_t>& address) const;
};
std::optional<cidr> parse_cidr(const std::string& text);

struct clients_config {
  std::vector<cidr> allow;
};

struct ca_config {
  std::filesystem::path dir;
};

struct upstream_config {
  bool verify = true;
  std::vector<std::filesystem::path> extra_ca;
  std::map<std::string, std::string> resolve;  // lower-case host -> IP literal
  std::optional<std::vector<std::uint16_t>> allow_ports;  // nullopt = any
  bool allow_private = false;
};

struct tls_config {
  std::vector<std::string> passthrough;  // host patterns: exact, or "*.example.com"
  bool auto_passthrough = true;
};

struct capture_config {
  std::filesystem::path dir;
  std::uint64_t max_inspect_body = 16u << 20;
  bool pcapng = true;
  bool har = true;
};

struct control_config {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8081;
};

struct app_config {
  std::string name;
  std::vector<std::string> first_party;  // domain suffixes
};

struct location_fix {
  double lat = 0;
  double lng = 0;
  double radius_m = 2000;
};

struct contact {
  std::string name;
  std::string phone;
};

// The test phone's real values; every list may be empty.
struct device_profile {
  std::vector<std::string> imei, meid, imsi, iccid, serial_number, android_id, advertising_id,
      mac_address, phone_number, email, id_card, bank_card, sms, installed_apps;
  std::optional<location_fix> location;
  std::vector<contact> contacts;
  std::vector<std::string> cell_location, wifi_location;
};

struct declared_config {
  std::vector<std::string> first_party;                    // categories
  std::map<std::string, std::vector<std::string>> sdks;    // SDK name -> categories
};

struct rules_config {
  unsigned max_per_minute_default = 1;
  std::map<std::string, unsigned> max_per_minute;  // per-category overrides
};

struct timeouts_config {
  std::chrono::milliseconds idle{60'000};
  std::chrono::milliseconds handshake{10'000};
  std::chrono::milliseconds headers{30'000};
  std::chrono::milliseconds upstream_connect{10'000};
  std::chrono::milliseconds upstream_response{60'000};
};

struct limits_config {
  std::uint64_t max_header_bytes = 64u << 10;
  unsigned max_headers = 100;
  std::uint64_t max_decoded_body = 64u << 20;
  unsigned max_connections = 10'000;
  timeouts_config timeouts;
};

struct config {
  std::filesystem::path source;  // the file it was read from; empty for built-in defaults
  listen_config listen;
  clients_config clients;
  ca_config ca;
  upstream_config upstream;
  tls_config tls;
  capture_config capture;
  control_config control;
  app_config app;
  device_profile device;
  std::vector<std::filesystem::path> sdk_catalog;
  declared_config declared;
  rules_config rules;
  limits_config limits;
};

// One SDK catalog row: hosts equal to or under `domain` belong to `sdk`.
struct sdk_entry {
  std::string domain;
  std::string sdk;
  std::string vendor;
  std::string category;  // analytics, push, ads, location, crash, social, payment, risk, attribution, cloud, other
  std::string country;
  std::string detail;
  std::string source;
};

// The catalog compiled into the binary (config/sdk-endpoints.yaml).
const std::string& builtin_sdk_catalog();
// Parses catalog YAML ({sdks: [{domain, sdk, vendor, category, …}]}); throws config_error.
std::vector<sdk_entry> parse_sdk_catalog(const std::string& text, const std::string& name);
// The built-in catalog followed by the files in `sdk_catalog` (later rows win for a domain).
std::vector<sdk_entry> load_sdk_catalogs(const config& cfg);

// Reads and validates a config file. Throws config_error naming file, line and key.
config load_config(const std::filesystem::path& file);
// Same, from text; `name` is used in messages and relative paths resolve against `base_dir`.
config parse_config(const std::string& text, const std::string& name,
                    const std::filesystem::path& base_dir);
// Built-in defaults, as if an empty file had been loaded from `base_dir`.
config default_config(const std::filesystem::path& base_dir);

// A device profile on its own (the file `device:` may point to).
device_profile load_device_profile(const std::filesystem::path& file);

// "16MiB", "64KiB", "1024" -> bytes; "60s", "500ms", "2m" -> milliseconds.
std::optional<std::uint64_t> parse_size(const std::string& text);
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text);

}  // namespace leakscope::config
