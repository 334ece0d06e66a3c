#include "captures/records.hpp"

#include "captures/base64.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace leakscope::captures {

using nlohmann::json;

// Every flow and leak line carries one: formatted by hand, as snprintf and gmtime_r (which takes
// glibc's time-zone lock) cost 3,000 instructions a call, 2 % of a small exchange's.
std::string iso8601(wall_time t) {
  using namespace std::chrono;
  const auto us = time_point_cast<microseconds>(t);
  const auto day = floor<days>(us);
  const year_month_day date{day};
  const hh_mm_ss<microseconds> time{us - day};
  char buf[32];
  char* p = buf;
  const auto digits = [&p](long long v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      p[i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
    p += width;
  };
  const int y = static_cast<int>(date.year());
  if (y < 0 || y > 9999) {
    return "0000-01-01T00:00:00.000000Z";  // outside ISO 8601's four digits: never a clock's reading
  }
  digits(y, 4);
  *p++ = '-';
  digits(static_cast<unsigned>(date.month()), 2);
  *p++ = '-';
  digits(static_cast<unsigned>(date.day()), 2);
  *p++ = 'T';
  digits(time.hours().count(), 2);
  *p++ = ':';
  digits(time.minutes().count(), 2);
  *p++ = ':';
  digits(time.seconds().count(), 2);
  *p++ = '.';
  digits(time.subseconds().count(), 6);
  *p++ = 'Z';
  return std::string(buf, p);
}

namespace {

json dest_json(const destination& d) {
  return {{"host", d.host}, {"ip", d.ip.empty() ? json(nullptr) : json(d.ip)}, {"port", d.port}, {"scheme", d.scheme}};
}

// Traffic is not guaranteed to be UTF-8; invalid bytes become U+FFFD rather than an exception.
std::string line(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; }

// A string's bytes inside JSON quotes, escaped as nlohmann escapes them (ensure_ascii off):
// the two-character escapes, \u00XX for other control characters, every other byte as is.
// The first byte from `i` that JSON must escape ('"', '\\' or a control character), or with
// `stop_at_high` also the first byte from 0x80; the end when there is none. 16 bytes per step
// where SSE2 is available, as every x86-64 has it.
std::size_t next_to_escape(std::string_view v, std::size_t i, bool stop_at_high = false) {
  const std::size_t n = v.size();
#if defined(__SSE2__)
  const __m128i control_max = _mm_set1_epi8(0x1f);
  for (; i + 16 <= n; i += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v.data() + i));
    const __m128i stop = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')), _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
        _mm_cmpeq_epi8(_mm_max_epu8(x, control_max), control_max));
    const int mask = _mm_movemask_epi8(stop) | (stop_at_high ? _mm_movemask_epi8(x) : 0);
    if (mask != 0) {
      return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    }
  }
#endif
  // The rest (most header names and values are shorter than 16 bytes) 8 bytes a step in a
  // 64-bit word, padded with bytes that need nothing. Each test below may also flag bytes after
  // the first that matches (a borrow), never one before it: the lowest flag is the answer.
  constexpr std::uint64_t ones = 0x0101010101010101ULL;
  constexpr std::uint64_t highs = 0x8080808080808080ULL;
  const auto zero_bytes = [](std::uint64_t x) { return (x - ones) & ~x & highs; };
  while (i < n) {
    const std::size_t k = std::min<std::size_t>(8, n - i);
    std::uint64_t x = ones * 'a';
    std::memcpy(&x, v.data() + i, k);
    std::uint64_t flags = zero_bytes(x ^ (ones * '"')) | zero_bytes(x ^ (ones * '\\')) | ((x - ones * 0x20) & ~x & highs);
    if (stop_at_high) {
      flags |= x & highs;
    }
    if (flags != 0) {
      return i + static_cast<std::size_t>(std::countr_zero(flags)) / 8;
    }
    i += k;
  }
  return n;
}

void append_escaped(std::string& out, std::string_view v) {
  // Bodies are up to capture.max_inspect_body: runs that need no escape go in with one append.
  std::size_t run = 0;
  for (std::size_t i = next_to_escape(v, 0); i < v.size(); i = next_to_escape(v, i + 1)) {
    const char c = v[i];
    out.append(v.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default: {
        static const char* const hex = "0123456789abcdef";  // the other control characters
        out += "\\u00";
        out += hex[(c >> 4) & 0xf];
        out += hex[c & 0xf];
      }
    }
  }
  out.append(v.data() + run, v.size() - run);
}

// A JSON writer for the records written per request, whose output is byte for byte what
// nlohmann's dump() of the same values gives (members in sorted order, the same escapes, the
// same numbers): a flow line through nlohmann built a map node and a string copy per member,
// a fifth of the proxy's own time on small kept-alive requests.
class json_writer {
 public:
  explicit json_writer(std::string& out) : out_(out) {}

  json_writer& key(std::string_view k) {
    out_ += first_ ? "\"" : ",\"";
    out_ += k;
    out_ += "\":";
    first_ = false;
    return *this;
  }
  void open(char c) {
    out_ += c;
    first_ = true;
  }
  void close(char c) {
    out_ += c;
    first_ = false;
  }
  void null() { out_ += "null"; }
  void boolean(bool v) { out_ += v ? "true" : "false"; }
  void number(std::uint64_t v) {
    char buf[24];
    out_.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
  }
  void number(int v) {
    char buf[16];
    out_.append(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
  }
  // Milliseconds with microsecond precision (enough for timing evidence, stable in golden
  // tests), printed as nlohmann prints doubles in [1e-5, 1e15): plain notation, shortest
  // round trip, ".0" when there is no fraction.
  void milliseconds(double v) {
    const double rounded = std::round(v * 1000.0) / 1000.0;
    if (!(std::abs(rounded) < 1e15)) {
      out_ += json(rounded).dump();  // outside the records' range: nlohmann's own notation
      return;
    }
    char buf[64];
    const auto end = std::to_chars(buf, buf + sizeof buf, rounded, std::chars_format::fixed).ptr;
    out_.append(buf, static_cast<std::size_t>(end - buf));
    if (std::string_view(buf, static_cast<std::size_t>(end - buf)).find('.') == std::string_view::npos) {
      out_ += ".0";
    }
  }
  void string(std::string_view v) {
    // Most strings (header names and values, hosts) need nothing: one pass finds that.
    if (next_to_escape(v, 0, true) == v.size()) {
      out_ += '"';
      out_ += v;
      out_ += '"';
      return;
    }
    // ASCII is escaped here as nlohmann does; other bytes take its path, which also replaces
    // what is not UTF-8 with U+FFFD.
    for (const char c : v) {
      if (static_cast<unsigned char>(c) >= 0x80) {
        out_ += json(v).dump(-1, ' ', false, json::error_handler_t::replace);
        return;
      }
    }
    out_ += '"';
    append_escaped(out_, v);
    out_ += '"';
  }
  void string_or_null(std::string_view v) {
    if (v.empty()) {
      null();
    } else {
      string(v);
    }
  }

 private:
  std::string& out_;
  bool first_ = true;
};

}  // namespace

std::string to_json_line(const flow_record& r) {
  std::string out;
  out.reserve(512 + r.url.size());
  json_writer w(out);
  w.open('{');
  w.key("bytes_down").number(r.bytes_down);
  w.key("bytes_up").number(r.bytes_up);
  w.key("client").string(r.client);
  w.key("complete").boolean(r.complete);
  w.key("dest").open('{');
  w.key("host").string(r.dest.host);
  w.key("ip").string_or_null(r.dest.ip);
  w.key("port").number(static_cast<int>(r.dest.port));
  w.key("scheme").string(r.dest.scheme);
  w.close('}');
  w.key("error");
  if (r.error) {
    w.open('{');
    w.key("detail").string(r.error->detail);
    w.key("type").string(r.error->type);
    w.close('}');
  } else {
    w.null();
  }
  w.key("id").number(r.id);
  w.key("incomplete").open('[');
  for (std::size_t i = 0; i < r.incomplete.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    w.string(r.incomplete[i]);
  }
  w.close(']');
  w.key("kind").string(r.kind);
  w.key("leaks").number(r.leaks);
  w.key("method").string_or_null(r.method);
  w.key("note").string_or_null(r.note);
  w.key("request_truncated").boolean(r.request_truncated);
  w.key("sni").string_or_null(r.sni);
  w.key("start").string(iso8601(r.start));
  w.key("status");
  if (r.status == 0) {
    w.null();
  } else {
    w.number(r.status);
  }
  const auto optional_ms = [&w](const std::optional<double>& v) {
    if (v) {
      w.milliseconds(*v);
    } else {
      w.null();
    }
  };
  w.key("tls_handshake_ms");
  optional_ms(r.tls_handshake_ms);
  w.key("total_ms").milliseconds(r.total_ms);
  w.key("ttfb_ms");
  optional_ms(r.ttfb_ms);
  w.key("url").string_or_null(r.url);
  w.close('}');
  out += '\n';
  return out;
}

std::string to_json_line(const leak_record& r) {
  json j = {{"id", r.id},
            {"ts", iso8601(r.ts)},
            {"t_session_ms", r.t_session_ms},
            {"t_consent_ms", r.t_consent_ms ? json(*r.t_consent_ms) : json(nullptr)},
            {"flow", r.flow},
            {"client", r.client},
            {"dest", dest_json(r.dest)},
            {"party", r.party},
            {"party_rule", r.party_rule.empty() ? json(nullptr) : json(r.party_rule)},
            {"domain", r.domain.empty() ? json(nullptr) : json(r.domain)},
            {"sdk", r.sdk ? json{{"name", r.sdk->name}, {"vendor", r.sdk->vendor}, {"category", r.sdk->category}}
                          : json(nullptr)},
            {"category", r.category},
            {"source", r.source},
            {"confidence", r.confidence},
            {"where", r.where},
            {"encoding", r.encoding},
            {"value", r.value},
            {"count", r.count},
            {"request", {{"method", r.method}, {"path", r.path}}},
            {"har_entry", r.har_entry ? json(*r.har_entry) : json(nullptr)},
            {"frames", {{"traffic", r.traffic_frame == 0 ? json(nullptr) : json(r.traffic_frame)},
                        {"decrypted", r.decrypted_frame == 0 ? json(nullptr) : json(r.decrypted_frame)}}}};
  return line(j);
}

namespace {

// How many bytes of a body need escaping as JSON text, or nullopt when the body is not text:
// not well-formed UTF-8 (Unicode 15 table 3-7: no overlong forms, surrogates or code points
// past U+10FFFF, which a JSON reader would reject) or holding control characters other than
// \n, \r and \t. Bodies are up to capture.max_inspect_body: 16 plain ASCII bytes at a time.
std::optional<std::size_t> text_escapes(std::string_view body) {
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  const std::size_t n = body.size();
  std::size_t escapes = 0;
  std::size_t i = 0;
  while (i < n) {
#if defined(__SSE2__)
    if (n - i >= 16) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
      // A signed compare: bytes from 0x80 are negative, so one test finds them and the controls.
      if (_mm_movemask_epi8(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20))) == 0) {
        const __m128i quoted = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')), _mm_cmpeq_epi8(x, _mm_set1_epi8('\\')));
        // Counted by a sum of absolute differences: a popcount instruction is not in the
        // x86-64 baseline, and __builtin_popcount became a call into libgcc per 16 bytes.
        const __m128i sums = _mm_sad_epu8(_mm_and_si128(quoted, _mm_set1_epi8(1)), _mm_setzero_si128());
        escapes += static_cast<std::size_t>(_mm_cvtsi128_si32(sums) + _mm_extract_epi16(sums, 4));
        i += 16;
        continue;
      }
    }
#endif
    const unsigned c = p[i];
    if (c < 0x80) {
      if (c < 0x20 && c != '\n' && c != '\r' && c != '\t') {
        return std::nullopt;
      }
      escapes += (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t') ? 1 : 0;
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned second_min = 0x80, second_max = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c == 0xe0) {
      len = 3;
      second_min = 0xa0;
    } else if (c == 0xed) {
      len = 3;
      second_max = 0x9f;
    } else if (c >= 0xe1 && c <= 0xef) {
      len = 3;
    } else if (c == 0xf0) {
      len = 4;
      second_min = 0x90;
    } else if (c == 0xf4) {
      len = 4;
      second_max = 0x8f;
    } else if (c >= 0xf1 && c <= 0xf3) {
      len = 4;
    } else {
      return std::nullopt;
    }
    if (n - i < len || p[i + 1] < second_min || p[i + 1] > second_max) {
      return std::nullopt;
    }
    for (std::size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) {
        return std::nullopt;
      }
    }
    i += len;
  }
  return escapes;
}

// Appends `body` escaped as JSON text, given that it is UTF-8 whose only characters to escape
// are the `escapes` counted by text_escapes() (", \, \n, \r, \t: two bytes for one). The
// output's size is known, so it is written in place: a block of 16 bytes is stored whole and
// each escape moves the rest of the block along, where appending the runs between escapes (a
// JSON body has a quote every few bytes) spent a call and a capacity check on each.
void append_text_escaped(std::string& out, std::string_view body, std::size_t escapes) {
  const std::size_t at = out.size();
  const std::size_t size = body.size() + escapes;
  constexpr std::size_t slack = 16;  // whole-block stores may run this far past the end
  // Not zero-filled: all of it is written below. (The size is captured: GCC 12's library passes
  // the grown capacity as the operation's second argument.)
  out.resize_and_overwrite(at + size + slack, [n = at + size + slack](char*, std::size_t) { return n; });
  char* dst = out.data() + at;
  const char* const src = body.data();
  const std::size_t n = body.size();
  std::size_t i = 0;
  const auto escape = [&dst](char c) {
    dst[0] = '\\';
    dst[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : c;
    dst += 2;
  };
#if defined(__SSE2__)
  // Each store reads 16 bytes from where the block's next run starts: up to 31 bytes past i.
  for (; i + 32 <= n; i += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m128i stop = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')), _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
        _mm_cmplt_epi8(x, _mm_set1_epi8(0x20)));  // \n, \r, \t, and bytes from 0x80 (signed)
    auto mask = static_cast<unsigned>(_mm_movemask_epi8(
        _mm_andnot_si128(_mm_cmplt_epi8(x, _mm_setzero_si128()), stop)));  // not the bytes from 0x80
    std::size_t from = 0;
    while (mask != 0) {
      const auto j = static_cast<std::size_t>(__builtin_ctz(mask));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + from)));
      dst += j - from;
      escape(src[i + j]);
      from = j + 1;
      mask &= mask - 1;
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + from)));
    dst += 16 - from;
  }
#endif
  for (; i < n; ++i) {
    const char c = src[i];
    if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t') {
      escape(c);
    } else {
      *dst++ = c;
    }
  }
  out.resize(at + size);
}

// The HAR body object {"encoding"?,"text","truncated"}, keys in nlohmann's (sorted) order.
// Valid UTF-8 text is kept as text; anything else as base64, as HAR writers do. Written
// straight into the line: the body is up to capture.max_inspect_body, and a json value of it
// plus its dump would hold it three times over.
void append_body_json(std::string& out, std::string_view body, std::optional<std::size_t> text_escapes,
                      bool truncated) {
  if (text_escapes) {
    out += "{\"text\":\"";
    append_text_escaped(out, body, *text_escapes);
  } else {
    out += "{\"encoding\":\"base64\",\"text\":\"";
    base64_append(out, body);
  }
  out += truncated ? "\",\"truncated\":true}" : "\",\"truncated\":false}";
}

}  // namespace

std::string to_json_line(const exchange_record& r) {
  const auto escapes = text_escapes(r.request_body);
  const bool text = escapes.has_value();
  std::string out;
  out.reserve(256 + 64 * (r.request_headers.size() + r.response_headers.size()) +
              (text ? r.request_body.size() + *escapes : (r.request_body.size() + 2) / 3 * 4));
  json_writer w(out);
  const auto headers = [&w, &out](const std::vector<std::pair<std::string, std::string>>& list) {
    w.open('[');
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (i > 0) {
        out += ',';
      }
      w.open('{');
      w.key("name").string(list[i].first);
      w.key("value").string(list[i].second);
      w.close('}');
    }
    w.close(']');
  };
  w.open('{');
  w.key("flow").number(r.flow);
  w.key("request").open('{');
  if (!r.request_body.empty()) {
    w.key("body");
    append_body_json(out, r.request_body, escapes, r.request_body.size() < r.request_body_size);
  }
  w.key("bodySize").number(r.request_body_size);
  w.key("headers");
  headers(r.request_headers);
  w.key("httpVersion").string(r.http_version);
  w.close('}');
  w.key("response");
  if (r.status == 0) {
    w.null();
  } else {
    w.open('{');
    w.key("bodySize").number(r.response_body_size);
    w.key("headers");
    headers(r.response_headers);
    w.key("status").number(r.status);
    w.key("statusText").string(r.reason);
    w.close('}');
  }
  w.close('}');
  out += '\n';
  return out;
}

std::string to_json_line(const mark_record& r) {
  json j = {{"id", r.id},
            {"kind", r.kind},
            {"text", r.text.empty() ? json(nullptr) : json(r.text)},
            {"ts", iso8601(r.ts)},
            {"t_session_ms", r.t_session_ms},
            {"source", r.source}};
  return line(j);
}

}  // namespace leakscope::captures
