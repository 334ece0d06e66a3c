#pragma once
// The JSON grammar of the detectors, as a push parser (bytes in, events out).

#include "detectors/decode.hpp"
#include "detectors/structure.hpp"

#include <cstddef>
#include <string>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace leakscope::detectors {

// A strict RFC 8259 push parser: it reports keys, scalars and container boundaries to a
// handler and builds nothing itself, so the same grammar serves the tree (parse_json) and the
// engine's walk without a tree. A template, so that a handler's calls inline into the loop.
// Bounded depth and node count; any error, or a handler returning false, stops it.
//
// Handler: on_begin(kind, at) / on_end(at) around containers (the offsets of the opening
// bracket and just past the closing one), on_key(raw) before each object member,
// on_scalar(kind, text, begin, end) for strings (decoded), numbers (as spelled) and
// true/false/null, with the token's source range. Views
// passed to the handler are valid only during the call.
class json_parser {
 public:
  explicit json_parser(std::string_view s) : s_(s) {}

  template <class Handler>
  bool document(Handler& h) {
    skip_ws();
    if (!value(h, 0)) {
      return false;
    }
    skip_ws();
    return pos_ == s_.size();
  }

 private:
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) {
      ++pos_;
    }
  }

  template <class Handler>
  bool value(Handler& h, int depth) {
    if (pos_ >= s_.size() || ++count_ > max_structure_nodes) {
      return false;
    }
    const char c = s_[pos_];
    if (c == '{' || c == '[') {
      return container(h, depth, c == '{');
    }
    const std::size_t start = pos_;
    std::string_view text;
    if (c == '"') {
      return string(text) && h.on_scalar(node::type::string, text, start, pos_);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      return number(text) && h.on_scalar(node::type::number, text, start, pos_);
    }
    for (const std::string_view word : {"true", "false", "null"}) {
      if (s_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return h.on_scalar(node::type::other, word, start, pos_);
      }
    }
    return false;
  }

  template <class Handler>
  bool container(Handler& h, int depth, bool object) {
    if (depth >= max_structure_depth || !h.on_begin(object ? node::type::object : node::type::array, pos_)) {
      return false;
    }
    const char close = object ? '}' : ']';
    ++pos_;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == close) {
      ++pos_;
      return h.on_end(pos_);
    }
    while (true) {
      if (object) {
        std::string_view key;
        if (pos_ >= s_.size() || s_[pos_] != '"' || !string(key) || !h.on_key(key)) {
          return false;
        }
        skip_ws();
        if (pos_ >= s_.size() || s_[pos_] != ':') {
          return false;
        }
        ++pos_;
        skip_ws();
      }
      if (!value(h, depth + 1)) {
        return false;
      }
      skip_ws();
      if (pos_ >= s_.size()) {
        return false;
      }
      if (s_[pos_] == ',') {
        ++pos_;
        skip_ws();
        continue;
      }
      if (s_[pos_] == close) {
        ++pos_;
        return h.on_end(pos_);
      }
      return false;
    }
  }

  bool hex4(unsigned& out) {
    if (s_.size() - pos_ < 4) {
      return false;
    }
    out = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = hex_value(s_[pos_++]);
      if (h < 0) {
        return false;
      }
      out = (out << 4) | static_cast<unsigned>(h);
    }
    return true;
  }

  static void utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  // The first position from `i` holding a quote (`at_quote` set), a backslash or a control
  // character, or the end: 16 bytes per step where SSE2 is available, as every x86-64 has it.
  std::size_t plain_run_end(std::size_t i, bool& at_quote) const {
    const char* const data = s_.data();
    const std::size_t n = s_.size();
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i control_max = _mm_set1_epi8(0x1f);
    for (; i + 16 <= n; i += 16) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
      const __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                                        _mm_cmpeq_epi8(_mm_max_epu8(x, control_max), control_max));
      if (const int mask = _mm_movemask_epi8(stop); mask != 0) {
        const int at = __builtin_ctz(static_cast<unsigned>(mask));
        // Told from the masks, not by reading the byte again: that load sat on the critical path.
        at_quote = ((_mm_movemask_epi8(_mm_cmpeq_epi8(x, quote)) >> at) & 1) != 0;
        return i + static_cast<std::size_t>(at);
      }
    }
#endif
    for (; i < n; ++i) {
      const char c = data[i];
      if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
        at_quote = c == '"';
        return i;
      }
    }
    at_quote = false;
    return n;
  }

  // A string token: `out` views the source when the string has no escapes (the common case),
  // else the decoded copy in scratch_, valid until the next call. The common case is kept
  // small enough to inline into the grammar's loop.
  bool string(std::string_view& out) {
    ++pos_;  // the opening quote
    const std::size_t start = pos_;
    bool at_quote = false;
    const std::size_t run_end = plain_run_end(pos_, at_quote);
    if (at_quote) [[likely]] {
      out = std::string_view(s_.data() + start, run_end - start);
      pos_ = run_end + 1;
      return true;
    }
    return escaped_string(out);
  }

  // string() from its opening quote on, for a string with an escape (or an error).
  [[gnu::noinline]] bool escaped_string(std::string_view& out) {
    const std::size_t start = pos_;
    bool escaped = false;
    scratch_.clear();
    while (pos_ < s_.size()) {
      // Runs without escapes are copied in one go.
      bool at_quote = false;
      const std::size_t run_end = plain_run_end(pos_, at_quote);
      if (at_quote && !escaped) {
        out = std::string_view(s_.data() + start, run_end - start);
        pos_ = run_end + 1;
        return true;
      }
      if (run_end >= s_.size() || (!at_quote && s_[run_end] != '\\')) {
        return false;  // unterminated, or a control character, which must be escaped (RFC 8259 §7)
      }
      scratch_.append(s_.data() + pos_, run_end - pos_);
      pos_ = run_end;
      if (s_[pos_] == '"') {
        ++pos_;
        out = scratch_;
        return true;
      }
      escaped = true;
      ++pos_;  // the backslash
      if (pos_ >= s_.size()) {
        return false;
      }
      const char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          scratch_ += e;
          break;
        case 'b':
          scratch_ += '\b';
          break;
        case 'f':
          scratch_ += '\f';
          break;
        case 'n':
          scratch_ += '\n';
          break;
        case 'r':
          scratch_ += '\r';
          break;
        case 't':
          scratch_ += '\t';
          break;
        case 'u': {
          unsigned cp = 0;
          if (!hex4(cp)) {
            return false;
          }
          if (cp >= 0xd800 && cp <= 0xdbff && s_.substr(pos_, 2) == "\\u") {
            pos_ += 2;
            unsigned low = 0;
            if (!hex4(low) || low < 0xdc00 || low > 0xdfff) {
              return false;
            }
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          }
          utf8(scratch_, cp);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  bool number(std::string_view& out) {
    const std::size_t start = pos_;
    auto digits = [&] {
      const std::size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        ++pos_;
      }
      return pos_ > from;
    };
    if (s_[pos_] == '-') {
      ++pos_;
    }
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
    } else if (!digits()) {
      return false;
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!digits()) {
        return false;
      }
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) {
        ++pos_;
      }
      if (!digits()) {
        return false;
      }
    }
    out = s_.substr(start, pos_ - start);
    return true;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  std::size_t count_ = 0;
  std::string scratch_;  // decoded strings that had escapes
};

}  // namespace leakscope::detectors
