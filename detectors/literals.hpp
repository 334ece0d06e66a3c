#pragma once
// Many literals found in one pass over a buffer: the profile's known values in all their forms
// (thousands of literals, mostly 8 to 64 bytes, scanned against every request body).
//
// A sampled q-gram filter in the manner of Rabin–Karp with a bitmap. With the shortest literal
// m bytes long, every occurrence of every literal covers one of the positions 0, s, 2s, … with
// s = m - q + 1, so only those positions are looked at: each literal is entered by its q-grams at
// offsets 0 … s-1, and the q bytes at a sampled position (8, or 4 for literals shorter than 16)
// are hashed into a bitmap of those q-grams. The rare position whose hash is set is looked up
// exactly and the candidates, shifted back by their offset, are compared in full. The bitmap
// stays in L1 or L2; the inner loop is one load, one multiply and one bit test per s bytes.
// Several times faster than a DFA over thousands of literals (an RE2::Set of them ran at about
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

  struct occurrence {
    std::size_t at;  // offset of the literal's first byte in the text
    std::uint32_t id;
  };
  // Appends every occurrence of every literal, overlapping ones included, ordered by `at`.
  void find_each(std::string_view text, std::vector<occurrence>& out) const;

  std::size_t size_of(std::uint32_t id) const { return literals_[id].size(); }

  bool empty() const { return literals_.empty(); }

 private:
  struct entry {
    std::uint64_t gram;
    std::uint32_t id;
    std::uint32_t offset;  // of the gram in the literal
    bool operator<(const entry& o) const { return gram < o.gram || (gram == o.gram && id < o.id); }
  };
  // One bitmap and one sorted entry table per q-gram width.
  struct table {
    int bits = 0;
    std::size_t stride = 1;
    std::vector<std::uint64_t> bitmap;
    // The same grams under a second hash: a position passes both before the sorted table is
    // searched, which at tens of thousands of grams would otherwise cost more than the scan.
    std::vector<std::uint64_t> confirm;
    std::vector<entry> entries;
    bool empty() const { return entries.empty(); }
  };
  template <int Q>
  void build(table& t, const std::vector<std::uint32_t>& ids);
  // Calls hit(start, id) for each occurrence found through table `t`.
  template <int Q, class Hit>
  void scan(const table& t, std::string_view text, Hit&& hit) const;

  std::vector<std::string> literals_;
  // The stride is bounded by the table's shortest literal, so literals are split by length:
  // one 10-byte literal among thousands of hashes would otherwise sample every third byte for
  // all of them. 4-byte grams let the middle table's stride reach 5 to 12.
  table long_;                         // 16 bytes and more, by 8-byte grams
  table middle_;                       // 8 to 15 bytes, by 4-byte grams
  table short_;                        // 4 to 7 bytes, by 4-byte grams
  std::vector<std::uint32_t> tiny_;    // 1 to 3 bytes: searched one by one (a rare profile value)
};

}  // namespace leakscope::detectors
