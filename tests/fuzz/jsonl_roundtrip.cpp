// The JSONL writers: records with arbitrary strings (invalid UTF-8, control characters, quotes)
// are one line of valid JSON that reads back to the same values.
#include "captures/base64.hpp"
#include "captures/records.hpp"
#include "fuzz.hpp"

#include <nlohmann/json.hpp>

using namespace leakscope::captures;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fuzz::input in(data, size);
  const std::size_t cut = in.rest.empty() ? 0 : in.choice % in.rest.size();
  const std::string a(in.rest.substr(0, cut)), b(in.rest.substr(cut));
  leak_record l;
  l.id = 7;
  l.category = "imei";
  l.where = a;
  l.value = b;
  l.path = a + b;
  l.dest.host = b;
  const auto line = to_json_line(l);
  FUZZ_CHECK(!line.empty() && line.back() == '\n');
  FUZZ_CHECK(line.find('\n') == line.size() - 1);
  const auto j = nlohmann::json::parse(line, nullptr, false);
  FUZZ_CHECK(!j.is_discarded());
  FUZZ_CHECK(j["id"] == 7);
  flow_record f;
  f.url = a;
  f.note = b;
  const auto fline = to_json_line(f);
  FUZZ_CHECK(fline.find('\n') == fline.size() - 1);
  FUZZ_CHECK(!nlohmann::json::parse(fline, nullptr, false).is_discarded());
  // An exchange: the body comes back byte for byte, as text or as base64.
  exchange_record e;
  e.request_body = a;
  e.request_body_size = a.size();
  e.request_headers = {{b, a}};
  e.status = 200;
  e.reason = b;
  const auto eline = to_json_line(e);
  FUZZ_CHECK(eline.find('\n') == eline.size() - 1);
  const auto ej = nlohmann::json::parse(eline, nullptr, false);
  FUZZ_CHECK(!ej.is_discarded());
  if (!a.empty()) {
    const auto& body = ej["request"]["body"];
    const std::string text = body["text"].get<std::string>();
    FUZZ_CHECK(body.contains("encoding") ? base64_decode(text) == a : text == a);
  }
  return 0;
}
