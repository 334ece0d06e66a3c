#include "captures/har_writer.hpp"

#include "captures/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
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
  r.exchanges = read_jsonl(dir / "exchanges.jsonl", warnings);
  return r;
}

json build_har(const session_records& records, const std::string& tool_version) {
  std::map<std::uint64_t, const json*> exchange_of;
  for (const auto& e : records.exchanges) {
    exchange_of[e.value("flow", std::uint64_t{0})] = &e;
  }
  std::map<std::uint64_t, std::vector<const json*>> leaks_of;
  for (const auto& l : records.leaks) {
    leaks_of[l.value("flow", std::uint64_t{0})].push_back(&l);
  }
  std::string consent_ts;
  for (const auto& m : records.marks) {
    if (str_of(m, "kind") == "consent" && (consent_ts.empty() || str_of(m, "ts") < consent_ts)) {
      consent_ts = str_of(m, "ts");
    }
  }

  json entries = json::array();
  for (const auto& f : records.flows) {
    if (!f.contains("method") || !f["method"].is_string()) {
      continue;  // connections that carried no request (refusals, passthrough) are not exchanges
    }
    const auto id = f.value("id", std::uint64_t{0});
    const json empty = json::object();
    const json& ex = exchange_of.count(id) ? *exchange_of[id] : empty;
    const json req = ex.contains("request") ? ex["request"] : json::object();
    const json res = ex.contains("response") && ex["response"].is_object() ? ex["response"] : json::object();
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
    if (req.contains("body")) {
      json post = {{"mimeType", header_value(request["headers"], "content-type")}, {"text", req["body"].value("text", "")}};
      if (req["body"].contains("encoding")) {
        post["encoding"] = req["body"]["encoding"];  // as HTTP Toolkit and mitmproxy write binary bodies
      }
      if (req["body"].value("truncated", false)) {
        post["comment"] = "body kept only up to capture.max_inspect_body";
      }
      request["postData"] = post;
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
    for (const auto* l : leaks_of[id]) {
      leaks.push_back({{"id", (*l)["id"]}, {"category", (*l)["category"]}, {"where", (*l)["where"]}, {"value", (*l)["value"]}});
      if (sdk.is_null() && l->contains("sdk")) {
        sdk = (*l)["sdk"];
      }
      if (party.is_null() && l->contains("party")) {
        party = (*l)["party"];
      }
    }
    const auto start = str_of(f, "start");
    const std::string phase = consent_ts.empty() ? "no_consent_mark" : start < consent_ts ? "before_consent" : "after_consent";
    json entry = {{"startedDateTime", start},
                  {"time", total},
                  {"request", request},
                  {"response", response},
                  {"cache", json::object()},
                  {"timings", timings},
                  {"_flow", id},
                  {"_leaks", leaks},
                  {"_sdk", sdk},
                  {"_party", party},
                  {"_consent_phase", phase},
                  {"_error", f.contains("error") ? f["error"] : json(nullptr)}};
    const auto ip = f.contains("dest") ? str_of(f["dest"], "ip") : std::string();
    if (!ip.empty()) {
      entry["serverIPAddress"] = ip;
    }
    entries.push_back(std::move(entry));
  }
  return {{"log",
           {{"version", "1.2"},
            {"creator", {{"name", "leakscope"}, {"version", tool_version}}},
            {"pages", json::array()},
            {"entries", entries}}}};
}

std::size_t write_har(const std::filesystem::path& dir, const std::string& tool_version) {
  const auto har = build_har(read_session(dir), tool_version);
  // flows.har is always a whole document or absent.
  write_file_atomically(dir / "flows.har", har.dump(1, ' ', false, json::error_handler_t::replace) + "\n");
  return har["log"]["entries"].size();
}

}  // namespace leakscope::captures
