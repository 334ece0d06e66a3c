#include "captures/har_reader.hpp"
#include "captures/har_writer.hpp"
#include "captures/records.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <unistd.h>

using namespace leakscope::captures;
using nlohmann::json;

TEST_CASE("HAR entries are built from the logs and read back by our HAR reader") {
  session_records r;
  r.flows = {
      json{{"id", 1}, {"start", "2026-11-23T02:00:00.000000Z"}, {"method", "POST"}, {"url", "https://alog.umeng.com/app_logs?v=2"},
           {"status", 200}, {"total_ms", 12.5}, {"ttfb_ms", 10.0}, {"tls_handshake_ms", 3.0}, {"bytes_up", 30},
           {"dest", {{"host", "alog.umeng.com"}, {"ip", "203.0.113.7"}}}, {"error", nullptr}},
      json{{"id", 2}, {"start", "2026-11-23T02:00:01.000000Z"}, {"method", nullptr}, {"url", nullptr}, {"status", nullptr},
           {"kind", "connection"}, {"error", {{"type", "tls_client_rejected"}}}},
      json{{"id", 3}, {"start", "2026-11-23T02:00:05.000000Z"}, {"method", "GET"}, {"url", "https://a.example/"},
           {"status", nullptr}, {"error", {{"type", "upstream_timeout"}}}}};
  r.exchanges = {json::parse(to_json_line(exchange_record{1, "HTTP/1.1", {{"Content-Type", "application/octet-stream"}},
                                                          std::string("\x1f\x8b\x08\x00", 4), 30, 200, "OK",
                                                          {{"Content-Type", "text/plain"}}, 2}))};
  r.leaks = {json{{"id", 7}, {"flow", 1}, {"category", "imei"}, {"where", "body"}, {"value", "8654*******4564"},
                  {"party", "third"}, {"sdk", {{"name", "Umeng"}}}}};
  r.marks = {json{{"kind", "consent"}, {"ts", "2026-11-23T02:00:02.000000Z"}}};

  const auto har = build_har(r, "0.1.0");
  const auto& entries = har["log"]["entries"];
  REQUIRE(entries.size() == 2);  // the rejected connection is not an exchange
  const auto& e = entries[0];
  CHECK(e["request"]["postData"]["encoding"] == "base64");
  CHECK(e["request"]["postData"]["text"] == "H4sIAA==");
  CHECK(e["request"]["queryString"][0]["name"] == "v");
  CHECK(e["response"]["status"] == 200);
  CHECK(e["response"]["content"]["mimeType"] == "text/plain");
  CHECK(e["serverIPAddress"] == "203.0.113.7");
  CHECK(e["_leaks"][0]["id"] == 7);
  CHECK(e["_sdk"]["name"] == "Umeng");
  CHECK(e["_party"] == "third");
  CHECK(e["_consent_phase"] == "before_consent");
  CHECK(entries[1]["_consent_phase"] == "after_consent");
  CHECK(entries[1]["response"]["status"] == 0);
  CHECK(entries[1]["_error"]["type"] == "upstream_timeout");

  const auto back = read_har(har.dump());
  REQUIRE(back.size() == 2);
  CHECK(back[0].method == "POST");
  CHECK(back[0].host == "alog.umeng.com");
  CHECK(back[0].body == std::string("\x1f\x8b\x08\x00", 4));
  CHECK(back[0].headers.at(0).first == "Content-Type");
  CHECK(back[1].target == "/");
}

namespace {

std::string exchange_line(std::uint64_t flow, const std::string& body) {
  exchange_record r;
  r.flow = flow;
  r.request_headers = {{"Content-Type", "application/json"}};
  r.request_body = body;
  r.request_body_size = body.size();
  r.status = 200;
  r.reason = "OK";
  return to_json_line(r);
}

void write_text(const std::filesystem::path& file, const std::string& text) {
  std::ofstream(file, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("flows.har written from a session folder is the document build_har makes") {
  const auto dir = std::filesystem::temp_directory_path() / ("leakscope-har-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string flows;
  for (int id = 1; id <= 6; ++id) {
    json f = {{"id", id}, {"start", "2026-11-23T02:00:0" + std::to_string(id) + ".000000Z"}, {"method", "POST"},
              {"url", "https://alog.umeng.com/x?n=" + std::to_string(id)}, {"status", 200}, {"error", nullptr}};
    if (id == 4) {
      f["method"] = nullptr;  // a connection without a request: no entry
    }
    flows += f.dump() + "\n";
  }
  write_text(dir / "flows.jsonl", flows);
  // Exchanges land in the order they finished, not the flows' order; flow 5 has none, flow
  // 6's line is torn (the session was cut off), and a large body is kept as it was.
  const std::string large(3 << 20, 'x');
  const std::string body3 = "{\"imei\":\"865432101234564\",\"note\":\"a\\\\b\\n\tc \xe5\xbc\xa0\"}";
  write_text(dir / "exchanges.jsonl", exchange_line(3, body3) +
                                          exchange_line(1, std::string("\x1f\x8b\x08\x00", 4)) +
                                          exchange_line(2, large) + exchange_line(6, "{}").substr(0, 20));
  write_text(dir / "leaks.jsonl", json{{"id", 1}, {"flow", 3}, {"category", "imei"}, {"where", "body.json:$.imei"},
                                       {"value", "8654*******4564"}, {"party", "third"}}.dump() + "\n");
  write_text(dir / "marks.jsonl", json{{"kind", "consent"}, {"ts", "2026-11-23T02:00:02.500000Z"}}.dump() + "\n");

  CHECK(write_har(dir, "0.1.0") == 5);
  std::ifstream in(dir / "flows.har");
  const auto written = json::parse(in);
  auto records = read_session(dir);
  CHECK(records.exchanges.empty());
  records.exchanges = {json::parse(exchange_line(3, body3)),
                       json::parse(exchange_line(1, std::string("\x1f\x8b\x08\x00", 4))),
                       json::parse(exchange_line(2, large))};
  CHECK(written == build_har(records, "0.1.0"));
  const auto& entries = written["log"]["entries"];
  REQUIRE(entries.size() == 5);
  CHECK(entries[1]["request"]["postData"]["text"].get<std::string>().size() == large.size());
  CHECK(entries[2]["_leaks"][0]["category"] == "imei");
  CHECK(entries[3]["_flow"] == 5);
  CHECK_FALSE(entries[3]["request"].contains("postData"));
  CHECK_FALSE(entries[4]["request"].contains("postData"));  // the torn line is not an exchange
  CHECK(entries[2]["_consent_phase"] == "after_consent");
  CHECK((std::filesystem::status(dir / "flows.har").permissions() & std::filesystem::perms::group_all) ==
        std::filesystem::perms::none);
  CHECK_FALSE(std::filesystem::exists(dir / "flows.har.tmp"));
  std::filesystem::remove_all(dir);
}
