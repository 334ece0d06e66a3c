// The whole detector engine over arbitrary bodies, under each content type, and as a raw
// stream scanned in two pieces. Known values in the body are found whatever surrounds them, and
// the walks of JSON and form bodies without their tree agree with the tree walk.
#include "detectors/engine.hpp"
#include "fuzz.hpp"

using namespace leakscope;

namespace {

detectors::engine make_engine(bool walk_without_tree) {
  config::device_profile p;
  p.imei = {"865432101234564"};
  p.phone_number = {"13812345678"};
  p.mac_address = {"02:1a:11:f0:5b:3c"};
  p.contacts = {{"张三", "13900001111"}, {"李四", "13900002222"}};
  p.sms = {"【测试】您的验证码是 482913"};
  p.location = config::location_fix{39.9087, 116.3975, 2000};
  detectors::engine_limits limits;
  limits.max_decoded_body = 1 << 20;
  limits.walk_without_tree = walk_without_tree;
  return detectors::engine(p, limits);
}

const detectors::engine& engine() {
  static const detectors::engine e = make_engine(true);
  return e;
}

// The same engine with every JSON text and form body walked through its tree.
const detectors::engine& tree_engine() {
  static const detectors::engine e = make_engine(false);
  return e;
}

bool same(const detectors::inspect_result& a, const detectors::inspect_result& b) {
  if (a.findings.size() != b.findings.size() || a.incomplete != b.incomplete) {
    return false;
  }
  for (std::size_t i = 0; i < a.findings.size(); ++i) {
    const auto& x = a.findings[i];
    const auto& y = b.findings[i];
    if (x.category != y.category || x.source != y.source || x.confidence != y.confidence || x.where != y.where ||
        x.encoding != y.encoding || x.value != y.value || x.count != y.count) {
      return false;
    }
  }
  return true;
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
  // JSON walked without its tree finds what the tree walk finds.
  FUZZ_CHECK(same(engine().inspect(r), tree_engine().inspect(r)));
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
