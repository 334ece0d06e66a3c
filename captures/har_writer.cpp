#include "captures/har_writer.hpp"

#include "captures/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <optional>
#include <random>
#include <map>
#include <sstream>

namespace leakscope::captures {

using nlohmann::json;

namespace {

std::vector<json> read_jsonl(const std::filesystem::path& file, std::vector<std::string>* warnings) {
  std::vector<json> out;
  std::ifstream in(file);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (line.empty()) {
      continue;
    }
    auto j = json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      if (warnings != nullptr) {
        warnings->push_back(file.filename().string() + ":" + std::to_string(n) + ": not a whole JSON record; skipped");
      }
      continue;
    }
    out.push_back(std::move(j));
  }
  return out;
}

std::string str_of(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

json header_value(const json& headers, const std::string& name) {
  for (const auto& h : headers) {
    std::string n = str_of(h, "name");
    std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
    if (n == name) {
      return h["value"];
    }
  }
  return "";
}

json query_string(const std::string& url) {
  json out = json::array();
  const auto q = url.find('?');
  if (q == std::string::npos) {
    return out;
  }
  std::string_view rest = std::string_view(url).substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const auto pair = rest.substr(0, amp);
    const auto eq = pair.find('=');
    out.push_back({{"name", std::string(pair.substr(0, eq))},
                   {"value", eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1))}});
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
  }
  return out;
}

double number_or(const json& j, const char* key, double fallback) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

}  // namespace

session_records read_session(const std::filesystem::path& dir, std::vector<std::string>* warnings) {
  session_records r;
  if (std::ifstream in(dir / "session.json"); in) {
    std::stringstream text;
    text << in.rdbuf();
    const auto j = json::parse(text.str(), nullptr, false);
    if (j.is_object()) {
      r.session = j;
    }
  }
  r.leaks = read_jsonl(dir / "leaks.jsonl", warnings);
  r.flows = read_jsonl(dir / "flows.jsonl", warnings);
  r.marks = read_jsonl(dir / "marks.jsonl", warnings);
  return r;
}

namespace {

// What every entry needs from the whole session: its leaks and the consent mark.
struct har_context {
  std::map<std::uint64_t, std::vector<const json*>> leaks_of;
  std::string consent_ts;
};

har_context context_of(const session_records& records) {
  har_context c;
  for (const auto& l : records.leaks) {
    c.leaks_of[l.value("flow", std::uint64_t{0})].push_back(&l);
  }
  for (const auto& m : records.marks) {
    if (str_of(m, "kind") == "consent" && (c.consent_ts.empty() || str_of(m, "ts") < c.consent_ts)) {
      c.consent_ts = str_of(m, "ts");
    }
  }
  return c;
}

bool is_exchange(const json& flow) {
  // Connections that carried no request (refusals, passthrough) are not exchanges.
  return flow.contains("method") && flow["method"].is_string();
}

// The HAR entry of one flow record and its exchanges.jsonl line (an empty object if none).
// The exchange is taken by value: its body text, up to capture.max_inspect_body, is moved
// into the entry rather than copied.
json har_entry(const json& f, json ex, const har_context& context) {
  const auto id = f.value("id", std::uint64_t{0});
  const bool has_request = ex.is_object() && ex.contains("request") && ex["request"].is_object();
  const bool has_response = ex.is_object() && ex.contains("response") && ex["response"].is_object();
  json req = has_request ? std::move(ex["request"]) : json::object();
  const json res = has_response ? std::move(ex["response"]) : json::object();
  const auto url = str_of(f, "url");
  const auto version = req.value("httpVersion", "HTTP/1.1");
  json request = {{"method", str_of(f, "method")},
                  {"url", url},
                  {"httpVersion", version},
                  {"cookies", json::array()},
                  {"headers", req.value("headers", json::array())},
                  {"queryString", query_string(url)},
                  {"headersSize", -1},
                  {"bodySize", req.contains("bodySize") ? req["bodySize"] : json(number_or(f, "bytes_up", 0))}};
  if (req.contains("body") && req["body"].is_object()) {
    json& body = req["body"];
    json post = json::object();
    post["mimeType"] = header_value(request["headers"], "content-type");
    post["text"] = body.contains("text") && body["text"].is_string() ? std::move(body["text"]) : json("");
    if (body.contains("encoding")) {
      post["encoding"] = body["encoding"];  // as HTTP Toolkit and mitmproxy write binary bodies
    }
    if (body.value("truncated", false)) {
      post["comment"] = "body kept only up to capture.max_inspect_body";
    }
    request["postData"] = std::move(post);
  }
  const auto response_headers = res.value("headers", json::array());
  json response = {{"status", static_cast<int>(number_or(f, "status", 0))},
                   {"statusText", res.value("statusText", "")},
                   {"httpVersion", version},
                   {"cookies", json::array()},
                   {"headers", response_headers},
                   {"content", {{"size", res.value("bodySize", 0)}, {"mimeType", header_value(response_headers, "content-type")}}},
                   {"redirectURL", ""},
                   {"headersSize", -1},
                   {"bodySize", res.value("bodySize", -1)}};
  const double total = number_or(f, "total_ms", 0);
  const double wait = number_or(f, "ttfb_ms", 0);
  json timings = {{"blocked", -1}, {"dns", -1}, {"connect", -1}, {"ssl", number_or(f, "tls_handshake_ms", -1)},
                  {"send", 0},     {"wait", wait}, {"receive", std::max(0.0, total - wait)}};
  json leaks = json::array();
  json sdk = nullptr;
  json party = nullptr;
  for (const auto* l : context.leaks_of.count(id) ? context.leaks_of.at(id) : std::vector<const json*>{}) {
    leaks.push_back({{"id", (*l)["id"]}, {"category", (*l)["category"]}, {"where", (*l)["where"]}, {"value", (*l)["value"]}});
    if (sdk.is_null() && l->contains("sdk")) {
      sdk = (*l)["sdk"];
    }
    if (party.is_null() && l->contains("party")) {
      party = (*l)["party"];
    }
  }
  const auto start = str_of(f, "start");
  const std::string phase = context.consent_ts.empty() ? "no_consent_mark" : start < context.consent_ts ? "before_consent" : "after_consent";
  json entry = {{"startedDateTime", start},
                {"time", total},
                {"response", std::move(response)},
                {"cache", json::object()},
                {"timings", std::move(timings)},
                {"_flow", id},
                {"_leaks", std::move(leaks)},
                {"_sdk", std::move(sdk)},
                {"_party", std::move(party)},
                {"_consent_phase", phase},
                {"_error", f.contains("error") ? f["error"] : json(nullptr)}};
  entry["request"] = std::move(request);  // moved: it holds the body
  const auto ip = f.contains("dest") ? str_of(f["dest"], "ip") : std::string();
  if (!ip.empty()) {
    entry["serverIPAddress"] = ip;
  }
  return entry;
}

json har_log_header(const std::string& tool_version) {
  return {{"version", "1.2"}, {"creator", {{"name", "leakscope"}, {"version", tool_version}}}, {"pages", json::array()}};
}

}  // namespace

json build_har(const session_records& records, const std::string& tool_version) {
  std::map<std::uint64_t, const json*> exchange_of;
  for (const auto& e : records.exchanges) {
    exchange_of[e.value("flow", std::uint64_t{0})] = &e;
  }
  const auto context = context_of(records);
  const json empty = json::object();
  json entries = json::array();
  for (const auto& f : records.flows) {
    if (is_exchange(f)) {
      const auto it = exchange_of.find(f.value("id", std::uint64_t{0}));
      entries.push_back(har_entry(f, it != exchange_of.end() ? *it->second : empty, context));
    }
  }
  json log = har_log_header(tool_version);
  log["entries"] = std::move(entries);
  return {{"log", std::move(log)}};
}

namespace {

// Each exchanges.jsonl line starts {"flow":N, as to_json_line writes it; anything else is
// parsed whole.
std::optional<std::uint64_t> flow_of_exchange(const std::string& line) {
  constexpr std::string_view prefix = "{\"flow\":";
  if (line.compare(0, prefix.size(), prefix) == 0) {
    std::uint64_t id = 0;
    const char* first = line.data() + prefix.size();
    const char* last = line.data() + line.size();
    const auto [end, ec] = std::from_chars(first, last, id);
    if (ec == std::errc() && end != first && end < last && *end == ',') {
      return id;
    }
  }
  const auto j = json::parse(line, nullptr, false);
  if (j.is_object() && j.contains("flow") && j["flow"].is_number_unsigned()) {
    return j["flow"].get<std::uint64_t>();
  }
  return std::nullopt;
}

// Where the request body's text sits in an exchanges.jsonl line as to_json_line writes it,
// {"flow":N,"request":{"body":{["encoding":"base64",]"text":"…": the string's contents,
// still escaped.
std::optional<std::pair<std::size_t, std::size_t>> body_text_span(std::string_view line) {
  constexpr std::string_view request_body = ",\"request\":{\"body\":{";
  constexpr std::string_view base64 = "\"encoding\":\"base64\",";
  constexpr std::string_view text = "\"text\":\"";
  auto at = line.find(request_body);
  if (at == std::string_view::npos || at > 32) {
    return std::nullopt;
  }
  at += request_body.size();
  if (line.substr(at, base64.size()) == base64) {
    at += base64.size();
  }
  if (line.substr(at, text.size()) != text) {
    return std::nullopt;
  }
  at += text.size();
  for (auto i = at; i < line.size(); ++i) {
    if (line[i] == '\\') {
      ++i;
    } else if (line[i] == '"') {
      return std::pair{at, i};
    }
  }
  return std::nullopt;
}

// Stands for a body's text in an entry until the text is written in its place; random, so no
// recorded value can be mistaken for it.
std::string body_marker() {
  std::random_device rd;
  char buf[64];
  std::snprintf(buf, sizeof buf, "leakscope-body-%08x%08x%08x", rd(), rd(), rd());
  return buf;
}

}  // namespace

std::size_t write_har(const std::filesystem::path& dir, const std::string& tool_version) {
  const auto records = read_session(dir);
  const auto context = context_of(records);
  // exchanges.jsonl holds each request body up to capture.max_inspect_body, so a long session
  // holds gigabytes: it is indexed here and read one exchange at a time, and the document is
  // written entry by entry.
  std::ifstream exchanges(dir / "exchanges.jsonl", std::ios::binary);
  std::map<std::uint64_t, std::streamoff> offset_of;
  for (std::string line;;) {
    const std::streamoff at = exchanges.tellg();
    if (!std::getline(exchanges, line)) {
      break;
    }
    if (const auto id = flow_of_exchange(line)) {
      offset_of[*id] = at;
    }
  }
  exchanges.clear();

  atomic_file out(dir / "flows.har");  // flows.har is always a whole document or absent
  json log = har_log_header(tool_version);
  log["entries"] = json::array();
  std::string head = json{{"log", log}}.dump();
  // {"log":{...,"entries":[],...}}: the entries go between the brackets.
  const auto slot = head.find("\"entries\":[]") + std::string_view("\"entries\":[").size();
  out.write(std::string_view(head).substr(0, slot));
  const std::string marker = body_marker();
  std::size_t entries = 0;
  for (const auto& f : records.flows) {
    if (!is_exchange(f)) {
      continue;
    }
    std::string line;
    std::optional<std::pair<std::size_t, std::size_t>> text;
    json ex = json::object();
    if (const auto it = offset_of.find(f.value("id", std::uint64_t{0})); it != offset_of.end()) {
      exchanges.seekg(it->second);
      if (std::getline(exchanges, line)) {
        // The body is most of the line and already a JSON string as HAR wants it: it is
        // passed through as bytes, not decoded and encoded again (three copies of it).
        text = body_text_span(line);
        if (text) {
          ex = json::parse(line.substr(0, text->first) + line.substr(text->second), nullptr, false);
          if (ex.is_object() && ex["request"]["body"].is_object()) {
            ex["request"]["body"]["text"] = marker;
          } else {
            text.reset();
          }
        }
        if (!text) {
          ex = json::parse(line, nullptr, false);
        }
      }
      exchanges.clear();
    }
    const auto entry = har_entry(f, std::move(ex), context).dump(-1, ' ', false, json::error_handler_t::replace);
    out.write(entries == 0 ? "\n" : ",\n");
    const auto at = text ? entry.find(marker) : std::string::npos;
    if (at != std::string::npos && entry.find(marker, at + 1) == std::string::npos) {
      out.write(std::string_view(entry).substr(0, at));
      out.write(std::string_view(line).substr(text->first, text->second - text->first));
      out.write(std::string_view(entry).substr(at + marker.size()));
    } else {
      out.write(entry);
    }
    ++entries;
  }
  out.write("\n");
  out.write(std::string_view(head).substr(slot));
  out.write("\n");
  out.commit();
  return entries;
}

}  // namespace leakscope::captures
