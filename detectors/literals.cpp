#include "detectors/literals.hpp"

#include <algorithm>
#include <cstring>

namespace leakscope::detectors {

namespace {

constexpr std::uint64_t golden = 0x9E3779B97F4A7C15ull;  // Fibonacci hashing: the top bits mix well
constexpr std::uint64_t second = 0xD6E8FEB86659FD93ull;  // an odd multiplier unrelated to it

// The bit as a number, so that two tests can be or-ed without a branch between them.
std::uint64_t test_bit(const std::uint64_t* bitmap, std::uint64_t h) {
  return bitmap[h >> 6] >> (h & 63) & 1;
}

void set_bit(std::vector<std::uint64_t>& bitmap, std::uint64_t h) {
  bitmap[h >> 6] |= std::uint64_t{1} << (h & 63);
}

template <int Q>
std::uint64_t load(const char* p) {
  if constexpr (Q == 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  } else {
    std::uint32_t w;
    std::memcpy(&w, p, 4);
    return w;
  }
}

// Bitmap size for n grams: at least 64 bits per gram keeps false hits near 1.5%, up to 2^20
// bits (128 KiB, within L2), where 16,000 grams still stay under 2%.
int bits_for(std::size_t n) {
  int bits = 12;
  while (bits < 20 && (std::size_t{1} << bits) < n * 64) {
    ++bits;
  }
  return bits;
}

// Past this stride the table grows faster than the scan gains (each literal is entered
// `stride` times).
constexpr std::size_t max_stride = 16;

}  // namespace

literal_set::literal_set(const std::vector<std::string>& literals) : literals_(literals) {
  std::vector<std::uint32_t> longs, middles, shorts;
  for (std::uint32_t id = 0; id < literals_.size(); ++id) {
    const auto size = literals_[id].size();
    if (size >= 16) {
      longs.push_back(id);
    } else if (size >= 8) {
      middles.push_back(id);
    } else if (size >= 4) {
      shorts.push_back(id);
    } else if (size > 0) {
      tiny_.push_back(id);
    }
  }
  build<8>(long_, longs);
  build<4>(middle_, middles);
  build<4>(short_, shorts);
}

template <int Q>
void literal_set::build(table& t, const std::vector<std::uint32_t>& ids) {
  if (ids.empty()) {
    return;
  }
  std::size_t shortest = literals_[ids.front()].size();
  for (const auto id : ids) {
    shortest = std::min(shortest, literals_[id].size());
  }
  t.stride = std::min(shortest - Q + 1, max_stride);
  for (const auto id : ids) {
    for (std::uint32_t offset = 0; offset < t.stride; ++offset) {
      t.entries.push_back({load<Q>(literals_[id].data() + offset), id, offset});
    }
  }
  std::sort(t.entries.begin(), t.entries.end());
  t.bits = bits_for(t.entries.size());
  t.bitmap.assign((std::size_t{1} << t.bits) / 64, 0);
  t.confirm.assign(t.bitmap.size(), 0);
  for (const auto& e : t.entries) {
    set_bit(t.bitmap, (e.gram * golden) >> (64 - t.bits));
    set_bit(t.confirm, (e.gram * second) >> (64 - t.bits));
  }
}

template <int Q, class Hit>
void literal_set::scan(const table& t, std::string_view text, Hit&& hit) const {
  if (t.empty() || text.size() < Q) {
    return;
  }
  const char* const data = text.data();
  const std::size_t last = text.size() - Q;
  const std::size_t stride = t.stride;
  const int shift = 64 - t.bits;
  const std::uint64_t* const bitmap = t.bitmap.data();
  const auto set = [&](std::size_t i) { return test_bit(bitmap, (load<Q>(data + i) * golden) >> shift); };
  for (std::size_t i = 0; i <= last; i += stride) {
    // Two positions per test: hits are rare, and one branch per pair halves the branches.
    if (i + stride <= last && (set(i) | set(i + stride)) == 0) {
      i += stride;
      continue;
    }
    const std::uint64_t w = load<Q>(data + i);
    if (set(i) == 0 || test_bit(t.confirm.data(), (w * second) >> shift) == 0) {
      continue;
    }
    auto it = std::lower_bound(t.entries.begin(), t.entries.end(), entry{w, 0, 0});
    for (; it != t.entries.end() && it->gram == w; ++it) {
      if (it->offset > i) {
        continue;
      }
      const std::size_t start = i - it->offset;
      const auto& l = literals_[it->id];
      const std::size_t n = l.size();
      // Literals that share a gram (one value's siblings in a profile) mostly differ at their
      // end: its last Q bytes are compared before the call to memcmp.
      if (n <= text.size() - start && load<Q>(data + start + n - Q) == load<Q>(l.data() + n - Q) &&
          std::memcmp(data + start, l.data(), n) == 0) {
        hit(start, it->id);
      }
    }
  }
}

void literal_set::find_all(std::string_view text, std::vector<std::uint32_t>& ids) const {
  const std::size_t first = ids.size();
  const auto add = [&ids](std::size_t, std::uint32_t id) { ids.push_back(id); };
  scan<8>(long_, text, add);
  scan<4>(middle_, text, add);
  scan<4>(short_, text, add);
  for (const std::uint32_t id : tiny_) {
    if (text.find(literals_[id]) != std::string_view::npos) {
      ids.push_back(id);
    }
  }
  std::sort(ids.begin() + static_cast<std::ptrdiff_t>(first), ids.end());
  ids.erase(std::unique(ids.begin() + static_cast<std::ptrdiff_t>(first), ids.end()), ids.end());
}

void literal_set::find_each(std::string_view text, std::vector<occurrence>& out) const {
  const auto first = static_cast<std::ptrdiff_t>(out.size());
  const auto add = [&out](std::size_t at, std::uint32_t id) { out.push_back({at, id}); };
  const auto by_position = [](const occurrence& a, const occurrence& b) { return a.at < b.at || (a.at == b.at && a.id < b.id); };
  // A table reports in the order of its sampled positions, and what it finds at one position
  // starts within the stride before it: each table's run is in order but for the rare
  // position with several finds, and the runs are merged instead of sorting them all (a batch
  // with an identifier per event has tens of thousands of occurrences).
  std::ptrdiff_t run = first;
  const auto merge_run = [&] {
    const auto from = out.begin() + run;
    if (!std::is_sorted(from, out.end(), by_position)) {
      std::sort(from, out.end(), by_position);
    }
    std::inplace_merge(out.begin() + first, from, out.end(), by_position);
    run = static_cast<std::ptrdiff_t>(out.size());
  };
  scan<8>(long_, text, add);
  merge_run();
  scan<4>(middle_, text, add);
  merge_run();
  scan<4>(short_, text, add);
  merge_run();
  for (const std::uint32_t id : tiny_) {
    for (auto at = text.find(literals_[id]); at != std::string_view::npos; at = text.find(literals_[id], at + 1)) {
      out.push_back({at, id});
    }
    merge_run();
  }
  // A literal sampled at two positions of one stride window is found twice.
  const auto same = [](const occurrence& a, const occurrence& b) { return a.at == b.at && a.id == b.id; };
  out.erase(std::unique(out.begin() + first, out.end(), same), out.end());
}

}  // namespace leakscope::detectors
