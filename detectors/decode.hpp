#pragma once
// Body and field decoders. Every decompressor streams with an output cap: a bomb stops at the
// cap with `limit_hit` set, and what was decoded so far is still returned for scanning.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace leakscope::detectors {

struct decoded {
  std::string data;
  bool ok = false;         // the input was valid in this coding (complete, or cut by the cap)
  bool limit_hit = false;  // output reached the cap
};

// gzip (members concatenated as RFC 1952 §2.2 allows) or zlib, auto-detected; raw deflate
// (RFC 1951) when `raw` is set.
decoded inflate_capped(std::string_view input, std::size_t cap, bool raw = false);
decoded brotli_capped(std::string_view input, std::size_t cap);
decoded zstd_capped(std::string_view input, std::size_t cap);

// Hands a decoded buffer back for this thread's next decoder to fill, so that its pages are not
// faulted in again for every body. Buffers over 4 MiB are freed.
void recycle(std::string&& buffer);

// True when `data` starts like a gzip member or a zlib stream.
bool looks_compressed(std::string_view data);

// A body after its Content-Encoding layers (outermost first in `chain`, as in leak records).
struct content {
  std::string data;
  std::vector<std::string> chain;       // e.g. {"gzip"}; undeclared gzip/zlib is listed too
  std::vector<std::string> incomplete;  // "decompression_limit", "decode_error", "too_many_encodings"
};

// Undoes Content-Encoding (gzip, x-gzip, deflate as zlib or raw, br, zstd, identity; up to
// two layers), then a gzip/zlib layer the header did not declare. On a decoding error the
// input of the failing layer is kept, so nothing goes unscanned.
content decode_content(std::string_view body, std::string_view content_encoding, std::size_t cap);
// Whether decode_content() would undo anything: a coding other than identity is declared, or
// the body starts like gzip or zlib. When not, the body can be scanned where it is, uncopied.
bool has_content_coding(std::string_view body, std::string_view content_encoding);

// "%E5%BC%A0+a" -> "张 a" (`plus_is_space` for form and query values).
std::string percent_decode(std::string_view text, bool plus_is_space);
// The same, without a copy of text that has nothing to decode: a view of `text` itself, else
// of `scratch`, which is overwritten.
std::string_view percent_decoded(std::string_view text, bool plus_is_space, std::string& scratch);

// The value of a hexadecimal digit, either case; -1 for any other byte.
inline int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// Standard or URL-safe alphabet, padded or not; nullopt when `text` is not base64.
std::optional<std::string> base64_decode(std::string_view text);
std::string base64_encode(std::string_view bytes, bool url_safe = false, bool pad = true);
std::string hex_encode(std::string_view bytes, bool upper = false);

}  // namespace leakscope::detectors
