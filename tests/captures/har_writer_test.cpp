#include "captures/har_reader.hpp"
#include "captures/har_writer.hpp"
#include "captures/records.hpp"

#include <doctest/doctest.h>

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
