#include "detectors/literals.hpp"

#include <algorithm>
#include <cstring>

namespace leakscope::detectors {

namespace {

constexpr std::uint64_t golden = 0x9E3779B97F4A7C15ull;  // Fibonacci hashing: the top bits mix well

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

// Bitmap size for n prefixes: at least 64 bits per prefix keeps false hits near 1.5%, up to
// 2^18 bits (32 KiB, an L1 cache), where a 5,000-literal profile still stays under 2%.
int bits_for(std::size_t n) {
  int bits = 12;
  while (bits < 18 && (std::size_t{1} << bits) < n * 64) {
    ++bits;
  }
  return bits;
}

}  // namespace

literal_set::literal_set(const std::vector<std::string>& literals) : literals_(literals) {
  for (std::uint32_t id = 0; id < literals_.size(); ++id) {
    const auto& l = literals_[id];
    if (l.size() >= 8) {
      long_.entries.push_back({load<8>(l.data()), id});
    } else if (l.size() >= 4) {
      short_.entries.push_back({load<4>(l.data()), id});
    } else if (!l.empty()) {
      tiny_.push_back(id);
    }
  }
  for (table* t : {&long_, &short_}) {
    std::sort(t->entries.begin(), t->entries.end());
    t->bits = bits_for(t->entries.size());
    t->bitmap.assign((std::size_t{1} << t->bits) / 64, 0);
    for (const auto& [prefix, id] : t->entries) {
      const std::uint64_t h = (prefix * golden) >> (64 - t->bits);
      t->bitmap[h >> 6] |= std::uint64_t{1} << (h & 63);
    }
  }
}

template <int Q>
void literal_set::scan(const table& t, std::string_view text, std::vector<std::uint32_t>& ids) const {
  if (t.empty() || text.size() < Q) {
    return;
  }
  const char* const data = text.data();
  const std::size_t last = text.size() - Q;
  const int shift = 64 - t.bits;
  const std::uint64_t* const bitmap = t.bitmap.data();
  for (std::size_t i = 0; i <= last; ++i) {
    const std::uint64_t w = load<Q>(data + i);
    const std::uint64_t h = (w * golden) >> shift;
    if ((bitmap[h >> 6] >> (h & 63) & 1) == 0) {
      continue;
    }
    auto it = std::lower_bound(t.entries.begin(), t.entries.end(), std::make_pair(w, std::uint32_t{0}));
    for (; it != t.entries.end() && it->first == w; ++it) {
      const auto& l = literals_[it->second];
      if (l.size() <= text.size() - i && std::memcmp(data + i + Q, l.data() + Q, l.size() - Q) == 0) {
        ids.push_back(it->second);
      }
    }
  }
}

void literal_set::find_all(std::string_view text, std::vector<std::uint32_t>& ids) const {
  const std::size_t first = ids.size();
  scan<8>(long_, text, ids);
  scan<4>(short_, text, ids);
  for (const std::uint32_t id : tiny_) {
    if (text.find(literals_[id]) != std::string_view::npos) {
      ids.push_back(id);
    }
  }
  std::sort(ids.begin() + static_cast<std::ptrdiff_t>(first), ids.end());
  ids.erase(std::unique(ids.begin() + static_cast<std::ptrdiff_t>(first), ids.end()), ids.end());
}

}  // namespace leakscope::detectors
