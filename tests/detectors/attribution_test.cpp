#include "detectors/attribution.hpp"

#include <doctest/doctest.h>

using namespace leakscope;
using namespace leakscope::detectors;

namespace {

// Rules in the list's own format, covering each kind the real list uses.
const char* const psl_text = R"(// ===BEGIN ICANN DOMAINS===
com
cn
com.cn
uk
co.uk
// wildcard and exception (as for .ck and .kawasaki.jp)
*.ck
!www.ck
// ===BEGIN PRIVATE DOMAINS===
github.io
)";

std::vector<config::sdk_entry> catalog() {
  return {{"umeng.com", "Umeng", "Alibaba (Umeng)", "analytics", "CN", "", ""},
          {"utoken.umeng.com", "Umeng", "Alibaba (Umeng)", "risk", "CN", "", ""},
          {"msg.umengcloud.com", "Umeng Push", "Alibaba (Umeng)", "push", "CN", "", ""}};
}

}  // namespace

TEST_CASE("suffix matching is label-aligned") {
  CHECK(host_matches_suffix("alog.umeng.com", "umeng.com"));
  CHECK(host_matches_suffix("umeng.com", "umeng.com"));
  CHECK_FALSE(host_matches_suffix("xumeng.com", "umeng.com"));
  CHECK_FALSE(host_matches_suffix("umeng.com.evil.example", "umeng.com"));
}

TEST_CASE("registrable domains under the public suffix list") {
  const public_suffix_list psl(psl_text);
  CHECK(psl.registrable_domain("alog.umeng.com") == "umeng.com");
  CHECK(psl.registrable_domain("a.b.example.co.uk") == "example.co.uk");
  CHECK(psl.registrable_domain("api.shop.com.cn") == "shop.com.cn");
  CHECK(psl.registrable_domain("a.b.ck") == "a.b.ck");  // *.ck: b.ck is a public suffix
  CHECK(psl.registrable_domain("www.ck") == "www.ck");  // !www.ck: the exception is registrable
  CHECK(psl.registrable_domain("x.y.github.io") == "y.github.io");  // private section
  CHECK(psl.registrable_domain("co.uk").empty());                   // a public suffix itself
  CHECK(psl.registrable_domain("203.0.113.7").empty());
  CHECK(psl.registrable_domain("WWW.Example.COM.") == "example.com");
  CHECK(public_suffix_list().registrable_domain("a.b.example.org") == "example.org");  // default rule *
}

TEST_CASE("the system public suffix list loads") {
  const auto psl = public_suffix_list::load_system();
  CHECK(psl.rule_count() > 5000);
  CHECK(psl.registrable_domain("a.b.example.com.cn") == "example.com.cn");
  CHECK(psl.registrable_domain("foo.blogspot.com") == "foo.blogspot.com");
}

TEST_CASE("party decisions say which rule decided") {
  const attributor a(catalog(), {"demo.example"}, public_suffix_list(psl_text));

  auto r = a.attribute("utoken.umeng.com");  // the longest catalog suffix wins
  CHECK(r.party == "third");
  REQUIRE(r.sdk);
  CHECK(r.sdk->category == "risk");
  CHECK(r.domain == "utoken.umeng.com");
  CHECK(r.rule == "sdk_catalog: utoken.umeng.com");

  r = a.attribute("ALOG.Umeng.com.");
  CHECK(r.sdk->sdk == "Umeng");
  CHECK(r.sdk->category == "analytics");

  r = a.attribute("api.demo.example");
  CHECK(r.party == "first");
  CHECK(r.rule == "app.first_party: demo.example");
  CHECK_FALSE(r.sdk);

  r = a.attribute("cdn.partner.co.uk");
  CHECK(r.party == "third");
  CHECK_FALSE(r.sdk);
  CHECK(r.domain == "partner.co.uk");
  CHECK(r.rule == "other domain: partner.co.uk");

  r = a.attribute("203.0.113.7");
  CHECK(r.party == "unknown");
  CHECK(r.rule.rfind("ip literal", 0) == 0);

  const attributor with_ip(catalog(), {"203.0.113.7"}, public_suffix_list(psl_text));
  CHECK(with_ip.attribute("203.0.113.7").party == "first");  // configured
}

TEST_CASE("the built-in catalog parses and names SDKs as the reference table does") {
  const auto all = config::parse_sdk_catalog(config::builtin_sdk_catalog(), "built-in");
  CHECK(all.size() > 300);
  const attributor a(all, {}, public_suffix_list(psl_text));
  const auto r = a.attribute("alog.umeng.com");
  REQUIRE(r.sdk);
  CHECK(r.sdk->sdk == "Umeng");
  CHECK(r.sdk->vendor == "Alibaba (Umeng)");
  CHECK_FALSE(r.sdk->source.empty());
}

TEST_CASE("catalog errors name the entry") {
  try {
    config::parse_sdk_catalog("sdks:\n  - {domain: a.example, sdk: A, category: spying}\n", "mine.yaml");
    FAIL("expected an error");
  } catch (const config::config_error& e) {
    CHECK(std::string(e.what()).find("mine.yaml:2:") == 0);
    CHECK(std::string(e.what()).find("sdks[0].category must be one of") != std::string::npos);
  }
}
