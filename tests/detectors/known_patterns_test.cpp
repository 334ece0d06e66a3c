// Engine behaviour per category and encoding, on requests shaped like SDK traffic.
#include "detectors/decode.hpp"
#include "detectors/engine.hpp"
#include "detectors/patterns.hpp"

#include <doctest/doctest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <random>

using namespace leakscope;
using namespace leakscope::detectors;

std::string test_gzip(const std::string& text);  // tests/detectors/decode_test.cpp

namespace {

config::device_profile full_profile() {
  config::device_profile p;
  p.imei = {"865432101234564"};
  p.imsi = {"460001234567890"};
  p.iccid = {"89860012345678901234"};
  p.phone_number = {"13812345678"};
  p.mac_address = {"02:1a:11:f0:5b:3c"};
  p.android_id = {"9774d56d682e549c"};
  p.advertising_id = {"a1b2c3d4-0000-4a5b-9c8d-112233445566"};
  p.serial_number = {"R58M12ABCDE"};
  p.email = {"zhang.san@example.cn"};
  p.location = config::location_fix{39.9087, 116.3975, 2000};
  p.contacts = {{"张三", "13900001111"}, {"李四", "13900002222"}};
  p.sms = {"【测试】您的验证码是 482913"};
  p.installed_apps = {"com.tencent.mm", "com.taobao.taobao"};
  return p;
}

http_request post(std::string body, std::string content_type = "application/json") {
  http_request r;
  r.method = "POST";
  r.scheme = "https";
  r.host = "sdk.example";
  r.target = "/collect";
  r.headers = {{"Content-Type", content_type}};
  r.body = std::move(body);
  return r;
}

std::vector<finding> of(const inspect_result& r, const std::string& category) {
  std::vector<finding> out;
  std::copy_if(r.findings.begin(), r.findings.end(), std::back_inserter(out), [&](const finding& f) { return f.category == category; });
  return out;
}

std::string hash_hex(const std::string& v, const EVP_MD* md, bool upper) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(v.data(), v.size(), out, &n, md, nullptr);
  return hex_encode(std::string(reinterpret_cast<char*>(out), n), upper);
}

const engine& with_profile() {
  static const engine e(full_profile(), {});
  return e;
}

const engine& without_profile() {
  static const engine e(config::device_profile{}, {});
  return e;
}

// Bytes with no structure, from a xorshift generator: the same for the same seed.
std::string random_bytes(std::size_t size, std::uint32_t seed) {
  std::string out(size, '\0');
  for (auto& c : out) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    c = static_cast<char>(seed);
  }
  return out;
}

}  // namespace

TEST_CASE("known values carry a JSON path and the chain that wrapped them") {
  const auto r = with_profile().inspect(post(R"({"device":{"ids":{"imei":"865432101234564"}}})"));
  const auto f = of(r, "imei");
  REQUIRE(f.size() == 1);
  CHECK(f[0].where == "body.json:$.device.ids.imei");
  CHECK(f[0].encoding == std::vector<std::string>{"json"});
  CHECK(f[0].source == "known");
}

TEST_CASE("hashes of profile values, hex either case and base64") {
  const std::string imei = "865432101234564";
  const std::pair<const EVP_MD*, const char*> mds[] = {{EVP_md5(), "md5"}, {EVP_sha1(), "sha1"}, {EVP_sha256(), "sha256"}};
  for (const auto& [md, name] : mds) {
    for (const bool upper : {false, true}) {
      CAPTURE(name);
      CAPTURE(upper);
      const auto r = with_profile().inspect(post(R"({"did":")" + hash_hex(imei, md, upper) + "\"}"));
      const auto f = of(r, "imei");
      REQUIRE(f.size() == 1);
      CHECK(f[0].encoding == std::vector<std::string>{"json", name});
    }
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(imei.data(), imei.size(), out, &n, EVP_sha256(), nullptr);
  const auto b64 = base64_encode(std::string(reinterpret_cast<char*>(out), n));
  const auto f = of(with_profile().inspect(post("{\"h\":\"" + b64 + "\"}")), "imei");
  REQUIRE_FALSE(f.empty());
  CHECK(std::find(f[0].encoding.begin(), f[0].encoding.end(), "sha256") != f[0].encoding.end());
}

TEST_CASE("a value inside a larger base64 blob is found at every alignment") {
  for (int shift = 0; shift < 6; ++shift) {
    CAPTURE(shift);
    const std::string inner = std::string(static_cast<std::size_t>(shift), '\x07') + "\x01\x02imei865432101234564\x03" + std::string(5, '\xff');
    for (const bool url_safe : {false, true}) {
      // In free text the blob is not a value of its own: only the literal forms can find it.
      const auto r = with_profile().inspect(post("payload:" + base64_encode(inner, url_safe), "text/plain"));
      const auto f = of(r, "imei");
      REQUIRE(f.size() == 1);
      CHECK(f[0].encoding == std::vector<std::string>{"base64"});
    }
  }
}

TEST_CASE("base64 of gzip of JSON inside a JSON field, as analytics SDKs send it") {
  const std::string gz = test_gzip(R"({"imsi":"460001234567890"})");
  const auto r = with_profile().inspect(post("{\"data\":\"" + base64_encode(gz) + "\"}"));
  const auto f = of(r, "imsi");
  REQUIRE(f.size() == 1);
  CHECK(f[0].where == "body.json:$.data/json:$.imsi");
  CHECK(f[0].encoding == std::vector<std::string>{"json", "base64", "gzip", "json"});
}

TEST_CASE("URL-encoded, JSON-escaped and hex forms") {
  auto r = with_profile().inspect(post("m=%2B86%20138%201234%205678", "text/plain"));
  CHECK_FALSE(of(r, "phone_number").empty());
  r = with_profile().inspect(post(R"(x=\u3010\u6d4b\u8bd5\u3011\u60a8\u7684\u9a8c\u8bc1\u7801\u662f 482913)", "text/plain"));
  const auto sms = of(r, "sms");
  REQUIRE_FALSE(sms.empty());
  CHECK(sms[0].source == "known");
  r = with_profile().inspect(post("v=" + hex_encode("865432101234564", true), "text/plain"));
  REQUIRE_FALSE(of(r, "imei").empty());
  CHECK(of(r, "imei")[0].encoding == std::vector<std::string>{"form", "hex"});
}

TEST_CASE("format variants: IMEI separators, phone prefixes, MAC spellings") {
  for (const char* v : {"86-543210-123456-4", "86 543210 123456 4"}) {
    CHECK_FALSE(of(with_profile().inspect(post(std::string("{\"d\":\"") + v + "\"}")), "imei").empty());
  }
  for (const char* v : {"+8613812345678", "008613812345678", "+86 138 1234 5678", "138-1234-5678"}) {
    const std::string v_text = v;
    CAPTURE(v_text);
    CHECK_FALSE(of(with_profile().inspect(post(std::string("{\"x\":\"") + v + "\"}")), "phone_number").empty());
  }
  for (const char* v : {"02:1A:11:F0:5B:3C", "02-1a-11-f0-5b-3c", "021A11F05B3C"}) {
    const std::string v_text = v;
    CAPTURE(v_text);
    const auto f = of(with_profile().inspect(post(std::string("{\"hw\":\"") + v + "\"}")), "mac_address");
    REQUIRE_FALSE(f.empty());
    CHECK(f[0].source == "known");
  }
}

TEST_CASE("the profile location in any precision, order and scale") {
  for (const char* body : {R"({"lat":39.91,"lng":116.40})", R"({"lng":"116.397512","lat":"39.908731"})",
                           R"({"loc":"116.3975,39.9087"})", R"({"la":39908700,"lo":116397500})",
                           R"({"y":3990870,"x":11639750})"}) {
    const std::string body_text = body;
    CAPTURE(body_text);
    const auto f = of(with_profile().inspect(post(body)), "location");
    REQUIRE_FALSE(f.empty());
    CHECK(f[0].source == "known");
  }
  const auto far = of(with_profile().inspect(post(R"({"lat":31.2304,"lng":121.4737})")), "location");
  REQUIRE(far.size() == 1);
  CHECK(far[0].source == "pattern");  // a real coordinate, but not the phone's
}

TEST_CASE("contacts: two profile contacts in one request, not one") {
  auto r = with_profile().inspect(post(R"({"a":"张三","b":"13900002222"})"));
  const auto f = of(r, "contacts");
  REQUIRE(f.size() == 1);
  CHECK(f[0].source == "known");
  r = with_profile().inspect(post(R"({"a":"张三"})"));
  CHECK(of(r, "contacts").empty());
}

TEST_CASE("SMS: the sender tag and the code together, or the whole body") {
  auto r = with_profile().inspect(post(R"({"src":"【测试】","otp":"482913"})"));
  CHECK(of(r, "sms").size() == 1);
  r = with_profile().inspect(post(R"({"otp":"482913"})"));
  CHECK(of(r, "sms").empty());
}

TEST_CASE("installed apps from the profile count when two appear") {
  CHECK(of(with_profile().inspect(post(R"({"a":["com.tencent.mm","com.taobao.taobao"]})")), "installed_apps").size() == 1);
  CHECK(of(with_profile().inspect(post(R"({"a":"com.tencent.mm"})")), "installed_apps").empty());
}

TEST_CASE("patterns find each category without the profile") {
  const std::pair<const char*, const char*> cases[] = {
      {"imei", R"({"imei":"490154203237518"})"},
      {"imsi", R"({"imsi":"460011234567891"})"},
      {"iccid", R"({"sim":"8986001234567890120"})"},
      {"meid", R"({"meid":"A0000012345678"})"},
      {"phone_number", R"({"mobile":"13987654321"})"},
      {"email", R"({"contact_email":"li.si@example.com"})"},
      {"id_card", R"({"id_no":"11010519491231002X"})"},
      {"bank_card", R"({"card_no":"6222021234567890128"})"},
      {"mac_address", R"({"wifi_mac":"3c:5a:b4:01:02:03"})"},
      {"android_id", R"({"android_id":"5f2e8c1d9a7b3e40"})"},
      {"advertising_id", R"({"oaid":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"})"},
      {"serial_number", R"({"serial":"HT7A1B234567"})"},
      {"location", R"({"latitude":22.543096,"longitude":114.057865})"},
      {"cell_location", R"({"mcc":460,"mnc":0,"lac":4301,"cid":123456789})"},
      {"wifi_location", R"({"wifi_list":[{"bssid":"3c:5a:b4:01:02:03","rssi":-50},{"bssid":"3c:5a:b4:01:02:04","rssi":-70}]})"},
      {"sms", R"({"messages":[{"address":"10086","body":"您的话费余额为 20 元"}]})"},
      {"sms", R"({"text":"Your verification code is 551234, valid for 5 minutes"})"},
      {"contacts", R"({"book":[{"name":"A","phone":"13900000001"},{"name":"B","phone":"13900000002"},{"name":"C","phone":"13900000003"}]})"},
      {"contacts", "BEGIN:VCARD\nVERSION:3.0\nFN:A\nTEL:13900000001\nEND:VCARD"},
      {"installed_apps", R"({"applist":["com.tencent.mm","com.taobao.taobao","com.eg.android.alipaygphone","com.ss.android.ugc.aweme","com.sina.weibo"]})"},
  };
  for (const auto& [category, body] : cases) {
    const std::string category_text = category;
    CAPTURE(category_text);
    const std::string body_text = body;
    CAPTURE(body_text);
    const auto f = of(without_profile().inspect(post(body, body[0] == '{' ? "application/json" : "text/plain")), category);
    REQUIRE_FALSE(f.empty());
    CHECK(f[0].source == "pattern");
  }
}

TEST_CASE("look-alikes are not personal data") {
  const char* negatives[] = {
      R"({"order_id":"20231123456789012","ts":1700740000123,"build":"13812345678"})",
      R"({"trace":"5f2e8c1d9a7b3e40","request_id":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"})",
      R"({"x":12.5,"y":30.25,"lat":0.0,"lng":0.0})",
      R"({"version":"8.6.5.4321","count":86543210123456})",
      R"({"uid":"10086000123","amount":13800.55})",
      R"({"md5":"d41d8cd98f00b204e9800998ecf8427e"})",
      R"({"hosts":["www.example.com","api.example.com","cdn.example.com","img.example.com","log.example.com"]})",
  };
  for (const char* body : negatives) {
    const std::string body_text = body;
    CAPTURE(body_text);
    const auto r = without_profile().inspect(post(body));
    CHECK(r.findings.empty());
  }
}

// A file part or blob is not URL-encoded text because a "%3D" turns up in it: decoding it
// would scan a megabyte twice, for patterns in noise (known values are matched in their
// URL-encoded forms in the raw bytes anyway). Text with escapes is still decoded.
TEST_CASE("a binary value with percent escapes is not decoded as URL-encoded text") {
  const std::string escaped_phone = "tel%3D%31%33%39%31%32%33%34%35%36%37%38";  // tel=13912345678
  std::string blob = random_bytes(4096, 88172645u);
  blob.replace(2000, escaped_phone.size(), escaped_phone);
  const auto part = [](const std::string& name, const std::string& content) {
    return "--xyz\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + content + "\r\n";
  };
  const std::string body = part("file", blob) + part("q", escaped_phone) + "--xyz--\r\n";
  const auto r = without_profile().inspect(post(body, "multipart/form-data; boundary=xyz"));
  std::vector<std::string> phones;
  for (const auto& f : r.findings) {
    if (f.category == "phone_number") {
      phones.push_back(f.where);
    }
  }
  CHECK(phones == std::vector<std::string>{"body.multipart:q/form:tel"});
}

TEST_CASE("a body that looks encrypted is reported as opaque, structured ones are not") {
  const std::string random = random_bytes(4096, 2463534242u);
  const auto r = without_profile().inspect(post(random, "application/octet-stream"));
  CHECK(std::find(r.incomplete.begin(), r.incomplete.end(), "opaque_body") != r.incomplete.end());
  const auto j = without_profile().inspect(post(R"({"a":")" + std::string(4000, 'x') + R"("})"));
  CHECK(j.incomplete.empty());
}

// verification_sms() searches only windows around its trigger words. On texts built from the
// phrases, digits, white space and words that decide a match, at every distance from each
// other and from the windows' edges, and among random bytes, it must say what searching the
// whole text says.
TEST_CASE("verification-code messages are found in windows exactly as in the whole text") {
  const std::vector<std::string> pieces = {
      "验证码", "校验码", "动态码", "驗證碼", "码", "碼", "是你的", "为您的", "code", "CODE", "Code", "otp", "OTP",
      "passcode", "verification", "Verification ", "one-time", "security", "login", "1234", "48291", "12345678", "123",
      "0", " ", "  ", "\n", ":", "-", "，", "_", "x", "a", "\xe7", "\xe7\xa0", "\xff\xfe", std::string(300, ' '),
      std::string(300, 'a'), std::string(250, '-'), std::string(120, '9')};
  std::mt19937 rng(2026);
  std::size_t found = 0;
  std::size_t not_found = 0;
  const auto check = [&](const std::string& text) {
    CAPTURE(text);
    const bool whole = verification_sms(text, true);
    CHECK(verification_sms(text) == whole);
    ++(whole ? found : not_found);
  };
  for (int n = 0; n < 20000; ++n) {
    std::string text;
    const auto parts = 1 + rng() % 12;
    for (unsigned k = 0; k < parts; ++k) {
      if (rng() % 8 == 0) {
        std::string noise(rng() % 400, '\0');
        for (auto& c : noise) {
          c = static_cast<char>(rng());
        }
        text += noise;
      } else {
        text += pieces[rng() % pieces.size()];
      }
    }
    check(text);
  }
  // The unbounded part, and \b at a window's edge.
  check("verification" + std::string(700, ' ') + "code 4829");
  check("verification" + std::string(700, '\t') + "code: 4829" + std::string(300, 'x') + "otp 1234");
  check(std::string(1000, 'x') + "otp 1234");
  check(std::string(1000, 'x') + " otp 1234");
  check(std::string(255, 'y') + "passcode 1234");
  // Matches at their longest, on either side of the trigger word, with three-byte characters.
  std::string commas;
  for (int i = 0; i < 16; ++i) {
    commas += "，";
    check(std::string(300, '.') + "12345678" + commas + "是你的验证码" + std::string(300, '.'));
    check(std::string(300, '.') + "驗證碼" + commas + "12345678" + std::string(300, '.'));
    check(std::string(300, '.') + "one-time code" + commas + "48291" + std::string(300, '.'));
    check(std::string(300, '.') + "OTP" + commas + "48291" + std::string(300, '.'));
  }
  CHECK(found > 1000);
  CHECK(not_found > 1000);
}
