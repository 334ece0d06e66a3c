#include "detectors/decode.hpp"

#include <zlib.h>

namespace leakscope::detectors {

decoded inflate_capped(std::string_view input, std::size_t cap, bool raw) {
  decoded out;
  z_stream z{};
  // 15 + 32: zlib or gzip, detected from the header; -15: raw deflate (RFC 1951).
  if (inflateInit2(&z, raw ? -15 : 15 + 32) != Z_OK) {
    return out;
  }
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
  z.avail_in = static_cast<uInt>(input.size());
  char buf[16384];
  int rc = Z_OK;
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    const std::size_t produced = sizeof buf - z.avail_out;
    const std::size_t room = cap - out.data.size();
    out.data.append(buf, std::min(produced, room));
    if (produced > room) {
      out.limit_hit = true;
      break;
    }
    if (rc == Z_STREAM_END) {
      // Concatenated gzip members (RFC 1952 §2.2) decode as one body.
      if (!raw && z.avail_in > 0 && looks_compressed(std::string_view(reinterpret_cast<char*>(z.next_in), z.avail_in))) {
        inflateReset(&z);
        continue;
      }
      break;
    }
    if (rc != Z_OK || (z.avail_in == 0 && produced == 0)) {
      break;
    }
  }
  out.ok = rc == Z_STREAM_END || (rc == Z_OK && !out.data.empty()) || out.limit_hit;
  inflateEnd(&z);
  return out;
}

bool looks_compressed(std::string_view d) {
  if (d.size() >= 2 && static_cast<unsigned char>(d[0]) == 0x1f && static_cast<unsigned char>(d[1]) == 0x8b) {
    return true;
  }
  // zlib: CM=8, and the header as a 16-bit number is a multiple of 31 (RFC 1950 §2.2).
  return d.size() >= 2 && (static_cast<unsigned char>(d[0]) & 0x0f) == 8 &&
         ((static_cast<unsigned>(static_cast<unsigned char>(d[0])) << 8) | static_cast<unsigned char>(d[1])) % 31 == 0;
}

std::string percent_decode(std::string_view text, bool plus_is_space) {
  auto hex = [](char c) -> int {
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
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else if (plus_is_space && text[i] == '+') {
      out += ' ';
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace leakscope::detectors
