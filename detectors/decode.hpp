#pragma once
// Body and field decoders. Every decoder has an output cap: a decompression bomb stops at the
// cap with `limit_hit` set, and what was decoded so far is still returned for scanning.

#include <cstddef>
#include <string>
#include <string_view>

namespace leakscope::detectors {

struct decoded {
  std::string data;
  bool ok = false;         // the input was valid in this encoding (up to where it ended)
  bool limit_hit = false;  // output reached the cap
};

// gzip or zlib (auto-detected), or raw deflate when `raw` is set.
decoded inflate_capped(std::string_view input, std::size_t cap, bool raw = false);

// True when `data` starts like a gzip member or a zlib stream.
bool looks_compressed(std::string_view data);

// "%E5%BC%A0+a" -> "张 a" (`plus_is_space` for form and query values).
std::string percent_decode(std::string_view text, bool plus_is_space);

}  // namespace leakscope::detectors
