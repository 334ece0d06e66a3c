// The whole detector engine over arbitrary bodies, under each content type, and as a raw
// stream scanned in two pieces. Known values in the body are found whatever surrounds them.
#include "detectors/engine.hpp"
#include "fuzz.hpp"

using namespace leakscope;

namespace {

const detectors::engine& engine() {
  static const detectors::engine e = [] {
    config::device_profile p;
    p.imei = {"865432101234564"};
    p.phone_number = {"13812345678"};
    p.mac_address = {"02:1a:11:f0:5b:3c"};
    p.contacts = {{"张三", "13900001111"}, {"李四", "13900002222"}};
    p.sms = {"【测试】您的验证码是 482913"};
    p.location = config::location_fix{39.9087, 116.3975, 2000};
    return detectors::engine(p, {1 << 20});
  }();
  return e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fuzz::input in(data, size);
  static const char* const types[] = {"application/json", "application/x-www-form-urlencoded",
                                      "multipart/form-data; boundary=xyz", "application/x-protobuf",
                                      "text/xml", "text/plain", "application/octet-stream", ""};
  static const char* const encodings[] = {"", "gzip", "deflate", "br", "zstd", "gzip, gzip"};
  detectors::http_request r;
  r.method = "POST";
  r.scheme = "https";
  r.host = "sdk.example";
  r.target = "/collect?q=1";
  r.headers = {{"Content-Type", types[in.choice % 8]}, {"Content-Encoding", encodings[(in.choice >> 3) % 6]}};
  r.body = std::string(in.rest);
  engine().inspect(r);
  // With the IMEI appended in plain text, it is always found.
  r.headers = {{"Content-Type", "text/plain"}};
  r.body = std::string(in.rest) + " imei=865432101234564 ";
  const auto result = engine().inspect(r);
  bool imei = false;
  for (const auto& f : result.findings) {
    imei = imei || (f.category == "imei" && f.source == "known");
  }
  FUZZ_CHECK(imei);
  engine().inspect_bytes(in.rest, "tcp");
  return 0;
}
