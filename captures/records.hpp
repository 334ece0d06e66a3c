#pragma once
// The records written to a session folder, and their pure JSON-line encoders (DESIGN.md,
// "Leak record"). The encoders are golden-tested; the file sink lives in recorder.hpp.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace leakscope::captures {

using wall_time = std::chrono::system_clock::time_point;

struct destination {
  std::string host;
  std::string ip;
  std::uint16_t port = 0;
  std::string scheme;  // "https", "http", or "tls" for a tunnel that was not decrypted
};

struct typed_error {
  std::string type;    // stable identifier, e.g. "upstream_cert_untrusted", "tls_client_rejected"
  std::string detail;  // one human sentence
};

// One line of flows.jsonl: one HTTP exchange, or one connection that never carried one
// (a refused client, a rejected certificate, a passthrough tunnel).
struct flow_record {
  std::uint64_t id = 0;
  std::string client;  // "ip:port" of the phone
  destination dest;
  std::string sni;
  std::string kind;  // "http", "https", "passthrough", "connection"
  std::string method;
  std::string url;
  int status = 0;  // 0 when no response was relayed
  std::uint64_t bytes_up = 0;    // request bytes relayed to the server, head included
  std::uint64_t bytes_down = 0;  // response bytes relayed to the phone, head included
  wall_time start{};
  std::optional<double> tls_handshake_ms;  // phone-side handshake, on the first exchange of a connection
  std::optional<double> ttfb_ms;           // request sent -> first response byte
  double total_ms = 0;
  bool complete = true;  // false when either side stopped mid-message
  bool request_truncated = false;  // request body larger than capture.max_inspect_body
  std::vector<std::string> incomplete;  // reasons the request was not fully inspected
  std::uint64_t leaks = 0;
  std::optional<typed_error> error;
  std::string note;  // why a flow was handled specially, e.g. which rule passed it through
};

struct sdk_info {
  std::string name;
  std::string vendor;
  std::string category;
};

// One line of leaks.jsonl.
struct leak_record {
  std::uint64_t id = 0;
  wall_time ts{};
  std::int64_t t_session_ms = 0;
  std::optional<std::int64_t> t_consent_ms;
  std::uint64_t flow = 0;
  std::string client;
  destination dest;
  std::string party;       // "first", "third", "unknown"
  std::string party_rule;  // which rule decided the party
  std::string domain;      // SDK catalog domain, else registrable domain, else host
  std::optional<sdk_info> sdk;
  std::string category;
  std::string source;
  std::string confidence;
  std::string where;
  std::vector<std::string> encoding;
  std::string value;  // already masked
  std::uint64_t count = 1;  // places in the request that carried it (list items merged)
  std::string method;
  std::string path;
  std::optional<std::uint64_t> har_entry;
  std::uint64_t traffic_frame = 0;    // traffic.pcapng: last phone-leg packet of the request (0: none)
  std::uint64_t decrypted_frame = 0;  // decrypted.pcapng: the packet completing the request (0: none)
};

// One line of exchanges.jsonl: what HAR needs of an exchange beyond its flow record. The
// request body is kept as inspected (up to capture.max_inspect_body).
struct exchange_record {
  std::uint64_t flow = 0;
  std::string http_version = "HTTP/1.1";
  std::vector<std::pair<std::string, std::string>> request_headers;
  std::string request_body;
  std::uint64_t request_body_size = 0;  // the whole body, also what was not kept
  int status = 0;                       // 0: no response
  std::string reason;
  std::vector<std::pair<std::string, std::string>> response_headers;
  std::uint64_t response_body_size = 0;
};

// One line of marks.jsonl: a moment of the test scenario.
struct mark_record {
  std::uint64_t id = 0;
  std::string kind;  // consent, refuse, background, foreground, note
  std::string text;  // notes; empty otherwise
  wall_time ts{};
  std::int64_t t_session_ms = 0;  // from the session's monotonic clock
  std::string source;             // terminal, cli, http, har
};

inline bool is_mark_kind(const std::string& k) {
  return k == "consent" || k == "refuse" || k == "background" || k == "foreground" || k == "note";
}

// "2026-11-23T13:45:12.123456Z"
std::string iso8601(wall_time t);

std::string to_json_line(const flow_record& r);
std::string to_json_line(const leak_record& r);
std::string to_json_line(const mark_record& r);
std::string to_json_line(const exchange_record& r);

}  // namespace leakscope::captures
