#include "captures/manifest.hpp"
#include "captures/recorder.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

using namespace leakscope::captures;

namespace {

struct session_fixture {
  std::filesystem::path base;
  std::filesystem::path dir;
  session_fixture() {
    char tmpl[] = "/tmp/leakscope-manifest-XXXXXX";
    base = ::mkdtemp(tmpl);
    dir = create_session_dir(base, std::chrono::system_clock::now());
    recorder rec(dir);
    for (std::uint64_t i = 1; i <= 5; ++i) {
      leak_record l;
      l.id = i;
      l.category = "imei";
      l.dest.host = "alog.umeng.com";
      rec.write(l);
      flow_record f;
      f.id = i;
      rec.write(f);
    }
    rec.write_key("CLIENT_RANDOM 00 11");
    rec.close();
    const auto s = rec.summary();
    write_manifest(dir, {"0.1.0", "test", "AB:CD", "start", "end", s.leaks, s.leaks_chain_head});
  }
  ~session_fixture() { std::filesystem::remove_all(base); }

  std::vector<std::string> lines(const char* name) const {
    std::ifstream in(dir / name);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) {
      out.push_back(l);
    }
    return out;
  }
  void write_lines(const char* name, const std::vector<std::string>& lines, bool final_newline = true) const {
    std::ofstream out(dir / name, std::ios::trunc);
    for (std::size_t i = 0; i < lines.size(); ++i) {
      out << lines[i] << (i + 1 < lines.size() || final_newline ? "\n" : "");
    }
  }
  bool mentions(const verify_result& r, const std::string& text) const {
    return std::any_of(r.problems.begin(), r.problems.end(), [&](const std::string& p) { return p.find(text) != std::string::npos; });
  }
};

}  // namespace

TEST_CASE("an untouched session verifies") {
  session_fixture s;
  const auto r = verify_session(s.dir);
  CHECK(r.intact);
  CHECK(r.problems.empty());
  CHECK(r.leaks == 5);
  CHECK(r.files >= 4);  // flows, leaks, marks, keys
}

TEST_CASE("each leak line carries the hash of the one before") {
  session_fixture s;
  const auto leaks = s.lines("leaks.jsonl");
  REQUIRE(leaks.size() == 5);
  CHECK(leaks[0].find("\"prev_hash\":\"" + chain_start + "\"") != std::string::npos);
  CHECK(leaks[1].find("\"prev_hash\":\"" + sha256_hex(leaks[0] + "\n") + "\"") != std::string::npos);
}

TEST_CASE("one changed byte in any file is named") {
  for (const char* name : {"flows.jsonl", "keys.log", "leaks.jsonl"}) {
    CAPTURE(name);
    session_fixture s;
    std::fstream f(s.dir / name, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(3);
    f.put('#');
    f.close();
    const auto r = verify_session(s.dir);
    CHECK_FALSE(r.intact);
    CHECK(s.mentions(r, std::string(name) + ": differs from the manifest"));
  }
}

TEST_CASE("a removed leak line is found by the chain, at the line after it") {
  session_fixture s;
  auto leaks = s.lines("leaks.jsonl");
  leaks.erase(leaks.begin() + 2);
  s.write_lines("leaks.jsonl", leaks);
  const auto r = verify_session(s.dir);
  CHECK_FALSE(r.intact);
  CHECK(s.mentions(r, "leaks.jsonl:3: prev_hash does not match line 2"));
}

TEST_CASE("removing the last lines is caught by the chain head") {
  session_fixture s;
  auto leaks = s.lines("leaks.jsonl");
  leaks.pop_back();
  s.write_lines("leaks.jsonl", leaks);
  const auto r = verify_session(s.dir);
  CHECK(s.mentions(r, "the last line is not the one the manifest recorded"));
  CHECK(s.mentions(r, "4 lines, the manifest says 5"));
}

TEST_CASE("a torn last line, a missing file and an added file are each reported") {
  session_fixture s;
  auto leaks = s.lines("leaks.jsonl");
  leaks.back() = leaks.back().substr(0, 20);
  s.write_lines("leaks.jsonl", leaks, false);
  std::filesystem::remove(s.dir / "keys.log");
  std::ofstream(s.dir / "extra.txt") << "x";
  std::ofstream(s.dir / "report.html") << "<html></html>";  // derived later: allowed
  const auto r = verify_session(s.dir);
  CHECK(s.mentions(r, "leaks.jsonl:5: torn last line"));
  CHECK(s.mentions(r, "keys.log: missing"));
  CHECK(s.mentions(r, "extra.txt: not in the manifest"));
  CHECK_FALSE(s.mentions(r, "report.html"));
}

TEST_CASE("a pcapng file cut in the middle of a block is reported") {
  session_fixture s;
  std::ofstream(s.dir / "traffic.pcapng", std::ios::binary) << std::string("\x0a\x0d\x0d\x0a\x20\x00", 6);
  const auto r = verify_session(s.dir);
  CHECK(s.mentions(r, "traffic.pcapng: readable up to byte 0 of 6"));
}

TEST_CASE("no manifest: the chain is still checked") {
  session_fixture s;
  std::filesystem::remove(s.dir / "manifest.json");
  const auto r = verify_session(s.dir);
  CHECK_FALSE(r.intact);
  CHECK(s.mentions(r, "manifest.json is missing"));
  CHECK(r.leaks == 5);
  CHECK(r.problems.size() == 1);
}
