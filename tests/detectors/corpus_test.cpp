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
      // completes, with values inside values and lists in a string, under keys that repeat
      R"({"dev":{"imei":"865432101234564"},"blob":"eyJpbWVpIjoiODY1NDMyMTAxMjM0NTY0In0="})",
      R"({"dev":{"imei":"865432101234564"},"q":"imei%3D865432101234564"})",
      R"({"dev":{"imei":"865432101234564"},"to":"13912345678,13812345678"})",
      R"({"dev":{"imei":"865432101234564"},"apps":"com.tencent.mm,com.sina.weibo;3c:5a:b4:01:02:03|3c:5a:b4:01:02:04"})",
      R"({"dev":{"imei":"865432101234564"},"inner":"{\"tel\":\"13812345678\"}"})",
      R"({"dev":{"imei":"865432101234564"},"inner":"{\"to\":\"tel%3D13812345678\",\"lat\":39.9091,\"lng\":116.3982}"})",
      // completes, with what the object and list detectors find in the containers
      R"({"dev":{"imei":"865432101234564"},"loc":{"lat":39.9091,"lng":116.3982}})",
      R"({"loc":{"lat":"39.9091","lng":116.3982,"acc":{"lat":1.5}},"pos":{"lat":null,"lng":116.3982}})",
      R"({"gps":{"lat":{"v":39.9091},"lng":116.3982},"cell":{"mcc":"460","mnc":"00","lac":4301,"cid":20442}})",
      R"({"cell":{"mcc":"999","mnc":"00","lac":4301,"cid":20442},"sms":{"body":"hi there","address":"10690000"}})",
      R"({"dev":{"imei":"865432101234564"},"wifi":["3c:5a:b4:01:02:03","3c:5a:b4:01:02:04"]})",
      R"({"dev":{"imei":"865432101234564"},"aps":[{"bssid":"3c:5a:b4:01:02:03"},{"bssid":"aa:bb:cc:dd:ee:01"}]})",
      R"({"dev":{"imei":"865432101234564"},"people":[{"name":"Li","tel":"13912345678"}]})",
      R"({"people":[{"name":"Li","tel":"13912345678"},{"n":"Wu","phones":["13912345679"]},{"name":"Xu","phone":null}]})",
      R"({"contacts":[{"name":"\u5f20\u4e09","mobile":"13900001111"}],"apps":["com.tencent.mm","com.sina.weibo","com.a.b","com.c.d","com.e.f"]})",
      R"({"list":[{"pkg":"com.tencent.mm"},{"pkg":"com.sina.weibo"},{"pkg":"com.a.b"},{"pkg":"com.c.d"},"com.e.f",3,[1]]})",
      R"({"msgs":[{"body":"\u3010\u6d4b\u8bd5\u3011\u60a8\u7684\u9a8c\u8bc1\u7801\u662f 482913","from":"1069"}],"text":"ok"})",
      R"([["3c:5a:b4:01:02:03","3c:5a:b4:01:02:04"],[{"mac":"3c:5a:b4:01:02:05"},{"mac":"3C-5A-B4-01-02-06"}]])",
      R"({"a":{"cell":{"mcc":"460","mnc":"00","lac":4301,"cid":20442},"lat":31.2304,"lng":121.4737}})",
      // hands over: a key repeated within one object
      R"({"dev":{"imei":"865432101234564","tel":"13912345678","tel":"13912345679"}})",
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
  // More values inside values than one request may scan (max_nested_scans): both walks stop
  // scanning inside at the same one.
  std::string many;
  for (int i = 0; i < 600; ++i) {
    many += std::string(i == 0 ? "" : ",") + R"({"q":"tel%3D139123456)" + std::to_string(10 + i % 80) + R"("})";
  }
  out.push_back(R"({"events":[)" + many + "]}");
  // The same: values inside values that find nothing use up the scans a later one needs.
  std::string empty_inside;
  for (int i = 0; i < 600; ++i) {
    empty_inside += R"({"x":"{\"a\":1}"},)";
  }
  out.push_back(R"({"events":[)" + empty_inside + R"({"q":"tel%3D13912345610"}]})");
  return out;
}

// Form bodies built the same way: pairs the walk without a tree reads itself, after an
// identifier, and pairs at which it hands over part-way through.
std::vector<std::string> form_batches() {
  const std::string neutral = "name=page_view&ts=1732300000&page=%2Fshop%2Fitem%2F7&net=wifi&";
  const std::vector<std::string> tails = {
      // completes: escapes, '+', keys that repeat or have no value, values inside values
      "mac=02%3A1a%3A11%3Af0%3A5b%3A3c&tel=13912345678&mobile=138%31%32345678",
      "id=865432101234564&id=865432101234564&flag&x=&&y=13812345678",
      "note=imei+865432101234564+sent&who=%E5%BC%A0%E4%B8%89+13900001111",
      "sms=%E3%80%90%E6%B5%8B%E8%AF%95%E3%80%91%E6%82%A8%E7%9A%84%E9%AA%8C%E8%AF%81%E7%A0%81%E6%98%AF+482913",
      "c1=13900001111&c2=13900002222&app=com.tencent.mm&app2=com.sina.weibo",
      "price=116.40&amount=39.91&qty=3&%69mei=865432101234564",
      "q=imei%253D865432101234564&blob=eyJpbWVpIjoiODY1NDMyMTAxMjM0NTY0In0%3D",
      "inner=%7B%22tel%22%3A%2213812345678%22%7D&to=13912345678%2C13812345678",
      "apps=com.tencent.mm%2Ccom.sina.weibo%2Ccom.a.b%2Ccom.c.d%2Ccom.e.f",
      "x=com.tencent.mm%2Ccom.sina.weibo%2Ccom.a.b%2Ccom.c.d%2Ccom.e.f&y=3c:5a:b4:01:02:03%3B3c:5a:b4:01:02:04",
      "wifi=3c:5a:b4:01:02:03&wifi=13812345678",
      // what the structure detectors find: keys scan_object() pairs, keys repeated with list items
      "lat=39.9091&lng=116.3982",
      "mcc=460&mnc=00&lac=1234&cid=5678",
      "msg=hello+there&from=10690000&lat=31.2304&lat=31.2305&lng=121.4737",
      "mcc=460&sid=1&nid=2&bid=3&pkg=com.a.b&pkg=3c:5a:b4:01:02:03&pkg=3c:5a:b4:01:02:04",
      "wifi=3c:5a:b4:01:02:03&wifi=3c%3A5a%3Ab4%3A01%3A02%3A04",
      "pkg=com.tencent.mm&pkg=com.sina.weibo&pkg=com.a.b&pkg=com.c.d&pkg=com.e.f",
  };
  std::vector<std::string> out;
  for (const auto& tail : tails) {
    for (const int n : {0, 3}) {
      std::string body = "imei=865432101234564&";
      for (int i = 0; i < n; ++i) {
        body += neutral;
      }
      out.push_back(body + tail);
    }
  }
  return out;
}

}  // namespace

// JSON texts and form bodies are walked without their tree where that gives the same findings
// (walk_json and walk_form in engine.cpp). On every corpus request and on bodies built to take
// either path, the findings must be the tree walk's, field for field and in order.
TEST_CASE("the walks without a tree find exactly what the tree walk finds") {
  const auto profile = config::load_device_profile(data_dir / "profile.yaml");
  detectors::engine_limits tree_only;
  tree_only.walk_without_tree = false;
  const detectors::engine fast(profile, {});
  const detectors::engine tree(profile, tree_only);
  std::vector<detectors::http_request> requests;
  for (auto& s : load_corpus()) {
    requests.push_back(std::move(s.request));
  }
  const auto add = [&requests](const std::vector<std::string>& bodies, const char* content_type) {
    for (const auto& body : bodies) {
      detectors::http_request r;
      r.method = "POST";
      r.scheme = "https";
      r.host = "sdk.example";
      r.target = "/collect";
      r.headers = {{"Content-Type", content_type}};
      r.body = body;
      requests.push_back(std::move(r));
    }
  };
  add(event_batches(), "application/json");
  add(form_batches(), "application/x-www-form-urlencoded");
  for (const auto& r : requests) {
    CAPTURE(r.body.substr(0, 300));
    CHECK(describe(fast.inspect(r)) == describe(tree.inspect(r)));
  }
}
