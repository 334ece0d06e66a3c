#include "detectors/decode.hpp"

#include <strings.h>

#include <brotli/decode.h>
#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <limits>
#include <memory>

namespace leakscope::detectors {

namespace {

constexpr std::size_t chunk = 64 * 1024;

// One decoded body's buffer kept per thread for the next body. A fresh 1 MiB buffer costs 256
// page faults, and with memory cgroup accounting they take as long as inflating it (issue 3).
constexpr std::size_t max_recycled = 4u << 20;
thread_local std::string spare_buffer;

std::string take_buffer() {
  std::string b = std::move(spare_buffer);
  spare_buffer = std::string();
  b.clear();
  return b;
}

// Appends up to the cap; true when the cap cut the output.
bool append_capped(decoded& out, const char* data, std::size_t n, std::size_t cap) {
  const std::size_t room = cap - out.data.size();
  out.data.append(data, std::min(n, room));
  if (n > room) {
    out.limit_hit = true;
  }
  return out.limit_hit;
}

}  // namespace

void recycle(std::string&& buffer) {
  if (buffer.capacity() <= max_recycled && buffer.capacity() > spare_buffer.capacity()) {
    spare_buffer = std::move(buffer);
  }
}

// ISA-L's inflate rather than zlib's: on SDK event batches it produces about 2 GB/s per core
// against zlib's 0.7, and inflating is half the cost of scanning a gzip body (issue 3).
decoded inflate_capped(std::string_view input, std::size_t cap, bool raw) {
  decoded out;
  // 87 KiB of state, reused by each thread rather than allocated per body.
  thread_local inflate_state state;
  const auto begin_member = [&](std::string_view rest) {
    isal_inflate_init(&state);
    if (raw) {
      state.crc_flag = ISAL_DEFLATE;
    } else if (rest.size() >= 2 && static_cast<unsigned char>(rest[0]) == 0x1f &&
               static_cast<unsigned char>(rest[1]) == 0x8b) {
      state.crc_flag = ISAL_GZIP;
    } else {
      state.crc_flag = ISAL_ZLIB;
    }
  };
  begin_member(input);
  out.data = take_buffer();
  // Inflates straight into the result, one byte past the cap so that reaching the cap exactly
  // is not mistaken for a bomb.
  const std::size_t limit = cap == std::numeric_limits<std::size_t>::max() ? cap : cap + 1;
  std::size_t produced = 0;
  std::size_t consumed = 0;
  // The room inflate writes into is not zero-filled first: what it does not fill is cut off at the
  // end. The size is the one asked for, not the operation's second argument: GCC 12's library
  // passes the capacity it grew to there, which may be past `limit`.
  const auto make_room = [&out](std::size_t n) { out.data.resize_and_overwrite(n, [n](char*, std::size_t) { return n; }); };
  make_room(std::min(limit, std::max({chunk, input.size() * 8, out.data.capacity()})));
  int rc = ISAL_DECOMP_OK;
  bool finished = false;
  while (true) {
    if (produced == out.data.size()) {
      if (produced == limit) {
        break;
      }
      make_room(std::min(limit, out.data.size() * 2));
    }
    // The streaming API counts in 32 bits; bodies past 1 GiB are fed in pieces.
    const std::size_t feed = std::min<std::size_t>(input.size() - consumed, 1u << 30);
    const std::size_t room = std::min<std::size_t>(out.data.size() - produced, 1u << 30);
    state.next_in = reinterpret_cast<std::uint8_t*>(const_cast<char*>(input.data() + consumed));
    state.avail_in = static_cast<std::uint32_t>(feed);
    state.next_out = reinterpret_cast<std::uint8_t*>(out.data.data() + produced);
    state.avail_out = static_cast<std::uint32_t>(room);
    rc = isal_inflate(&state);
    const std::size_t used = feed - state.avail_in;
    const std::size_t made = room - state.avail_out;
    consumed += used;
    produced += made;
    if (rc != ISAL_DECOMP_OK) {
      break;
    }
    if (state.block_state == ISAL_BLOCK_FINISH) {
      const auto rest = input.substr(consumed);
      if (!raw && looks_compressed(rest)) {
        begin_member(rest);  // another gzip member (RFC 1952 §2.2)
        continue;
      }
      finished = true;
      break;
    }
    if (used == 0 && made == 0 && consumed == input.size()) {
      break;  // the input ended before the stream did
    }
  }
  if (produced > cap) {
    produced = cap;
    out.limit_hit = true;
  }
  out.data.resize(produced);
  out.ok = finished || out.limit_hit;
  return out;
}

decoded brotli_capped(std::string_view input, std::size_t cap) {
  decoded out;
  out.data = take_buffer();
  std::unique_ptr<BrotliDecoderState, decltype(&BrotliDecoderDestroyInstance)> state(
      BrotliDecoderCreateInstance(nullptr, nullptr, nullptr), BrotliDecoderDestroyInstance);
  if (!state) {
    return out;
  }
  auto* next_in = reinterpret_cast<const std::uint8_t*>(input.data());
  std::size_t avail_in = input.size();
  std::array<char, chunk> buf;
  while (true) {
    auto* next_out = reinterpret_cast<std::uint8_t*>(buf.data());
    std::size_t avail_out = buf.size();
    const auto rc = BrotliDecoderDecompressStream(state.get(), &avail_in, &next_in, &avail_out, &next_out, nullptr);
    if (append_capped(out, buf.data(), buf.size() - avail_out, cap)) {
      out.ok = true;
      return out;
    }
    if (rc == BROTLI_DECODER_RESULT_SUCCESS) {
      out.ok = true;
      return out;
    }
    if (rc != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT) {
      return out;  // error, or input ended before the stream did
    }
  }
}

decoded zstd_capped(std::string_view input, std::size_t cap) {
  decoded out;
  out.data = take_buffer();
  std::unique_ptr<ZSTD_DStream, decltype(&ZSTD_freeDStream)> stream(ZSTD_createDStream(), ZSTD_freeDStream);
  if (!stream) {
    return out;
  }
  ZSTD_inBuffer in{input.data(), input.size(), 0};
  std::array<char, chunk> buf;
  std::size_t last = 1;
  while (true) {
    ZSTD_outBuffer o{buf.data(), buf.size(), 0};
    last = ZSTD_decompressStream(stream.get(), &o, &in);
    if (ZSTD_isError(last)) {
      return out;
    }
    if (append_capped(out, buf.data(), o.pos, cap)) {
      out.ok = true;
      return out;
    }
    if (in.pos == in.size && o.pos < o.size) {
      break;  // all input consumed and the decoder had room to spare: nothing more to flush
    }
  }
  out.ok = last == 0;  // 0: a frame ended exactly here
  return out;
}

bool looks_compressed(std::string_view d) {
  if (d.size() < 2) {
    return false;
  }
  const auto b0 = static_cast<unsigned char>(d[0]);
  const auto b1 = static_cast<unsigned char>(d[1]);
  if (b0 == 0x1f && b1 == 0x8b) {
    return true;
  }
  // zlib: CM = 8 with a window of at most 32 KiB, and the header as a 16-bit number is a
  // multiple of 31 (RFC 1950 §2.2).
  return (b0 & 0x0f) == 8 && (b0 >> 4) <= 7 && ((b0 << 8) | b1) % 31 == 0;
}

bool has_content_coding(std::string_view body, std::string_view content_encoding) {
  while (!content_encoding.empty()) {
    const auto comma = content_encoding.find(',');
    auto token = content_encoding.substr(0, comma);
    content_encoding = comma == std::string_view::npos ? std::string_view() : content_encoding.substr(comma + 1);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
      token.remove_prefix(1);
    }
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) {
      token.remove_suffix(1);
    }
    if (!token.empty() && !(token.size() == 8 && strncasecmp(token.data(), "identity", 8) == 0)) {
      return true;
    }
  }
  return looks_compressed(body);
}

content decode_content(std::string_view body, std::string_view content_encoding, std::size_t cap) {
  content out;
  // Codings are listed in the order they were applied (RFC 9110 §8.4): undo from the last.
  std::vector<std::string> codings;
  std::size_t start = 0;
  while (start <= content_encoding.size()) {
    const auto comma = content_encoding.find(',', start);
    std::string token(content_encoding.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    token.erase(0, token.find_first_not_of(" \t"));
    token.erase(token.find_last_not_of(" \t") + 1);
    std::transform(token.begin(), token.end(), token.begin(), [](unsigned char c) { return std::tolower(c); });
    if (!token.empty() && token != "identity") {
      codings.push_back(token);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    start = comma + 1;
  }
  if (codings.size() > 2) {
    out.incomplete.push_back("too_many_encodings");
    codings.erase(codings.begin(), codings.end() - 2);
  }
  // Each layer's output replaces the last; the body itself is only copied when no layer
  // decodes.
  std::string_view current = body;
  bool decoded_any = false;
  auto apply = [&](decoded&& d, const std::string& name) {
    if (d.limit_hit) {
      out.incomplete.push_back("decompression_limit");
    }
    const bool failed = !d.ok && !d.limit_hit;
    if (failed) {
      out.incomplete.push_back("decode_error");
    }
    // A body cut short still decodes up to the cut, and that part is what can be read; a
    // coding that decodes to nothing (a lying header) leaves the bytes as they came.
    if (!failed || !d.data.empty()) {
      recycle(std::move(out.data));
      out.data = std::move(d.data);
      current = out.data;
      decoded_any = true;
      out.chain.push_back(name);
    } else {
      recycle(std::move(d.data));
    }
    return !failed && !d.limit_hit;
  };
  const auto finish = [&]() -> content {
    if (!decoded_any) {
      out.data.assign(body);
    }
    return std::move(out);
  };
  for (auto it = codings.rbegin(); it != codings.rend(); ++it) {
    const auto& c = *it;
    bool go_on = true;
    if (c == "gzip" || c == "x-gzip") {
      go_on = apply(inflate_capped(current, cap), "gzip");
    } else if (c == "deflate") {
      // "deflate" means zlib (RFC 9110 §8.4.1.2), but many servers and SDKs send raw deflate.
      auto d = inflate_capped(current, cap);
      if (!d.ok) {
        auto raw = inflate_capped(current, cap, true);
        if (raw.ok || raw.limit_hit || raw.data.size() > d.data.size()) {
          d = std::move(raw);
        }
      }
      go_on = apply(std::move(d), "deflate");
    } else if (c == "br") {
      go_on = apply(brotli_capped(current, cap), "br");
    } else if (c == "zstd") {
      go_on = apply(zstd_capped(current, cap), "zstd");
    } else {
      out.incomplete.push_back("decode_error");  // an unknown coding: scan the bytes as they are
      go_on = false;
    }
    if (!go_on) {
      return finish();
    }
  }
  if (looks_compressed(current)) {
    auto d = inflate_capped(current, cap);
    if (d.ok) {
      const bool gzip = static_cast<unsigned char>(current[0]) == 0x1f;
      apply(std::move(d), gzip ? "gzip" : "deflate");
    } else {
      recycle(std::move(d.data));
    }
  }
  return finish();
}

namespace {

// Written through a pointer, not appended a byte at a time: form bodies decode every value.
void percent_decode_to(std::string& out, std::string_view text, bool plus_is_space) {
  out.resize(text.size());  // decoding never lengthens
  char* o = out.data();
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p < end) {
    const char c = *p;
    int high = 0;
    int low = 0;
    if (c == '%' && end - p > 2 && (high = hex_value(p[1])) >= 0 && (low = hex_value(p[2])) >= 0) {
      *o++ = static_cast<char>(high * 16 + low);
      p += 3;
    } else {
      *o++ = plus_is_space && c == '+' ? ' ' : c;
      ++p;
    }
  }
  out.resize(static_cast<std::size_t>(o - out.data()));
}

}  // namespace

std::string percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  percent_decode_to(out, text, plus_is_space);
  return out;
}

std::string_view percent_decoded(std::string_view text, bool plus_is_space, std::string& scratch) {
  for (const char c : text) {
    if (c == '%' || (plus_is_space && c == '+')) {
      percent_decode_to(scratch, text, plus_is_space);
      return scratch;
    }
  }
  return text;
}

namespace {

constexpr char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+' || c == '-') {
    return 62;
  }
  if (c == '/' || c == '_') {
    return 63;
  }
  return -1;
}

}  // namespace

std::optional<std::string> base64_decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') {
    text.remove_suffix(1);
  }
  if (text.size() % 4 == 1) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = b64_value(c);
    if (v < 0) {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string base64_encode(std::string_view bytes, bool url_safe, bool pad) {
  const char* alphabet = url_safe ? b64_url : b64_std;
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t n = (static_cast<std::uint8_t>(bytes[i]) << 16) | (static_cast<std::uint8_t>(bytes[i + 1]) << 8) |
                            static_cast<std::uint8_t>(bytes[i + 2]);
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += alphabet[(n >> 6) & 63];
    out += alphabet[n & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t n = static_cast<std::uint8_t>(bytes[i]) << 16;
    if (rest == 2) {
      n |= static_cast<std::uint8_t>(bytes[i + 1]) << 8;
    }
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    if (rest == 2) {
      out += alphabet[(n >> 6) & 63];
    }
    if (pad) {
      out.append(3 - rest, '=');
    }
  }
  return out;
}

std::string hex_encode(std::string_view bytes, bool upper) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto b = static_cast<std::uint8_t>(c);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

}  // namespace leakscope::detectors
