// Detector quality on the labelled corpus (tests/data/corpus.jsonl, made by make_corpus.py):
// precision and recall per category, with and without the device profile. The table is
// printed; with the profile, every category must reach 0.95 on both.
#include "config/config.hpp"
#include "detectors/engine.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

using namespace leakscope;

namespace {

const std::filesystem::path data_dir = std::filesystem::path(LEAKSCOPE_SOURCE_DIR) / "tests/data";

struct sample {
  std::string note;
  detectors::http_request request;
  std::set<std::string> labels, needs_profile;
};

std::vector<sample> load_corpus() {
  std::ifstream in(data_dir / "corpus.jsonl");
  std::vector<sample> out;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    sample s;
    s.note = j["note"];
    s.request.method = j["method"];
    std::string url = j["url"];
    const auto path = url.find('/', url.find("://") + 3);
    s.request.scheme = url.substr(0, url.find("://"));
    s.request.host = url.substr(url.find("://") + 3, path - url.find("://") - 3);
    s.request.target = path == std::string::npos ? "/" : url.substr(path);
    for (const auto& h : j["headers"]) {
      s.request.headers.push_back({h[0], h[1]});
    }
    const std::string b64 = j["body_b64"];
    std::string body;
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : b64) {
      const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      const char* p = std::strchr(alphabet, c);
      if (c == '=' || p == nullptr) {
        continue;
      }
      acc = (acc << 6) | static_cast<std::uint32_t>(p - alphabet);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        body += static_cast<char>((acc >> bits) & 0xff);
      }
    }
    s.request.body = body;
    for (const auto& l : j["labels"]) {
      s.labels.insert(l.get<std::string>());
    }
    for (const auto& l : j["needs_profile"]) {
      s.needs_profile.insert(l.get<std::string>());
    }
    out.push_back(std::move(s));
  }
  return out;
}

struct counts {
  int tp = 0, fp = 0, fn = 0;
  double precision() const { return tp + fp == 0 ? 1.0 : static_cast<double>(tp) / (tp + fp); }
  double recall() const { return tp + fn == 0 ? 1.0 : static_cast<double>(tp) / (tp + fn); }
};

std::map<std::string, counts> evaluate(const detectors::engine& engine, const std::vector<sample>& corpus, bool profile,
                                       std::vector<std::string>& mistakes) {
  std::map<std::string, counts> table;
  for (const auto& s : corpus) {
    std::set<std::string> expected;
    for (const auto& l : s.labels) {
      if (profile || !s.needs_profile.count(l)) {
        expected.insert(l);
      }
    }
    std::set<std::string> found;
    std::map<std::string, std::string> where;
    for (const auto& f : engine.inspect(s.request).findings) {
      found.insert(f.category);
      where.emplace(f.category, f.where + " " + f.value);
    }
    for (const auto& c : found) {
      if (expected.count(c)) {
        ++table[c].tp;
      } else if (!(s.labels.count(c))) {  // a label that only the profile could find is not a false positive
        ++table[c].fp;
        mistakes.push_back("FP " + c + " in [" + s.note + "] at " + where[c]);
      }
    }
    for (const auto& c : expected) {
      if (!found.count(c)) {
        ++table[c].fn;
        mistakes.push_back("FN " + c + " in [" + s.note + "]");
      }
    }
  }
  return table;
}

}  // namespace

TEST_CASE("detector precision and recall on the labelled corpus") {
  const auto corpus = load_corpus();
  REQUIRE(corpus.size() >= 400);
  const auto profile = config::load_device_profile(data_dir / "profile.yaml");
  const detectors::engine with(profile, {});
  const detectors::engine without(config::device_profile{}, {});
  std::vector<std::string> mistakes_with, mistakes_without;
  const auto a = evaluate(with, corpus, true, mistakes_with);
  const auto b = evaluate(without, corpus, false, mistakes_without);

  std::ostringstream table;
  table << std::fixed << std::setprecision(3) << "\n"
        << std::left << std::setw(16) << "category" << std::right << std::setw(10) << "precision" << std::setw(8)
        << "recall" << std::setw(6) << "n" << "   | without profile: " << std::setw(9) << "precision" << std::setw(8)
        << "recall" << std::setw(6) << "n" << "\n";
  bool ok = true;
  for (const auto& category : config::categories()) {
    const auto wa = a.count(category) ? a.at(category) : counts{};
    const auto wb = b.count(category) ? b.at(category) : counts{};
    table << std::left << std::setw(16) << category << std::right << std::setw(10) << wa.precision() << std::setw(8)
          << wa.recall() << std::setw(6) << wa.tp + wa.fn << "   |                  " << std::setw(9) << wb.precision()
          << std::setw(8) << wb.recall() << std::setw(6) << wb.tp + wb.fn << "\n";
    if (wa.tp + wa.fn > 0 && (wa.precision() < 0.95 || wa.recall() < 0.95)) {
      ok = false;
    }
    CHECK_MESSAGE(wa.tp + wa.fn > 0, "the corpus has no sample of " << category);
  }
  std::cout << table.str();
  // LEAKSCOPE_CORPUS_MISTAKES=1 lists every miss and false alarm, also when the test passes.
  if (!ok || std::getenv("LEAKSCOPE_CORPUS_MISTAKES") != nullptr) {
    for (std::size_t i = 0; i < std::min<std::size_t>(mistakes_with.size(), 40); ++i) {
      std::cout << "  " << mistakes_with[i] << "\n";
    }
  }
  CHECK_MESSAGE(ok, "a category is below 0.95 precision or recall with the device profile");
}

namespace {

std::string describe(const detectors::inspect_result& r) {
  std::ostringstream out;
  for (const auto& f : r.findings) {
    out << f.category << " | " << f.source << " | " << f.confidence << " | " << f.where << " | ";
    for (const auto& layer : f.encoding) {
      out << layer << ",";
    }
    out << " | " << f.value << " | x" << f.count << "\n";
  }
  for (const auto& i : r.incomplete) {
    out << "incomplete " << i << "\n";
  }
  return out.str();
}

// Event batches built so that the walk without a tree completes on some and hands over to the
// tree walk on others, part-way through: every effect of a leaf it has to get right or undo.
std::vector<std::string> event_batches() {
  const std::string neutral = R"({"name":"page_view","ts":1732300000,"page":"/shop/item/7","net":"wifi"})";
  const std::vector<std::string> tails = {
      // completes: identifiers per event, escapes, keys JSONPath must quote, duplicate keys
      R"({"dev":{"imei":"865432101234564","mac":"02:1a:11:f0:5b:3c","tel":"13912345678"}})",
      R"({"dev":{"imei":"865432101234564","imei":"865432101234564"}})",
      R"({"who":"\u5f20\u4e09 13900001111","x y":"13812345678","n":[1,true,null,"865432101234564"]})",
      R"({"note":"imei 865432101234564 sent","sms":"\u3010\u6d4b\u8bd5\u3011\u60a8\u7684\u9a8c\u8bc1\u7801\u662f 482913"})",
      R"({"c1":"13900001111","c2":"13900002222","app":"com.tencent.mm","app2":"com.sina.weibo"})",
      R"({"price":116.40,"amount":39.91,"qty":3})",
      R"({"aid":"9774d56d682e549c","gaid":"a1b2c3d4-0000-4a5b-9c8d-112233445566","id":"110105194912310021"})",
      "865432101234564",
      // hands over: a structural key, list items, values inside values, lists in a string
      R"({"dev":{"imei":"865432101234564"},"loc":{"lat":39.9091,"lng":116.3982}})",
      R"({"dev":{"imei":"865432101234564"},"wifi":["3c:5a:b4:01:02:03","3c:5a:b4:01:02:04"]})",
      R"({"dev":{"imei":"865432101234564"},"aps":[{"bssid":"3c:5a:b4:01:02:03"},{"bssid":"aa:bb:cc:dd:ee:01"}]})",
      R"({"dev":{"imei":"865432101234564"},"blob":"eyJpbWVpIjoiODY1NDMyMTAxMjM0NTY0In0="})",
      R"({"dev":{"imei":"865432101234564"},"q":"imei%3D865432101234564"})",
      R"({"dev":{"imei":"865432101234564"},"to":"13912345678,13812345678"})",
      R"({"dev":{"imei":"865432101234564"},"inner":"{\"tel\":\"13812345678\"}"})",
      R"({"dev":{"imei":"865432101234564"},"people":[{"name":"Li","tel":"13912345678"}]})",
      R"({"dev":{"imei":"865432101234564"},"bad":)",
  };
  std::vector<std::string> out;
  for (const auto& tail : tails) {
    for (const int n : {0, 3}) {
      std::string events;
      for (int i = 0; i < n; ++i) {
        events += neutral + "," + tail + ",";
      }
      out.push_back(R"({"events":[)" + events + tail + "]}");
    }
  }
  // One key with more values than the walk keeps per key (eight), in an irregular order, so
  // that kept values are replaced and values are met again both before and after replacement.
  std::string cycling;
  unsigned x = 1;
  for (int i = 0; i < 60; ++i) {
    x = (x * 37 + 11) % 101;  // ten of the eleven numbers, 21 times met again in a replaced slot
    cycling += std::string(i == 0 ? "" : ",") + R"({"dev":{"msisdn":"139123456)" + std::to_string(10 + x % 11) +
               R"(","imei":"865432101234564"}})";
  }
  out.push_back(R"({"events":[)" + cycling + "]}");
  return out;
}

}  // namespace

// JSON texts are walked without their tree where that gives the same findings (json_walk in
// engine.cpp). On every corpus request and on batches built to take either path, the findings
// must be the tree walk's, field for field and in order.
TEST_CASE("the JSON walk without a tree finds exactly what the tree walk finds") {
  const auto profile = config::load_device_profile(data_dir / "profile.yaml");
  detectors::engine_limits tree_only;
  tree_only.json_without_tree = false;
  const detectors::engine fast(profile, {});
  const detectors::engine tree(profile, tree_only);
  std::vector<detectors::http_request> requests;
  for (auto& s : load_corpus()) {
    requests.push_back(std::move(s.request));
  }
  for (const auto& body : event_batches()) {
    detectors::http_request r;
    r.method = "POST";
    r.scheme = "https";
    r.host = "sdk.example";
    r.target = "/collect";
    r.headers = {{"Content-Type", "application/json"}};
    r.body = body;
    requests.push_back(r);
  }
  for (const auto& r : requests) {
    CAPTURE(r.body.substr(0, 300));
    CHECK(describe(fast.inspect(r)) == describe(tree.inspect(r)));
  }
}
