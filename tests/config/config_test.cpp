#include "config/config.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

using namespace leakscope::config;

namespace {

std::string error_of(const std::string& yaml) {
  try {
    parse_config(yaml, "test.yaml", "/base");
  } catch (const config_error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("an empty file gives the documented defaults") {
  const auto c = parse_config("", "test.yaml", "/base");
  CHECK(c.listen.address == "127.0.0.1");
  CHECK(c.listen.port == 8080);
  CHECK(c.listen.mode == listen_mode::explicit_proxy);
  REQUIRE(c.clients.allow.size() == 2);
  CHECK(c.clients.allow[0].text == "127.0.0.1/32");
  CHECK(c.upstream.verify);
  CHECK_FALSE(c.upstream.allow_ports.has_value());
  CHECK_FALSE(c.upstream.allow_private);
  CHECK(c.tls.auto_passthrough);
  CHECK(c.capture.max_inspect_body == 16u << 20);
  CHECK(c.capture.dir == "/base/captures");
  CHECK(c.limits.max_header_bytes == 64u << 10);
  CHECK(c.limits.timeouts.idle == std::chrono::seconds(60));
  CHECK(c.rules.max_per_minute_default == 1);
}

TEST_CASE("the shipped default config loads") {
  const auto c = load_config(std::filesystem::path(LEAKSCOPE_SOURCE_DIR) / "config/leakscope.yaml");
  CHECK(c.listen.port == 8080);
  CHECK_FALSE(c.device.imei.empty());
  CHECK(c.device.location.has_value());
  CHECK(c.device.contacts.at(0).name == "张三");
}

TEST_CASE("every key of the schema is accepted") {
  const auto c = parse_config(R"(
listen: {address: "::1", port: 9000, mode: transparent}
clients: {allow: [10.0.0.0/8, "fd00::/8"]}
ca: {dir: ca}
upstream:
  verify: false
  extra_ca: [lab.pem]
  resolve: {Example.COM: 127.0.0.2}
  allow_ports: [443, 80]
  allow_private: true
tls: {passthrough: ["*.bank.example"], auto_passthrough: false}
capture: {dir: /tmp/c, max_inspect_body: 1MiB, pcapng: false, har: false}
control: {address: 127.0.0.1, port: 9001}
app: {name: Demo, first_party: [demo.example]}
device: {imei: "865432101234564", location: {lat: 1.5, lng: 2.5}, contacts: [{name: A, phone: "1"}]}
sdk_catalog: [extra.yaml]
declared: {first_party: [imei], sdks: {Umeng: [android_id, imei]}}
rules: {frequency: {max_per_minute: {default: 2, imei: 5}}}
limits:
  max_header_bytes: 8KiB
  max_headers: 50
  max_decoded_body: 2MiB
  max_connections: 10
  timeouts: {idle: 5s, handshake: 2s, headers: 500ms, upstream_connect: 1m, upstream_response: 3s}
)",
                              "t.yaml", "/base");
  CHECK(c.listen.mode == listen_mode::transparent);
  CHECK(c.listen.port == 9000);
  CHECK(c.clients.allow.at(1).prefix == 8);
  CHECK(c.ca.dir == "/base/ca");
  CHECK_FALSE(c.upstream.verify);
  CHECK(c.upstream.extra_ca.at(0) == "/base/lab.pem");
  CHECK(c.upstream.resolve.at("example.com") == "127.0.0.2");
  CHECK(c.upstream.allow_ports == std::vector<std::uint16_t>{443, 80});
  CHECK(c.tls.passthrough.at(0) == "*.bank.example");
  CHECK(c.capture.max_inspect_body == 1u << 20);
  CHECK(c.device.imei.at(0) == "865432101234564");
  CHECK(c.device.location->radius_m == 2000);
  CHECK(c.declared.sdks.at("Umeng").size() == 2);
  CHECK(c.rules.max_per_minute.at("imei") == 5);
  CHECK(c.limits.timeouts.headers == std::chrono::milliseconds(500));
  CHECK(c.limits.timeouts.upstream_connect == std::chrono::minutes(1));
}

TEST_CASE("errors name the file, the line and the key") {
  CHECK(error_of("listen:\n  port: 8080\n  bogus: 1\n") ==
        "test.yaml:3:3: listen.bogus is not a known key (known under listen: address, port, mode)");
  CHECK(error_of("upstream:\n  verify: yes please\n") ==
        "test.yaml:2:11: upstream.verify must be true or false (got \"yes please\")");
  CHECK(error_of("listen: {port: 70000}") ==
        "test.yaml:1:16: listen.port must be a whole number from 0 to 65535 (got \"70000\")");
  CHECK(error_of("capture: {max_inspect_body: lots}").find("capture.max_inspect_body must be a size") !=
        std::string::npos);
  CHECK(error_of("limits: {timeouts: {idle: 0s}}").find("limits.timeouts.idle must be a positive duration") !=
        std::string::npos);
  CHECK(error_of("clients: {allow: [10.0.0.0/33]}").find("clients.allow must list address blocks") !=
        std::string::npos);
  CHECK(error_of("listen: {mode: sideways}").find("listen.mode must be explicit or transparent") !=
        std::string::npos);
  CHECK(error_of("declared: {sdks: {Umeng: [shoe_size]}}").find("unknown category \"shoe_size\"") !=
        std::string::npos);
  CHECK(error_of("device: {location: {lat: 100, lng: 0}}").find("device.location.lat must be between") !=
        std::string::npos);
  CHECK(error_of("surprise: 1").find("test.yaml:1:1: surprise is not a known key") == 0);
  CHECK(error_of("listen: [1, 2").find("test.yaml:1:") == 0);
  CHECK(error_of("listen: 5").find("listen must be a mapping (got \"5\")") != std::string::npos);
}

TEST_CASE("the device profile may be a separate file") {
  const auto dir = std::filesystem::temp_directory_path() / "leakscope-config-test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "phone.yaml") << "imei: [\"865432101234564\"]\nphone_number: \"13812345678\"\n";
  std::ofstream(dir / "main.yaml") << "device: phone.yaml\n";
  const auto c = load_config(dir / "main.yaml");
  CHECK(c.device.imei == std::vector<std::string>{"865432101234564"});
  CHECK(c.device.phone_number == std::vector<std::string>{"13812345678"});

  std::ofstream(dir / "bad.yaml") << "imei: [1]\nshoe: 3\n";
  std::ofstream(dir / "main2.yaml") << "device: bad.yaml\n";
  try {
    load_config(dir / "main2.yaml");
    FAIL("expected an error");
  } catch (const config_error& e) {
    const std::string what = e.what();
    CHECK(what.find("bad.yaml:2:1: shoe is not a known key") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("sizes and durations") {
  CHECK(parse_size("16MiB") == 16u << 20);
  CHECK(parse_size("64 KiB") == 64u << 10);
  CHECK(parse_size("100") == 100u);
  CHECK_FALSE(parse_size("-1").has_value());
  CHECK_FALSE(parse_size("1XB").has_value());
  CHECK(parse_duration("250ms") == std::chrono::milliseconds(250));
  CHECK(parse_duration("2h") == std::chrono::hours(2));
  CHECK_FALSE(parse_duration("soon").has_value());
}

TEST_CASE("address blocks") {
  const auto net = *parse_cidr("192.168.1.0/24");
  CHECK(net.contains({192, 168, 1, 77}));
  CHECK_FALSE(net.contains({192, 168, 2, 1}));
  CHECK_FALSE(net.contains(std::vector<std::uint8_t>(16, 0)));
  CHECK(parse_cidr("::1/128")->contains([] {
    std::vector<std::uint8_t> v(16, 0);
    v[15] = 1;
    return v;
  }()));
  CHECK_FALSE(parse_cidr("not-an-ip").has_value());
}

TEST_CASE("hostile YAML is rejected with a line and column, never expanded or recursed without bound") {
  // Deep nesting: 100,000 open brackets.
  const auto deep = error_of("listen: " + std::string(100000, '['));
  CHECK(deep.rfind("test.yaml:", 0) == 0);
  // A billion laughs: aliases that would expand to 10^9 nodes if copied.
  std::string laughs = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (char c = 'b'; c <= 'i'; ++c) {
    laughs += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) {
      laughs += std::string(i ? ", " : "") + "*" + static_cast<char>(c - 1);
    }
    laughs += "]\n";
  }
  CHECK(error_of(laughs).find("test.yaml:1:1: a is not a known key") == 0);
  // The same bomb where a list is expected: refused as the wrong type, not walked.
  CHECK(error_of("clients: {allow: *x}").rfind("test.yaml:", 0) == 0);
  CHECK(error_of("x: &x [1]\nclients: {allow: *x}").rfind("test.yaml:", 0) == 0);
  // Wrong types in every shape.
  CHECK(error_of("listen: {port: [8080]}") == "test.yaml:1:16: listen.port must be a single value (got a list)");
  CHECK(error_of("tls: {passthrough: {a: b}}").rfind("test.yaml:1:", 0) == 0);
  CHECK(error_of("device: {imei: {x: 1}}").rfind("test.yaml:1:", 0) == 0);
  CHECK(error_of("\xff\xfe garbage").rfind("test.yaml:", 0) == 0);
}
