#pragma once
// What the detectors see and what they report. Plain values: no sockets, no clocks.

#include <string>
#include <vector>

namespace leakscope::detectors {

struct header {
  std::string name;
  std::string value;
};

// One outgoing request as the phone sent it. `body` holds at most the inspection cap of the
// de-chunked body; `body_truncated` says the rest went upstream uninspected.
struct http_request {
  std::string method;
  std::string scheme;  // "https" or "http"
  std::string host;
  std::string target;  // origin-form path and query, "/app_logs?x=1"
  std::vector<header> headers;
  std::string body;
  bool body_truncated = false;
};

struct finding {
  std::string category;               // DESIGN.md vocabulary: "imei", "phone_number", …
  std::string source;                 // "known" (device profile) or "pattern"
  std::string confidence;             // "high", "medium" or "low"
  std::string where;                  // "url.query:imei", "header:X-Imei", "body"
  std::vector<std::string> encoding;  // decoding chain, outermost first: ["gzip"]
  std::string value;                  // the matched value, unmasked; mask() before writing
  // How many places in the request carried it: places that differ only in a list index
  // ($.events[0].imei, $.events[1].imei, …) make one finding, at the first of them.
  std::size_t count = 1;
};

struct inspect_result {
  std::vector<finding> findings;
  // Typed reasons some part was not fully inspected: "decompression_limit",
  // "body_truncated", "decode_error", and "opaque_body" for a body that looks
  // encrypted at the application layer (high entropy, no structure): nothing in it can be seen.
  std::vector<std::string> incomplete;
};

// "8654******4564": enough to recognise a value in a report, not enough to reuse it.
std::string mask(const std::string& value);

}  // namespace leakscope::detectors
