#include "captures/har_reader.hpp"

#include <doctest/doctest.h>

using namespace leakscope::captures;

TEST_CASE("HAR entries become requests; bad entries are skipped with a reason") {
  const std::string har = R"({"log":{"entries":[
    {"startedDateTime":"2026-11-23T10:00:00.250+08:00","serverIPAddress":"[2001:db8::1]",
     "request":{"method":"POST","url":"https://User@Alog.Umeng.com:8443/a/b?x=1#frag",
                "headers":[{"name":"Content-Type","value":"application/json"}],
                "postData":{"mimeType":"application/json","text":"aGVsbG8=","encoding":"base64"}}},
    {"request":{"method":"GET"}},
    {"request":{"method":"POST","url":"http://h/","postData":{"params":[{"name":"a","value":"1"},{"name":"b","value":"2"}]}}}
  ]}})";
  std::vector<std::string> skipped;
  const auto entries = read_har(har, &skipped);
  REQUIRE(entries.size() == 2);
  const auto& e = entries[0];
  CHECK(e.index == 0);
  CHECK(e.host == "alog.umeng.com");
  CHECK(e.port == 8443);
  CHECK(e.scheme == "https");
  CHECK(e.target == "/a/b?x=1");
  CHECK(e.server_ip == "2001:db8::1");
  CHECK(e.body == "hello");
  CHECK(e.started == *parse_iso8601("2026-11-23T02:00:00.250Z"));
  CHECK(entries[1].index == 2);
  CHECK(entries[1].body == "a=1&b=2");
  CHECK(entries[1].port == 80);
  REQUIRE(skipped.size() == 1);
  CHECK(skipped[0].rfind("log.entries[1]:", 0) == 0);
}

TEST_CASE("not a HAR file") {
  CHECK_THROWS_AS(read_har("[1,2"), har_error);
  CHECK_THROWS_AS(read_har("{\"log\":{}}"), har_error);
}

TEST_CASE("ISO 8601 with offsets") {
  const auto a = parse_iso8601("2026-11-23T10:00:00+08:00");
  const auto b = parse_iso8601("2026-11-23T02:00:00Z");
  REQUIRE(a);
  CHECK(a == b);
  CHECK_FALSE(parse_iso8601("yesterday").has_value());
}
