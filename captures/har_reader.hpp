#pragma once
// Reading HAR 1.2 files (browsers, mitmproxy, HTTP Toolkit, Charles) into plain requests.
// Pure: text in, entries out; the caller reads the file.

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace leakscope::captures {

class har_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct har_request {
  std::size_t index = 0;  // 0-based position in log.entries
  std::chrono::system_clock::time_point started{};
  std::string method;
  std::string url;     // absolute, as recorded
  std::string scheme;  // from the URL
  std::string host;
  std::uint16_t port = 0;
  std::string target;  // origin-form path and query
  std::string server_ip;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // postData.text, base64-decoded when the writer marked it so
  int status = 0;    // response.status; 0 when there was no response
  double time_ms = 0;  // entry.time
};

// Parses a HAR document; throws har_error naming what is wrong ("log.entries[3].request.url
// is missing"). Entries whose request cannot be read are skipped and listed in `skipped`.
std::vector<har_request> read_har(const std::string& text, std::vector<std::string>* skipped = nullptr);

// "2026-11-23T13:45:12.123+08:00" -> time point; nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parse_iso8601(const std::string& text);

}  // namespace leakscope::captures
