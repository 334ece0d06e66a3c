// Each rule on a small constructed session.
#include "captures/report.hpp"

#include <doctest/doctest.h>

#include <set>

using namespace leakscope::captures;
using nlohmann::json;

namespace {

json leak(std::uint64_t id, std::int64_t t_ms, const std::string& category, const std::string& party,
          const std::string& sdk = "", const std::string& host = "alog.umeng.com") {
  return {{"id", id},
          {"t_session_ms", t_ms},
          {"ts", "2026-11-23T02:00:00Z"},
          {"flow", id},
          {"category", category},
          {"party", party},
          {"domain", sdk.empty() ? host : "umeng.com"},
          {"dest", {{"host", host}}},
          {"sdk", sdk.empty() ? json(nullptr) : json{{"name", sdk}, {"vendor", "V"}, {"category", "analytics"}}}};
}

json mark(const std::string& kind, std::int64_t t_ms) { return {{"kind", kind}, {"t_session_ms", t_ms}, {"text", nullptr}}; }

std::vector<json> of_rule(const json& report, const std::string& rule) {
  std::vector<json> out;
  for (const auto& f : report["findings"]) {
    if (f["rule"] == rule) {
      out.push_back(f);
    }
  }
  return out;
}

json run(const session_records& r, report_rules rules = {}) {
  rules.max_per_minute_default = rules.max_per_minute_default == 0 ? 1 : rules.max_per_minute_default;
  return build_report(r, rules, [](const std::string&) { return std::string("third"); });
}

}  // namespace

TEST_CASE("R1: leaks before the consent mark, and all of them without one") {
  session_records r;
  r.leaks = {leak(1, 500, "imei", "third", "Umeng"), leak(2, 1500, "imei", "third", "Umeng")};
  r.marks = {mark("consent", 1000)};
  auto rep = run(r);
  auto f = of_rule(rep, "R1");
  REQUIRE(f.size() == 1);
  CHECK(f[0]["count"] == 1);
  CHECK(f[0]["leaks"] == json::array({1}));
  CHECK(f[0]["first_t_consent_ms"] == -500);
  CHECK(f[0]["destination"] == "Umeng");
  CHECK(f[0]["clause"].get<std::string>().find("三、1") != std::string::npos);

  r.marks.clear();
  rep = run(r);
  CHECK(of_rule(rep, "R1").at(0)["count"] == 2);
  CHECK(rep["session"]["note"].get<std::string>().find("no consent mark") != std::string::npos);
}

TEST_CASE("R2: leaks after a refusal, until a later consent") {
  session_records r;
  r.leaks = {leak(1, 100, "imei", "third", "Umeng"), leak(2, 2000, "imei", "third", "Umeng"),
             leak(3, 5000, "imei", "third", "Umeng")};
  r.marks = {mark("refuse", 1000), mark("consent", 4000)};
  const auto f = of_rule(run(r), "R2");
  REQUIRE(f.size() == 1);
  CHECK(f[0]["leaks"] == json::array({2}));
}

TEST_CASE("R3: third parties get only what is declared for them; R4: the app only what it declares") {
  session_records r;
  r.leaks = {leak(1, 0, "imei", "third", "Umeng"), leak(2, 0, "android_id", "third", "Umeng"),
             leak(3, 0, "phone_number", "first", "", "api.demo.example"),
             leak(4, 0, "location", "first", "", "api.demo.example")};
  r.marks = {mark("consent", -1)};
  report_rules rules;
  rules.declared_sdks["Umeng"] = {"android_id"};
  rules.declared_first_party = {"phone_number"};
  const auto rep = run(r, rules);
  const auto r3 = of_rule(rep, "R3");
  REQUIRE(r3.size() == 1);
  CHECK(r3[0]["category"] == "imei");
  const auto r4 = of_rule(rep, "R4");
  REQUIRE(r4.size() == 1);
  CHECK(r4[0]["category"] == "location");
  CHECK(of_rule(rep, "R1").empty());
}

TEST_CASE("R5: the peak per minute against the limit, per category overrides") {
  session_records r;
  for (std::uint64_t i = 0; i < 14; ++i) {
    r.leaks.push_back(leak(i + 1, static_cast<std::int64_t>(i) * 4000, "imei", "third", "Umeng"));  // 4 s apart
  }
  r.leaks.push_back(leak(100, 0, "android_id", "third", "Umeng"));
  r.marks = {mark("consent", -1)};
  report_rules rules;
  rules.max_per_minute_default = 1;
  auto f = of_rule(run(r, rules), "R5");
  REQUIRE(f.size() == 1);
  CHECK(f[0]["category"] == "imei");
  CHECK(f[0]["count"] == 14);
  CHECK(f[0]["peak_per_minute"] == 14);  // 0…52 s: all fourteen inside one minute
  rules.max_per_minute["imei"] = 20;
  CHECK(of_rule(run(r, rules), "R5").empty());
}

TEST_CASE("R6: leaks between background and foreground") {
  session_records r;
  r.leaks = {leak(1, 100, "location", "third", "Umeng"), leak(2, 2000, "location", "third", "Umeng"),
             leak(3, 4000, "location", "third", "Umeng"), leak(4, 9000, "location", "third", "Umeng")};
  r.marks = {mark("consent", 0), mark("background", 1000), mark("foreground", 3000), mark("background", 8000)};
  const auto f = of_rule(run(r), "R6");
  REQUIRE(f.size() == 1);
  CHECK(f[0]["leaks"] == json::array({2, 4}));
}

TEST_CASE("limits: pinning, passthrough and opaque bodies to third parties are stated") {
  session_records r;
  r.flows = {{{"dest", {{"host", "pinned.example"}}}, {"error", {{"type", "tls_client_rejected"}}}, {"kind", "connection"}},
             {{"dest", {{"host", "pinned.example"}}}, {"kind", "passthrough"}, {"error", nullptr}},
             {{"dest", {{"host", "sdk.example"}}}, {"kind", "https"}, {"incomplete", {"opaque_body"}}, {"error", nullptr}}};
  const auto rep = run(r);
  std::set<std::string> kinds;
  for (const auto& l : rep["limits"]) {
    kinds.insert(l["kind"].get<std::string>() + "@" + l["host"].get<std::string>());
  }
  CHECK(kinds == std::set<std::string>{"pinning@pinned.example", "passthrough@pinned.example", "opaque@sdk.example"});
}

TEST_CASE("renderers: markdown and a self-contained HTML file") {
  session_records r;
  r.leaks = {leak(1, 500, "imei", "third", "Umeng")};
  r.marks = {mark("consent", 1000)};
  const auto rep = run(r);
  const auto md = report_markdown(rep);
  CHECK(md.find("### R1 Collected before consent") != std::string::npos);
  CHECK(md.find("0.5 s before consent") != std::string::npos);
  const auto html = report_html(rep);
  CHECK(html.rfind("<!doctype html>", 0) == 0);
  CHECK(html.find("<svg") != std::string::npos);
  CHECK(html.find("<circle") != std::string::npos);
  for (const char* load : {"src=", "href=", "url(", "@import", "<script", "<link"}) {  // nothing external
    CAPTURE(load);
    CHECK(html.find(load) == std::string::npos);
  }
}
