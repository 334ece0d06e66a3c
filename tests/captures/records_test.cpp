#include "captures/recorder.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <random>
#include <sys/stat.h>
#include <thread>

using namespace leakscope::captures;

namespace {

wall_time at(long long us) { return wall_time(std::chrono::microseconds(us)); }

leak_record sample_leak() {
  leak_record r;
  r.id = 3;
  r.ts = at(1795441512123456);
  r.t_session_ms = 12345;
  r.flow = 42;
  r.client = "192.168.1.23:53211";
  r.dest = {"alog.umeng.com", "203.0.113.7", 443, "https"};
  r.party = "third";
  r.party_rule = "sdk_catalog: umeng.com";
  r.domain = "umeng.com";
  r.sdk = sdk_info{"Umeng", "Alibaba (Umeng)", "analytics"};
  r.category = "imei";
  r.source = "known";
  r.confidence = "high";
  r.where = "body";
  r.encoding = {"gzip"};
  r.value = "8654*******4564";
  r.method = "POST";
  r.path = "/app_logs";
  return r;
}

std::vector<std::string> lines_of(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) {
    lines.push_back(l);
  }
  return lines;
}

}  // namespace

TEST_CASE("timestamps are ISO 8601 in UTC with microseconds, as gmtime would give them") {
  CHECK(iso8601(at(0)) == "1970-01-01T00:00:00.000000Z");
  CHECK(iso8601(at(1'795'441'512'123'456)) == "2026-11-23T13:45:12.123456Z");
  CHECK(iso8601(at(1'709'164'799'000'001)) == "2024-02-28T23:59:59.000001Z");
  CHECK(iso8601(at(1'709'164'800'999'999)) == "2024-02-29T00:00:00.999999Z");
  CHECK(iso8601(at(4'102'444'799'999'999)) == "2099-12-31T23:59:59.999999Z");
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    const long long us = static_cast<long long>(rng() % 4'000'000'000'000'000ULL);  // to 2096
    const std::time_t secs = static_cast<std::time_t>(us / 1'000'000);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char want[96];
    std::snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, us % 1'000'000);
    CAPTURE(us);
    REQUIRE(iso8601(at(us)) == want);
  }
}

TEST_CASE("leak record JSON line (golden)") {
  CHECK(to_json_line(sample_leak()) ==
        R"json({"category":"imei","client":"192.168.1.23:53211","confidence":"high","count":1,"dest":{"host":"alog.umeng.com","ip":"203.0.113.7","port":443,"scheme":"https"},"domain":"umeng.com","encoding":["gzip"],"flow":42,"frames":{"decrypted":null,"traffic":null},"har_entry":null,"id":3,"party":"third","party_rule":"sdk_catalog: umeng.com","request":{"method":"POST","path":"/app_logs"},"sdk":{"category":"analytics","name":"Umeng","vendor":"Alibaba (Umeng)"},"source":"known","t_consent_ms":null,"t_session_ms":12345,"ts":"2026-11-23T13:45:12.123456Z","value":"8654*******4564","where":"body"})json"
        "\n");
}

TEST_CASE("flow record JSON line (golden)") {
  flow_record f;
  f.id = 7;
  f.client = "127.0.0.1:5000";
  f.dest = {"example.com", "", 443, "https"};
  f.kind = "connection";
  f.start = at(1795441512000001);
  f.total_ms = 1.23456;
  f.error = typed_error{"tls_client_rejected", "the client aborted the handshake (unknown CA): pinning suspected"};
  CHECK(to_json_line(f) ==
        R"({"bytes_down":0,"bytes_up":0,"client":"127.0.0.1:5000","complete":true,"dest":{"host":"example.com","ip":null,"port":443,"scheme":"https"},"error":{"detail":"the client aborted the handshake (unknown CA): pinning suspected","type":"tls_client_rejected"},"id":7,"incomplete":[],"kind":"connection","leaks":0,"method":null,"note":null,"request_truncated":false,"sni":null,"start":"2026-11-23T13:45:12.000001Z","status":null,"tls_handshake_ms":null,"total_ms":1.235,"ttfb_ms":null,"url":null})"
        "\n");
}

TEST_CASE("bytes that are not UTF-8 do not break a record") {
  flow_record f;
  f.url = std::string("/\xff\xfe", 3);
  const auto line = to_json_line(f);
  CHECK(nlohmann::json::parse(line)["url"] == "/\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("an exchange line holds the body as HAR text or base64, as a JSON serialiser would") {
  using nlohmann::json;
  const std::vector<std::pair<std::string, bool>> bodies = {  // body, kept as text
      {"imei=865432101234564&n=\"quoted\"\\back\nline\r\tend", true},
      {"{\"name\":\"\u5f20\u4e09\"}", true},
      {"\xe5\xbc\xa0\xe4\xb8\x89 \xe3\x80\x90\xe6\xb5\x8b\xe8\xaf\x95\xe3\x80\x91", true},  // 张三 【测试】
      {"x", true},
      {"", true},
      {std::string("\x1f\x8b\x08", 3), false},
      {std::string("\x1f\x8b\x08\x00", 4), false},
      {std::string("a\0", 2), false},
      {std::string("\x01\x02\x03\x04\x05", 5), false},
      {"\xe5\xbc", false}};  // a UTF-8 sequence cut short is not text
  for (const auto& [body, text] : bodies) {
    CAPTURE(body);
    exchange_record r;
    r.flow = 42;
    r.request_headers = {{"Content-Type", "text/plain"}, {"X-Odd", "a\"b"}};
    r.request_body = body;
    r.request_body_size = body.size() + 10;
    r.status = 200;
    r.reason = "OK";
    r.response_headers = {{"Server", "nginx"}};
    r.response_body_size = 7;
    json request = {{"httpVersion", r.http_version},
                    {"headers", json::array({{{"name", "Content-Type"}, {"value", "text/plain"}},
                                             {{"name", "X-Odd"}, {"value", "a\"b"}}})},
                    {"bodySize", r.request_body_size}};
    if (!body.empty()) {
      request["body"] = text ? json{{"text", body}, {"truncated", true}}
                             : json{{"text", json::parse(to_json_line(r))["request"]["body"]["text"]},
                                    {"encoding", "base64"},
                                    {"truncated", true}};
    }
    const json expected = {{"flow", 42},
                           {"request", request},
                           {"response", {{"status", 200}, {"statusText", "OK"}, {"bodySize", 7},
                                         {"headers", json::array({{{"name", "Server"}, {"value", "nginx"}}})}}}};
    const auto line = to_json_line(r);
    CHECK(line == expected.dump() + "\n");
  }
  // base64 at each of the three lengths modulo 3
  const std::vector<std::pair<std::string, std::string>> b64 = {
      {std::string("\x01", 1), "AQ=="}, {std::string("\x01\x02", 2), "AQI="}, {std::string("\x01\x02\x03", 3), "AQID"},
      {std::string("\xff\xfe\xfd\xfc", 4), "//79/A=="}};
  for (const auto& [bytes, encoded] : b64) {
    exchange_record r;
    r.request_body = bytes;
    r.request_body_size = bytes.size();
    const auto j = json::parse(to_json_line(r));
    CHECK(j["request"]["body"]["text"] == encoded);
    CHECK(j["request"]["body"]["encoding"] == "base64");
    CHECK(j["request"]["body"]["truncated"] == false);
    CHECK(j["response"].is_null());
  }
}

TEST_CASE("the recorder writes whole lines in submission order from many threads") {
  char tmpl[] = "/tmp/leakscope-rec-XXXXXX";
  const std::filesystem::path base = ::mkdtemp(tmpl);
  const auto dir = create_session_dir(base, std::chrono::system_clock::now());
  struct stat st {};
  ::stat(dir.c_str(), &st);
  CHECK((st.st_mode & 0777) == 0700);
  {
    recorder rec(dir);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 500; ++i) {
          auto leak = sample_leak();
          leak.id = static_cast<std::uint64_t>(t * 1000 + i);
          leak.category = t % 2 ? "imei" : "phone_number";
          rec.write(leak);
          flow_record f;
          f.id = leak.id;
          rec.write(f);
        }
      });
    }
    for (auto& th : threads) {
      th.join();
    }
    rec.close();
    const auto s = rec.summary();
    CHECK(s.flows == 2000);
    CHECK(s.leaks == 2000);
    CHECK(s.leaks_by_category.at("imei") == 1000);
    CHECK(s.leaks_by_destination.at("alog.umeng.com") == 2000);
  }
  const auto leaks = lines_of(dir / "leaks.jsonl");
  REQUIRE(leaks.size() == 2000);
  std::map<int, int> last;  // per thread, ids must rise
  for (const auto& l : leaks) {
    const auto id = nlohmann::json::parse(l)["id"].get<int>();
    const int t = id / 1000;
    CHECK((last.count(t) == 0 || last[t] < id));
    last[t] = id;
  }
  CHECK(lines_of(dir / "flows.jsonl").size() == 2000);
  std::filesystem::remove_all(base);
}

namespace {

// How flow lines were written through nlohmann: the reference the hand-written writer keeps to.
std::string flow_line_reference(const flow_record& r) {
  using nlohmann::json;
  const auto ms = [](double v) { return json(std::round(v * 1000.0) / 1000.0); };
  const auto optional_ms = [&ms](const std::optional<double>& v) { return v ? ms(*v) : json(nullptr); };
  const auto or_null = [](const std::string& v) { return v.empty() ? json(nullptr) : json(v); };
  const json j = {{"id", r.id},
                  {"start", iso8601(r.start)},
                  {"client", r.client},
                  {"dest", {{"host", r.dest.host}, {"ip", or_null(r.dest.ip)}, {"port", r.dest.port}, {"scheme", r.dest.scheme}}},
                  {"sni", or_null(r.sni)},
                  {"kind", r.kind},
                  {"method", or_null(r.method)},
                  {"url", or_null(r.url)},
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
                  {"note", or_null(r.note)}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace

TEST_CASE("flow and exchange lines are what nlohmann writes for the same values, whatever the bytes") {
  std::mt19937_64 rng(17);
  const std::vector<std::string> pieces = {"a", "Z", "/", " ", "\"", "\\", "\n", "\r", "\t", "\b", "\f", std::string(1, '\0'),
                                           "\x01", "\x1f", "\x7f", "张三", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                           "\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82"};
  const auto text = [&] {
    std::string s;
    const auto n = rng() % 6;
    for (std::uint64_t i = 0; i < n; ++i) {
      s += pieces[rng() % pieces.size()];
    }
    return s;
  };
  const double times[] = {0, 0.0004, 0.0005, 0.001, 1, 1.5, 12.3456789, 999.9995, 1e6, 123456789.123, 5e14, 2e15};
  for (int round = 0; round < 2000; ++round) {
    flow_record f;
    f.id = rng();
    f.client = text();
    f.dest = {text(), text(), static_cast<std::uint16_t>(rng()), text()};
    f.sni = text();
    f.kind = text();
    f.method = text();
    f.url = text();
    f.status = static_cast<int>(rng() % 3) == 0 ? 0 : static_cast<int>(rng() % 600);
    f.bytes_up = rng();
    f.bytes_down = rng() % 1000;
    f.start = at(static_cast<long long>(rng() % 4'000'000'000'000'000));
    if (rng() % 2) {
      f.tls_handshake_ms = times[rng() % std::size(times)];
    }
    if (rng() % 2) {
      f.ttfb_ms = static_cast<double>(rng() % 10'000'000) / 997.0;
    }
    f.total_ms = rng() % 2 ? times[rng() % std::size(times)] : static_cast<double>(rng() % 100'000'000) / 7.0;
    f.complete = rng() % 2;
    f.request_truncated = rng() % 2;
    for (auto n = rng() % 3; n > 0; --n) {
      f.incomplete.push_back(text());
    }
    f.leaks = rng() % 5;
    if (rng() % 2) {
      f.error = typed_error{text(), text()};
    }
    f.note = text();
    const auto line = to_json_line(f);
    CAPTURE(line);
    REQUIRE(line == flow_line_reference(f));

    exchange_record e;
    e.flow = rng();
    e.http_version = text();
    for (auto n = rng() % 4; n > 0; --n) {
      e.request_headers.emplace_back(text(), text());
      e.response_headers.emplace_back(text(), text());
    }
    e.request_body_size = rng() % 100;
    e.status = rng() % 2 ? 0 : 200;
    e.reason = text();
    e.response_body_size = rng();
    const auto parsed = nlohmann::json::parse(to_json_line(e));
    nlohmann::json headers = nlohmann::json::array();
    for (const auto& [name, value] : e.request_headers) {
      headers.push_back({{"name", name}, {"value", value}});
    }
    const auto dump = [](const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); };
    CHECK(dump(parsed["request"]["headers"]) == dump(headers));
    CHECK(to_json_line(e).find(dump(headers)) != std::string::npos);
  }
}

// A body is kept as text only when a JSON reader takes it back byte for byte; anything else
// (overlong forms, surrogates, code points past U+10FFFF, cut sequences, control characters)
// as base64. Long bodies take the 16-bytes-at-a-time path, so pieces land at every offset. No
// piece starts with a continuation byte, so a cut sequence stays cut whatever follows it.
TEST_CASE("an exchange body comes back from its line byte for byte, as text or as base64") {
  using nlohmann::json;
  std::mt19937_64 rng(23);
  const std::vector<std::string> valid = {"a", "{\"k\":\"v\"}", "\\", "\n", "\r\t", " ", "张三", "\xc2\xa9", "\xe0\xa0\x80",
                                          "\xed\x9f\xbf", "\xef\xbf\xbd", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
                                          std::string(40, 'x')};
  const std::vector<std::string> invalid = {"\xc0\xaf", "\xc1\xbf", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf",
                                            "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "a\x80",
                                            "\xe2\x82", std::string(1, '\0'), "\x1f", "\x7f\x01"};
  for (int round = 0; round < 3000; ++round) {
    std::string body;
    bool bad = false;
    for (auto n = rng() % 12; n > 0; --n) {
      if (rng() % 10 == 0) {
        const auto& piece = invalid[rng() % invalid.size()];
        bad = true;
        body += piece;
      } else {
        body += valid[rng() % valid.size()];
      }
    }
    exchange_record r;
    r.request_body = body;
    r.request_body_size = body.size();
    const auto line = to_json_line(r);
    CAPTURE(body);
    json parsed;
    REQUIRE_NOTHROW(parsed = json::parse(line));
    if (body.empty()) {
      CHECK(!parsed["request"].contains("body"));
      continue;
    }
    const auto& kept = parsed["request"]["body"];
    if (kept.contains("encoding")) {
      CHECK(bad);
      CHECK(kept["encoding"] == "base64");
    } else {
      CHECK(!bad);
      CHECK(kept["text"].get<std::string>() == body);
      // Escaped as nlohmann escapes it, byte for byte: flows.har copies the text as it is.
      CHECK(line.find("\"text\":" + json(body).dump() + ",") != std::string::npos);
    }
  }
}

TEST_CASE("a flow line never reaches its file before the frames queued ahead of it") {
  char tmpl[] = "/tmp/leakscope-rec-XXXXXX";
  const std::filesystem::path base = ::mkdtemp(tmpl);
  const auto dir = create_session_dir(base, std::chrono::system_clock::now());
  const std::size_t block = 200 * 1024 + 13;  // frames that end anywhere in a block of the disk
  const int frames = 60;
  std::uint64_t header = 0;
  std::atomic<bool> done{false};
  int checked = 0;
  {
    recorder rec(dir, true);
    header = std::filesystem::file_size(dir / "traffic.pcapng");
    // A reader that sees flow N must find frame N whole in the capture.
    std::thread reader([&] {
      while (!done.load()) {
        const auto flows = lines_of(dir / "flows.jsonl");
        const auto traffic = std::filesystem::file_size(dir / "traffic.pcapng");
        for (const auto& l : flows) {
          if (l.empty() || l.back() != '}') {
            continue;  // a line being written
          }
          const auto frame = nlohmann::json::parse(l)["id"].get<std::uint64_t>();
          CHECK(traffic >= header + frame * block);
          ++checked;
        }
      }
    });
    for (int i = 0; i < frames; ++i) {
      const auto frame = rec.write_traffic(std::string(block, static_cast<char>('a' + i % 26)));
      flow_record f;
      f.id = frame;
      rec.write(f);
    }
    rec.close();
    done = true;
    reader.join();
    CHECK(rec.summary().flows == static_cast<std::uint64_t>(frames));
  }
  CHECK(checked > 0);
  CHECK(std::filesystem::file_size(dir / "traffic.pcapng") == header + frames * block);
  CHECK(lines_of(dir / "flows.jsonl").size() == static_cast<std::size_t>(frames));
  std::filesystem::remove_all(base);
}
