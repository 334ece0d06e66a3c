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
