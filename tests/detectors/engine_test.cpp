#include "detectors/decode.hpp"
#include "detectors/engine.hpp"
#include "detectors/validators.hpp"

#include <doctest/doctest.h>
#include <zlib.h>

#include <map>
#include <set>

using namespace leakscope;
using namespace leakscope::detectors;

// gzip, zlib (15) or raw deflate (-15), from tests/detectors/decode_test.cpp.
std::string deflate_with(const std::string& text, int window_bits);

namespace {

const char* const profile_imei = "865432101234564";

config::device_profile profile() {
  config::device_profile p;
  p.imei = {profile_imei};
  p.phone_number = {"13812345678"};
  return p;
}

std::string gzip(const std::string& text, int window_bits = 15 + 16) { return deflate_with(text, window_bits); }

http_request post(std::string body, std::vector<header> headers = {}) {
  http_request r;
  r.method = "POST";
  r.scheme = "https";
  r.host = "alog.umeng.com";
  r.target = "/app_logs";
  r.headers = std::move(headers);
  r.body = std::move(body);
  return r;
}

const finding* find(const inspect_result& r, const std::string& category, const std::string& source) {
  for (const auto& f : r.findings) {
    if (f.category == category && f.source == source) {
      return &f;
    }
  }
  return nullptr;
}

}  // namespace

TEST_CASE("the profile IMEI is found in the query, headers and body") {
  const engine e(profile(), {});
  http_request r = post("");
  r.target = "/collect?a=1&imei=865432101234564&b=2";
  r.headers = {{"X-Device", "86-543210-123456-4"}};
  const auto result = e.inspect(r);
  REQUIRE(result.findings.size() == 2);
  CHECK(result.findings[0].where == "url.query:imei");
  CHECK(result.findings[0].category == "imei");
  CHECK(result.findings[0].source == "known");
  CHECK(result.findings[0].confidence == "high");
  CHECK(result.findings[0].value == profile_imei);
  CHECK(result.findings[1].where == "header:X-Device");
}

TEST_CASE("a percent-encoded value lists url in its encoding chain") {
  const engine e(profile(), {});
  http_request r = post("");
  r.target = "/c?tel=%2B8613812345678";
  const auto result = e.inspect(r);
  const auto* f = find(result, "phone_number", "known");
  REQUIRE(f != nullptr);
  CHECK(f->encoding == std::vector<std::string>{"url"});
  CHECK(f->value == "13812345678");
}

TEST_CASE("phone numbers in the spellings SDKs use") {
  const engine e(profile(), {});
  for (const char* body : {"13812345678", "+86 13812345678", "008613812345678", "138-1234-5678", "tel=138 1234 5678"}) {
    CAPTURE(body);
    CHECK(find(e.inspect(post(body)), "phone_number", "known") != nullptr);
  }
  CHECK(find(e.inspect(post("13812345679")), "phone_number", "known") == nullptr);
}

TEST_CASE("a gzip body, declared or not, is decoded before matching") {
  const engine e(profile(), {});
  const auto body = gzip(R"({"header":{"imei":"865432101234564"}})");
  for (const bool declared : {true, false}) {
    CAPTURE(declared);
    const auto result = e.inspect(post(body, declared ? std::vector<header>{{"Content-Encoding", "gzip"}} : std::vector<header>{}));
    const auto* f = find(result, "imei", "known");
    REQUIRE(f != nullptr);
    CHECK(f->where == "body.json:$.header.imei");
    CHECK(f->encoding == std::vector<std::string>{"gzip", "json"});
    CHECK(result.incomplete.empty());
  }
}

TEST_CASE("deflate bodies: zlib-wrapped and raw") {
  const engine e(profile(), {});
  const std::string text = "imei=865432101234564";
  CHECK(find(e.inspect(post(gzip(text, 15), {{"Content-Encoding", "deflate"}})), "imei", "known") != nullptr);
  CHECK(find(e.inspect(post(gzip(text, -15), {{"Content-Encoding", "deflate"}})), "imei", "known") != nullptr);
}

TEST_CASE("a decompression bomb stops at the cap and the decoded part is still scanned") {
  const engine e(profile(), engine_limits{1 << 20});
  const auto bomb = gzip("imei=865432101234564&" + std::string(50u << 20, 'A'));
  CHECK(bomb.size() < (1u << 20));
  const auto result = e.inspect(post(bomb, {{"Content-Encoding", "gzip"}}));
  CHECK(result.incomplete == std::vector<std::string>{"decompression_limit"});
  CHECK(find(result, "imei", "known") != nullptr);
}

TEST_CASE("a body declared gzip that is not gzip is scanned as is and marked") {
  const engine e(profile(), {});
  const auto result = e.inspect(post("imei=865432101234564", {{"Content-Encoding", "gzip"}}));
  CHECK(result.incomplete == std::vector<std::string>{"decode_error"});
  CHECK(find(result, "imei", "known") != nullptr);
}

TEST_CASE("IMEI pattern: 15 digits with a valid Luhn check digit") {
  const engine e(config::device_profile{}, {});
  const auto result = e.inspect(post("a=352099001761481&b=352099001761482&c=000000000000000&d=1352099001761481"));
  REQUIRE(result.findings.size() == 1);
  CHECK(result.findings[0].value == "352099001761481");
  CHECK(result.findings[0].source == "pattern");
  CHECK(result.findings[0].confidence == "medium");

  http_request r = post("");
  r.target = "/x?imei=490154203237518";
  const auto named = e.inspect(r);
  REQUIRE(named.findings.size() == 1);
  CHECK(named.findings[0].confidence == "high");
}

TEST_CASE("adjacent IMEIs separated by one character are both found") {
  const engine e(config::device_profile{}, {});
  CHECK(e.inspect(post("352099001761481,490154203237518")).findings.size() == 2);
}

TEST_CASE("a profile IMEI is reported as known, not again as a pattern") {
  const engine e(profile(), {});
  const auto result = e.inspect(post("865432101234564"));
  REQUIRE(result.findings.size() == 1);
  CHECK(result.findings[0].source == "known");
}

TEST_CASE("a truncated body is reported as not fully inspected") {
  const engine e(profile(), {});
  auto r = post("nothing here");
  r.body_truncated = true;
  CHECK(e.inspect(r).incomplete == std::vector<std::string>{"body_truncated"});
}

TEST_CASE("masking") {
  CHECK(mask("865432101234564") == "8654*******4564");
  CHECK(mask("13812345678") == "13*******78");
  CHECK(mask("abc") == "***");
}

TEST_CASE("Luhn") {
  CHECK(luhn_valid("490154203237518"));
  CHECK_FALSE(luhn_valid("490154203237519"));
  CHECK_FALSE(luhn_valid("49015420323751x"));
}

TEST_CASE("percent decoding") {
  CHECK(percent_decode("%E5%BC%A0+a%2", true) == "张 a%2");
  CHECK(percent_decode("a+b", false) == "a+b");
}

// JSON bodies are walked without building a tree where they can be (json_walk in engine.cpp);
// each body here hides something only the tree walk reports, behind a batch of neutral
// events, and must still be found, at its path.
TEST_CASE("JSON findings that need the tree are still found behind neutral events") {
  config::device_profile p;
  p.location = config::location_fix{39.9087, 116.3975, 2000};
  const engine e(p, {});
  std::string events;
  for (int i = 0; i < 200; ++i) {
    events += R"({"id":"69331746-108b","name":"page_view","page":"/shop/item/75286","price":116.90,"ts":1732300000},)";
  }
  const struct {
    const char* tail;
    const char* category;
    const char* where;
  } cases[] = {
      {R"({"list":["aabbccddeeff","a0b1c2d3e4f5"]})", "wifi_location", "body.json:$.events[200].list"},
      {R"({"list":[{"bundleid":"com.a.one"},{"bundleid":"com.a.two"},{"bundleid":"com.a.three"},{"bundleid":"com.b.four"},{"bundleid":"com.b.five"}]})",
       "installed_apps", "body.json:$.events[200].list"},
      {R"({"people":[{"name":"Li Lei","number":"x"},{"name":"Han Meimei","number":"y"},{"name":"Wang","number":"z"}]})",
       "contacts", "body.json:$.events[200].people"},
      {R"({"pos":{"y":39.9091,"x":116.3982}})", "location", "body.json:$.events[200].pos.y"},
      {R"({"to":"13912345678,13812345678"})", "phone_number", "body.json:$.events[200].to"},
      {R"({"blob":"eyJpbWVpIjoiODY1NDMyMTAxMjM0NTY0In0="})", "imei", "body.json:$.events[200].blob/json:$.imei"},
      {R"({"tel":"13912345678"})", "phone_number", "body.json:$.events[200].tel"},
  };
  for (const auto& c : cases) {
    const std::string tail = c.tail;
    CAPTURE(tail);
    const auto result = e.inspect(post(R"({"events":[)" + events + c.tail + "]}"));
    const finding* hit = nullptr;
    for (const auto& f : result.findings) {
      if (f.category == c.category) {
        hit = &f;
      }
    }
    REQUIRE(hit != nullptr);
    CHECK(hit->where == std::string(c.where));
  }
  CHECK(e.inspect(post(R"({"events":[)" + events + "{}]}")).findings.empty());
}

TEST_CASE("a value repeated in every event of a batch is one finding with a count") {
  const engine e(profile(), {});
  std::string events;
  for (int i = 0; i < 50; ++i) {
    // The profile IMEI in each event, a phone number that is not in the profile in the first
    // ten, and the IMEI again under another key in the last one.
    events += R"({"n":)" + std::to_string(i) + R"(,"dev":{"imei":"865432101234564")" +
              (i < 10 ? R"(,"tel":"13912345678")" : "") + "}},";
  }
  events += R"({"dev":{"id":"865432101234564"}})";
  const auto result = e.inspect(post(R"({"events":[)" + events + "]}"));
  std::map<std::string, const finding*> by_where;
  for (const auto& f : result.findings) {
    by_where[f.category + " " + f.source + " " + f.where] = &f;
  }
  const auto imei = by_where.find("imei known body.json:$.events[0].dev.imei");
  REQUIRE(imei != by_where.end());
  CHECK(imei->second->count == 50);
  const auto tel = by_where.find("phone_number pattern body.json:$.events[0].dev.tel");
  REQUIRE(tel != by_where.end());
  CHECK(tel->second->count == 10);
  // Another key is another place, even with the same value.
  const auto other = by_where.find("imei known body.json:$.events[50].dev.id");
  REQUIRE(other != by_where.end());
  CHECK(other->second->count == 1);
  for (const auto& f : result.findings) {
    CHECK(f.where.find("events[1]") == std::string::npos);
  }
}

// The engine looks for known values only in the leaves the buffer-wide match places them in:
// the places must be right in every format that records them, and leaves whose text was
// decoded from what the buffer spells must still be looked at.
TEST_CASE("known values are found in the leaves they occur in, after escapes, in nested parts") {
  const engine e(profile(), {});
  const auto places = [&](const inspect_result& r, const std::string& category) {
    std::vector<std::string> out;
    for (const auto& f : r.findings) {
      if (f.category == category && f.source == "known") {
        out.push_back(f.where);
      }
    }
    return out;
  };
  std::string events;
  for (int i = 0; i < 30; ++i) {
    events += R"({"n":)" + std::to_string(i) + R"(,"note":"nothing here"},)";
  }
  // The phone number spelled with a JSON escape: the buffer never holds its plain form.
  const auto json = e.inspect(post(R"({"events":[)" + events + R"({"dev":{"imei":"865432101234564"}}],"u":{"tel":"1381\u0032345678"}})"));
  CHECK(places(json, "imei") == std::vector<std::string>{"body.json:$.events[30].dev.imei"});
  CHECK(places(json, "phone_number") == std::vector<std::string>{"body.json:$.u.tel"});

  const auto form = e.inspect(post("a=1&b=two&imei=865432101234564&tel=%2B86%2013812345678",
                                   {{"Content-Type", "application/x-www-form-urlencoded"}}));
  CHECK(places(form, "imei") == std::vector<std::string>{"body.form:imei"});
  CHECK(places(form, "phone_number") == std::vector<std::string>{"body.form:tel"});

  const std::string multipart =
      "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n" + std::string(500, 'x') +
      "\r\n--XyZ\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n" +
      R"({"events":[)" + events + R"({"dev":{"imei":"865432101234564"}}]})" + "\r\n--XyZ--\r\n";
  const auto mp = e.inspect(post(multipart, {{"Content-Type", "multipart/form-data; boundary=XyZ"}}));
  const auto mp_places = places(mp, "imei");
  CAPTURE(mp_places.front());
  REQUIRE(mp_places.size() == 1);
  CHECK(mp_places.front().find("dev.imei") != std::string::npos);
}

// A known value hides a pattern finding of its category at the same place or inside it, not
// at a place whose name merely starts with the same letters.
TEST_CASE("a known value under a longer key does not hide a pattern finding under a shorter one") {
  const engine e(profile(), {});
  const auto result = e.inspect(post(R"({"dev":{"imei":"490154203237518","imei2":")" + std::string(profile_imei) + R"("}})"));
  std::set<std::string> places;
  for (const auto& f : result.findings) {
    places.insert(f.category + " " + f.source + " " + f.where);
  }
  CHECK(places.count("imei known body.json:$.dev.imei2") == 1);
  CHECK(places.count("imei pattern body.json:$.dev.imei") == 1);
  // Inside it, the known value still wins: the IMEI in a JSON string under the same key.
  const auto nested = e.inspect(post(R"({"imei":"{\"imei\":\")" + std::string(profile_imei) + R"(\"}"})"));
  for (const auto& f : nested.findings) {
    CHECK(f.source == "known");
  }
}
