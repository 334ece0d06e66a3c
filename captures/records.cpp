#include "captures/records.hpp"

#include "captures/base64.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace leakscope::captures {

using nlohmann::json;

std::string iso8601(wall_time t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(((us % 1'000'000) + 1'000'000) % 1'000'000));
  return buf;
}

namespace {

json dest_json(const destination& d) {
  return {{"host", d.host}, {"ip", d.ip.empty() ? json(nullptr) : json(d.ip)}, {"port", d.port}, {"scheme", d.scheme}};
}

// Milliseconds with microsecond precision: enough for timing evidence, stable in golden tests.
json ms(double v) { return std::round(v * 1000.0) / 1000.0; }

json optional_ms(const std::optional<double>& v) { return v ? ms(*v) : json(nullptr); }

// Traffic is not guaranteed to be UTF-8; invalid bytes become U+FFFD rather than an exception.
std::string line(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; }

}  // namespace

std::string to_json_line(const flow_record& r) {
  json j = {{"id", r.id},
            {"start", iso8601(r.start)},
            {"client", r.client},
            {"dest", dest_json(r.dest)},
            {"sni", r.sni.empty() ? json(nullptr) : json(r.sni)},
            {"kind", r.kind},
            {"method", r.method.empty() ? json(nullptr) : json(r.method)},
            {"url", r.url.empty() ? json(nullptr) : json(r.url)},
            {"status", r.status == 0 ? json(nullptr) : json(r.status)},
            {"bytes_up", r.bytes_up},
            {"bytes_down", r.bytes_down},
            {"tls_handshake_ms", optional_ms(r.tls_handshake_ms)},
            {"ttfb_ms", optional_ms(r.ttfb_ms)},
            {"total_ms", ms(r.total_ms)},
            {"complete", r.complete},
            {"request_truncated", r.request_truncated},
            {"incomplete", r.incomplete},
            {"leaks", r.leaks},
            {"error", r.error ? json{{"type", r.error->type}, {"detail", r.error->detail}} : json(nullptr)},
            {"note", r.note.empty() ? json(nullptr) : json(r.note)}};
  return line(j);
}

std::string to_json_line(const leak_record& r) {
  json j = {{"id", r.id},
            {"ts", iso8601(r.ts)},
            {"t_session_ms", r.t_session_ms},
            {"t_consent_ms", r.t_consent_ms ? json(*r.t_consent_ms) : json(nullptr)},
            {"flow", r.flow},
            {"client", r.client},
            {"dest", dest_json(r.dest)},
            {"party", r.party},
            {"party_rule", r.party_rule.empty() ? json(nullptr) : json(r.party_rule)},
            {"domain", r.domain.empty() ? json(nullptr) : json(r.domain)},
            {"sdk", r.sdk ? json{{"name", r.sdk->name}, {"vendor", r.sdk->vendor}, {"category", r.sdk->category}}
                          : json(nullptr)},
            {"category", r.category},
            {"source", r.source},
            {"confidence", r.confidence},
            {"where", r.where},
            {"encoding", r.encoding},
            {"value", r.value},
            {"count", r.count},
            {"request", {{"method", r.method}, {"path", r.path}}},
            {"har_entry", r.har_entry ? json(*r.har_entry) : json(nullptr)},
            {"frames", {{"traffic", r.traffic_frame == 0 ? json(nullptr) : json(r.traffic_frame)},
                        {"decrypted", r.decrypted_frame == 0 ? json(nullptr) : json(r.decrypted_frame)}}}};
  return line(j);
}

namespace {

json header_list(const std::vector<std::pair<std::string, std::string>>& headers) {
  json out = json::array();
  for (const auto& [name, value] : headers) {
    out.push_back({{"name", name}, {"value", value}});
  }
  return out;
}

bool is_utf8_text(std::string_view body) {
  for (std::size_t i = 0; i < body.size();) {
    const auto c = static_cast<unsigned char>(body[i]);
    const int len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (len == 0 || i + static_cast<std::size_t>(len) > body.size() || (c < 0x20 && c != '\n' && c != '\r' && c != '\t')) {
      return false;
    }
    for (int k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(body[i + static_cast<std::size_t>(k)]) & 0xc0) != 0x80) {
        return false;
      }
    }
    i += static_cast<std::size_t>(len);
  }
  return true;
}

// The HAR body object {"encoding"?,"text","truncated"}, keys in nlohmann's (sorted) order.
// Valid UTF-8 text is kept as text; anything else as base64, as HAR writers do. Written
// straight into the line: the body is up to capture.max_inspect_body, and a json value of it
// plus its dump would hold it three times over.
bool needs_escape(char c) { return c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t'; }

// The size of the body's text in the line, for one allocation of the line.
std::size_t body_text_size(std::string_view body, bool text) {
  return text ? body.size() + static_cast<std::size_t>(std::count_if(body.begin(), body.end(), needs_escape))
              : (body.size() + 2) / 3 * 4;
}

void append_body_json(std::string& out, std::string_view body, bool text, bool truncated) {
  if (text) {
    out += "{\"text\":\"";
    for (const char c : body) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          out += c;
      }
    }
  } else {
    out += "{\"encoding\":\"base64\",\"text\":\"";
    base64_append(out, body);
  }
  out += truncated ? "\",\"truncated\":true}" : "\",\"truncated\":false}";
}

}  // namespace

std::string to_json_line(const exchange_record& r) {
  const json request = {{"httpVersion", r.http_version}, {"headers", header_list(r.request_headers)},
                        {"bodySize", r.request_body_size}};
  const json response = r.status == 0 ? json(nullptr)
                                      : json{{"status", r.status},
                                             {"statusText", r.reason},
                                             {"headers", header_list(r.response_headers)},
                                             {"bodySize", r.response_body_size}};
  const auto dump = [](const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); };
  const std::string request_rest = dump(request);  // "{...}": the members after "body"
  const std::string response_text = dump(response);
  const bool text = is_utf8_text(r.request_body);
  std::string out;
  out.reserve(160 + request_rest.size() + response_text.size() + body_text_size(r.request_body, text));
  out += "{\"flow\":";
  out += std::to_string(r.flow);
  out += ",\"request\":{";
  if (!r.request_body.empty()) {
    out += "\"body\":";
    append_body_json(out, r.request_body, text, r.request_body.size() < r.request_body_size);
    out += ',';
  }
  out.append(request_rest, 1);
  out += ",\"response\":";
  out += response_text;
  out += "}\n";
  return out;
}

std::string to_json_line(const mark_record& r) {
  json j = {{"id", r.id},
            {"kind", r.kind},
            {"text", r.text.empty() ? json(nullptr) : json(r.text)},
            {"ts", iso8601(r.ts)},
            {"t_session_ms", r.t_session_ms},
            {"source", r.source}};
  return line(j);
}

}  // namespace leakscope::captures
