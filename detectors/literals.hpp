#pragma once
// Many literals found in one pass over a buffer: the profile's known values in all their forms
// (thousands of literals, mostly 8 to 64 bytes, scanned against every request body).
//
// A q-gram filter in the manner of Rabin–Karp with a bitmap: at each position the next 8 bytes
// (4 for literals shorter than 8) are hashed into a bitmap of every literal's first bytes; the
// rare position whose hash is set is looked up exactly and the candidates are compared in full.
// The inner loop is one load, one multiply and one bit test per byte, with the bitmap in L1:
// several times faster than a DFA over thousands of literals (an RE2::Set of them ran at about
// 600 MB/s per core) and without its memory limit, so a match can never come back incomplete.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace leakscope::detectors {

class literal_set {
 public:
  literal_set() = default;
  // Literal i of `literals` is reported as id i. Empty literals never match.
  explicit literal_set(const std::vector<std::string>& literals);

  // Appends to `ids`, in ascending order and once each, the id of every literal that occurs in
  // `text` (overlapping occurrences included).
  void find_all(std::string_view text, std::vector<std::uint32_t>& ids) const;

  bool empty() const { return literals_.empty(); }

 private:
  // One bitmap and one sorted (prefix, id) table per q-gram width.
  struct table {
    int bits = 0;
    std::vector<std::uint64_t> bitmap;
    std::vector<std::pair<std::uint64_t, std::uint32_t>> entries;
    bool empty() const { return entries.empty(); }
  };
  template <int Q>
  void scan(const table& t, std::string_view text, std::vector<std::uint32_t>& ids) const;

  std::vector<std::string> literals_;
  table long_;                         // literals of 8 bytes and more, by their first 8 bytes
  table short_;                        // 4 to 7 bytes, by their first 4
  std::vector<std::uint32_t> tiny_;    // 1 to 3 bytes: searched one by one (a rare profile value)
};

}  // namespace leakscope::detectors
