#include "detectors/engine.hpp"

#include "detectors/byte_classes.hpp"
#include "detectors/decode.hpp"
#include "detectors/json_parser.hpp"
#include "detectors/patterns.hpp"
#include "detectors/structure.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <strings.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace leakscope::detectors {

std::string mask(const std::string& value) {
  if (value.size() <= 4) {
    return std::string(value.size(), '*');
  }
  const std::size_t keep = value.size() >= 12 ? 4 : 2;
  return value.substr(0, keep) + std::string(value.size() - 2 * keep, '*') + value.substr(value.size() - keep);
}

namespace {

constexpr int max_nesting = 3;               // values inside values, as the design asks
constexpr std::size_t max_nested_scans = 512;  // per request: bounds work on hostile bodies
constexpr double metres_per_degree = 111'320.0;

using chain_t = std::vector<std::string>;

chain_t plus(chain_t chain, std::initializer_list<std::string> more) {
  chain.insert(chain.end(), more.begin(), more.end());
  return chain;
}

std::string header_value(const http_request& r, const char* name) {
  for (const auto& h : r.headers) {
    if (::strcasecmp(h.name.c_str(), name) == 0) {
      return h.value;
    }
  }
  return {};
}

bool plain_key(std::string_view k) {
  // ASCII only, and without the locale lookup of std::isalnum: called for every step of a place.
  return !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// A place with every list index written as [*]: "body.json:$.events[12].imei" becomes
// "body.json:$.events[*].imei". Appended to `out`.
void append_without_list_indices(std::string& out, std::string_view where) {
  std::size_t i = 0;
  while (i < where.size()) {
    if (where[i] == '[') {
      std::size_t j = i + 1;
      while (j < where.size() && where[j] >= '0' && where[j] <= '9') {
        ++j;
      }
      if (j > i + 1 && j < where.size() && where[j] == ']') {
        out += "[*]";
        i = j + 1;
        continue;
      }
    }
    out += where[i++];
  }
}

// The first ',', ';' or '|': where a list in one string is cut. A loop, because
// find_first_of calls memchr on the three separators for every byte.
std::size_t list_separator(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == ',' || c == ';' || c == '|') {
      return i;
    }
  }
  return std::string_view::npos;
}

// A JSON member's or array item's step, as JSONPath writes it.
void append_json_step(std::string& path, std::string_view key, std::size_t index, bool in_array) {
  if (in_array) {
    path += '[';
    path += std::to_string(index);
    path += ']';
  } else if (plain_key(key)) {
    path += '.';
    path += key;
  } else {
    path += "[\"";
    path += key;
    path += "\"]";
  }
}

// Appends a child's step to its parent's path, in that format's own notation.
void append_step(std::string& path, body_format f, const node& child, std::size_t index, bool in_array) {
  switch (f) {
    case body_format::json:
      append_json_step(path, child.key, index, in_array);
      return;
    case body_format::xml:
      path += '/';
      path += child.key;
      return;
    default:
      if (!path.empty()) {
        path += '.';
      }
      path += child.key;
      return;
  }
}

// Whether a scalar's text is spelled as it is in the source it was parsed from, so that a
// known form in the text is also an occurrence inside the node's source range. JSON escapes
// and percent-encoding always change the length.
bool verbatim_json(node::type kind, std::size_t begin, std::size_t end, std::size_t text_size) {
  return kind != node::type::string || end - begin == text_size + 2;
}

bool verbatim(const node& n, body_format f) {
  if (n.end == 0) {
    return false;
  }
  switch (f) {
    case body_format::json:
      return verbatim_json(n.kind, n.begin, n.end, n.text.size());
    case body_format::form:
      return n.end - n.begin == n.key.size() + 1 + n.text.size();
    default:
      return false;
  }
}

std::string root_path(body_format f) {
  return f == body_format::json ? "$" : "";
}

// Base64 worth decoding: long enough, the right alphabet, and not plain hex or digits (which
// are valid base64 characters but are identifiers in their own right).
bool looks_base64(std::string_view v) {
  if (v.size() < 16 || v.size() % 4 == 1) {
    return false;
  }
  bool upper = false, lower = false;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c >= 'A' && c <= 'Z') {
      upper = true;
    } else if (c >= 'a' && c <= 'z') {
      lower = true;
    } else if (c == '+' || c == '/' || c == '-' || c == '_') {
      continue;
    } else if (c == '=') {
      if (i + 2 < v.size()) {
        return false;
      }
    } else if (!(c >= '0' && c <= '9')) {
      return false;
    }
  }
  // Both cases: base64 of 12 or more bytes all but always has them; paths and words do not.
  return upper && lower;
}

bool has_percent_escape(std::string_view v) {
  for (auto i = v.find('%'); i != std::string_view::npos && i + 2 < v.size(); i = v.find('%', i + 1)) {
    if (std::isxdigit(static_cast<unsigned char>(v[i + 1])) && std::isxdigit(static_cast<unsigned char>(v[i + 2]))) {
      return true;
    }
  }
  return false;
}

// Encrypted or compressed-and-unknown bytes: Shannon entropy near 8 bits per byte over a body
// long enough for the estimate to mean something.
bool looks_encrypted(std::string_view data) {
  if (data.size() < 256) {
    return false;
  }
  std::size_t counts[256] = {};
  for (const char c : data) {
    ++counts[static_cast<unsigned char>(c)];
  }
  double entropy = 0;
  const double n = static_cast<double>(data.size());
  for (const std::size_t c : counts) {
    if (c > 0) {
      const double p = static_cast<double>(c) / n;
      entropy -= p * std::log2(p);
    }
  }
  // Random bytes reach ~7.9 bits for a few KiB; base64 text stays at 6, JSON and text below 5.
  return entropy > (data.size() < 4096 ? 7.0 : 7.5);
}

// Indices into a vector, found by a hash and an equality on what they index: open addressing
// in one array, since a node-based set allocates once per entry and a batch with an
// identifier per event makes thousands of findings.
class index_table {
 public:
  explicit index_table(std::size_t capacity) : mask_(std::bit_ceil(2 * capacity + 2) - 1), slots_(mask_ + 1) {}

  // The index stored under `hash` that `same(index)` accepts; else stores `index` and
  // returns it.
  template <class Same>
  std::size_t find_or_add(std::size_t hash, std::size_t index, Same&& same) {
    for (std::size_t i = hash & mask_;; i = (i + 1) & mask_) {
      auto& slot = slots_[i];
      if (slot.index == 0) {
        slot = {hash, index + 1};
        return index;
      }
      if (slot.hash == hash && same(slot.index - 1)) {
        return slot.index - 1;
      }
    }
  }

 private:
  struct slot {
    std::size_t hash = 0;
    std::size_t index = 0;  // plus one; 0 is an empty slot
  };
  std::size_t mask_;
  std::vector<slot> slots_;
};

struct location_candidate {
  std::string text;
  std::string where;
  chain_t encoding;
};

}  // namespace

// One inspection: the request-wide state the detectors share while walking it.
struct engine::scan {
  const engine& e;
  inspect_result out;
  std::size_t nested_scans = 0;
  std::size_t tallied = 0;  // findings the JSON walks counted at an earlier place instead of adding
  std::map<std::size_t, std::pair<std::string, chain_t>> contacts;  // profile contact -> first place
  std::map<std::size_t, std::string> sms_tags, sms_codes;           // profile SMS -> place
  std::map<std::size_t, std::pair<std::string, chain_t>> apps;      // profile package -> first place
  std::vector<location_candidate> numbers;

  // Whole degrees of the profile's fix (one either side, for a fix near a degree line): a
  // number can only be near the fix if it starts with one of these, as degrees or x1e5/x1e6.
  // Each is kept as the first bytes of a token that starts with it, and a mask of as many
  // bytes, so that a token's first four bytes are compared with all of them at once.
  // Unused entries match nothing (no masked value equals all ones under an empty mask), so
  // all eight are compared in two vector steps, without a loop.
  static constexpr int max_leads = 8;
  alignas(16) std::uint32_t lead_bytes[max_leads] = {~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u};
  alignas(16) std::uint32_t lead_masks[max_leads] = {};
  std::size_t lead_lengths[max_leads] = {};
  int n_leads = 0;

  explicit scan(const engine& engine) : e(engine) {
    if (const auto& fix = e.known_.location()) {
      for (const double d : {std::abs(fix->lat), std::abs(fix->lng)}) {
        for (const long delta : {-1L, 0L, 1L}) {
          const long whole = static_cast<long>(d) + delta;
          if (whole > 0) {
            const std::string lead = std::to_string(whole);  // 1 to 3 digits: degrees are at most 181
            const unsigned char ones[4] = {0xff, 0xff, 0xff, 0xff};
            lead_bytes[n_leads] = 0;
            std::memcpy(&lead_bytes[n_leads], lead.data(), lead.size());
            std::memcpy(&lead_masks[n_leads], ones, lead.size());
            lead_lengths[n_leads] = lead.size();
            ++n_leads;
          }
        }
      }
    }
  }

  bool near_fix(std::string_view token) const {
    if (!token.empty() && token.front() == '-') {
      token.remove_prefix(1);
    }
    if (token.size() < 4) {
      return false;
    }
    std::uint32_t first;
    std::memcpy(&first, token.data(), sizeof first);  // in the byte order the leads were stored in
#if defined(__SSE2__)
    const __m128i x = _mm_set1_epi32(static_cast<int>(first));
    const auto at = [](const std::uint32_t* p) { return _mm_load_si128(reinterpret_cast<const __m128i*>(p)); };
    const __m128i low = _mm_cmpeq_epi32(_mm_and_si128(x, at(lead_masks)), at(lead_bytes));
    const __m128i high = _mm_cmpeq_epi32(_mm_and_si128(x, at(lead_masks + 4)), at(lead_bytes + 4));
    // Four bits per lead, lead k at bit 4k.
    const auto matched = static_cast<std::uint32_t>(_mm_movemask_epi8(low)) |
                         static_cast<std::uint32_t>(_mm_movemask_epi8(high)) << 16;
#else
    std::uint32_t matched = 0;
    for (int k = 0; k < max_leads; ++k) {
      matched |= (first & lead_masks[k]) == lead_bytes[k] ? 0xfu << (4 * k) : 0;
    }
#endif
    return matched != 0 && lead_fits(token, matched);
  }

  // Whether a token that starts with a lead (`matched`, four bits per lead) is shaped as
  // readings() could take it: the lead's whole degrees and a '.', or an integer of degrees
  // x1e5 or x1e6, five or six digits longer than the lead. Numbers that only start alike (a
  // duration of 3912 ms, a price of 395.00) are near the fix in no reading, and without this
  // each of them went through the detectors.
  [[gnu::noinline]] bool lead_fits(std::string_view token, std::uint32_t matched) const {
    std::size_t run = 0;
    while (run < token.size() && token[run] >= '0' && token[run] <= '9') {
      ++run;
    }
    const bool dot_after = run < token.size() && token[run] == '.';
    for (int k = 0; k < max_leads; ++k) {
      const std::size_t n = lead_lengths[k];
      if ((matched >> (4 * k) & 0xfu) != 0 && ((run == n && dot_after) || run == n + 5 || run == n + 6)) {
        return true;
      }
    }
    return false;
  }

  // "code", "Code", "OTP" or "otp" somewhere in a value.
  static bool has_code_word(std::string_view v) {
    for (std::size_t i = 1; i + 1 < v.size(); ++i) {
      const char c = v[i];
      const char before = v[i - 1];
      const char after = v[i + 1];
      if ((c == 'd' && before == 'o' && after == 'e') || (c == 'T' && before == 'O' && after == 'P') ||
          (c == 't' && before == 'o' && after == 'p')) {
        return true;
      }
    }
    return false;
  }

  // Whether any detector could use a value, judged from its key and shape before any work is
  // done on it. Every rule mirrors a detector's trigger; the corpus test guards against a rule
  // that is too narrow.
  bool could_match(std::string_view key, std::string_view v) const {
    return could_match_given(interesting_key_cached(key), v);
  }

  // could_match() for a key already judged.
  bool could_match_given(bool interesting_key, std::string_view v) const {
    if (v.size() < 4) {
      return false;
    }
    if (interesting_key) {
      return true;  // key-context detectors decide
    }
    // One branch-free pass gathers what the rules need; the digit runs are walked only when
    // there are enough digits for an identifier (most values have far fewer).
    const auto [seen, digit_count] = summarize_bytes(v);
    if ((seen & char_class::trigger) != 0) {
      return true;
    }
    // Most values fail every rule below on these flags alone: they are decided here, and the
    // rules' own passes stay out of line.
    if (near_fix(v)) {
      return true;
    }
    constexpr unsigned both_cases = char_class::upper | char_class::lower;
    if (digit_count < 11 && (seen & char_class::code_word) != char_class::code_word &&
        ((seen & both_cases) != both_cases || v.size() < 16)) {
      return false;
    }
    return could_match_rules(v, seen, digit_count);
  }

  // The rules of could_match_given() that look at a value again, with its byte classes `seen`.
  [[gnu::noinline]] bool could_match_rules(std::string_view v, unsigned seen, std::size_t digit_count) const {
    if (digit_count >= 11 && has_identifier_run(v)) {
      return true;
    }
    if ((seen & char_class::code_word) == char_class::code_word && has_code_word(v)) {
      return true;  // verification-code phrasing: "code", "Code", "OTP", "otp"
    }
    // looks_base64() wants both cases: a long value in one case (padding, hex, a word) is
    // rejected here without its second pass.
    constexpr unsigned both_cases = char_class::upper | char_class::lower;
    return (seen & both_cases) == both_cases && looks_base64(v);
  }

  // Whether a run of digits, counted across ' ' and '-' separators, has an identifier's length.
  static bool has_identifier_run(std::string_view v) {
    std::size_t digits = 0;
    std::size_t run_start = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const char c = v[i];
      if (c >= '0' && c <= '9') {
        if (digits == 0) {
          run_start = i;
        }
        ++digits;
      } else if (!((c == ' ' || c == '-') && digits > 0)) {
        if (digits > 0 && identifier_length(v.substr(run_start), digits)) {
          return true;
        }
        digits = 0;
      }
    }
    return digits > 0 && identifier_length(v.substr(run_start), digits);
  }

  // Digit runs that can be an identifier: 11 (mobile), 13 starting 86 (mobile with country
  // code), 14 and more (IMEI, IMSI, ICCID, ID card, bank card, 0086 mobile).
  static bool identifier_length(std::string_view run, std::size_t digits) {
    return digits == 11 || digits >= 14 || (digits == 13 && run.substr(0, 2) == "86") || (digits == 17);
  }

  // Keys repeat thousands of times in a batch of events: each is judged once per request. The
  // map owns its keys: the trees they come from do not outlive their buffer.
  struct key_verdict {
    bool interesting;  // some scalar detector uses it as context
  };
  // FNV-1a: keys are a few bytes long, where it beats the general-purpose hash.
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const {
      std::uint64_t h = 0xcbf29ce484222325ull;
      for (const char c : s) {
        h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
      }
      return static_cast<std::size_t>(h);
    }
  };
  mutable std::unordered_map<std::string, key_verdict, string_hash, std::equal_to<>> key_verdicts;
  const key_verdict& judge_key(std::string_view k) const {
    const auto it = key_verdicts.find(k);
    if (it != key_verdicts.end()) {
      return it->second;
    }
    const key_verdict v{interesting_key(k)};
    return key_verdicts.emplace(std::string(k), v).first->second;
  }
  bool interesting_key_cached(std::string_view k) const { return judge_key(k).interesting; }

  // Calls `fn` with every number in `text` that location() could read as a coordinate.
  template <class Fn>
  void fix_readings_in(std::string_view text, Fn&& fn) const {
    if (n_leads == 0 || text.size() > 4096) {
      return;
    }
    std::size_t i = 0;
    while (i < text.size()) {
      while (i < text.size() && !(std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '-')) {
        ++i;
      }
      std::size_t j = i;
      while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '.' || text[j] == '-')) {
        ++j;
      }
      const auto token = text.substr(i, j - i);
      if (j > i && near_fix(token) && !readings(token).empty()) {
        fn(token);
      }
      i = j == i ? i + 1 : j;
    }
  }

  static bool interesting_key(std::string_view k) {
    static constexpr std::string_view words[] = {
        "imei", "meid", "imsi", "iccid", "sim", "serial", "android", "oaid", "gaid", "idfa", "adid", "advert", "aaid",
        "mac", "wifi", "bssid", "ssid", "wlan", "phone", "mobile", "msisdn", "tel", "mail", "idcard", "idno", "idnum",
        "identity", "sfz", "cert", "citizen", "bank", "card", "acct", "account", "pan", "lat", "lng", "lon", "loc",
        "gps", "coord", "position", "mcc", "mnc", "lac", "cid", "cell", "sms", "message", "msg", "inbox", "contact",
        "address", "book", "friend", "app", "package", "pkg", "install", "code", "otp", "text", "body", "content"};
    if (k == "sn" || k == "aid" || k == "ci" || k == "la" || k == "lo" || k == "tac" || k == "sid" || k == "nid" ||
        k == "bid" || k == "pci" || k == "pn" || k == "p" || k == "n" || k == "name") {
      return true;
    }
    for (const auto w : words) {
      if (k.find(w) != std::string_view::npos) {
        return true;
      }
    }
    return false;
  }

  void add(std::string category, const char* source, std::string confidence, std::string where, chain_t encoding,
           std::string value) {
    out.findings.push_back({std::move(category), source, std::move(confidence), std::move(where), std::move(encoding),
                            std::move(value)});
  }

  // Known values found in `hits` at `where`.
  void known(const known_hits& hits, const std::string& where, const chain_t& chain) {
    for (const auto* f : hits.forms) {
      const auto& value = e.known_.value(f->value);
      chain_t full;
      full.reserve(chain.size() + f->encoding.size());
      full.insert(full.end(), chain.begin(), chain.end());
      full.insert(full.end(), f->encoding.begin(), f->encoding.end());
      if (f->kind == kind_contact) {
        contacts.emplace(f->value, std::make_pair(where, std::move(full)));
      } else if (f->kind == kind_sms_tag) {
        sms_tags.emplace(e.known_.sms_of(f->value), where);
      } else if (f->kind == kind_sms_code) {
        sms_codes.emplace(e.known_.sms_of(f->value), where);
      } else if (f->kind == "installed_apps") {
        apps.emplace(f->value, std::make_pair(where, std::move(full)));
      } else {
        add(f->kind, "known", "high", where, std::move(full), value);
      }
    }
  }

  void numbers_in(std::string_view text, const std::string& where, const chain_t& chain) {
    fix_readings_in(text, [&](std::string_view token) { numbers.push_back({std::string(token), where, chain}); });
  }

  // A scalar: known values (when the enclosing buffer had any), patterns, values inside it.
  // `key` is normalised (normalize_key).
  void leaf(const std::string& key, std::string_view value, const std::string& where, const chain_t& chain, int depth,
            bool known_here) {
    if (value.empty()) {
      return;
    }
    const std::size_t before = out.findings.size();
    if (known_here) {
      known(e.known_.match(value), where, chain);
    }
    std::vector<pattern_hit> hits;
    scan_scalar(key, value, hits);
    for (auto& h : hits) {
      // finish() would drop it as covered by a known finding at this place (an identifier per
      // event makes thousands of these); not adding it keeps that pass short.
      const bool covered = std::any_of(out.findings.begin() + static_cast<std::ptrdiff_t>(before), out.findings.end(),
                                       [&h](const finding& k) { return k.category == h.category || k.value == h.value; });
      if (!covered) {
        add(std::move(h.category), "pattern", std::move(h.confidence), where, chain, std::move(h.value));
      }
    }
    numbers_in(value, where, chain);
    nested(key, value, where, chain, depth);
  }

  // Values inside values: URL-encoded text, base64 (maybe of gzip), JSON in a string.
  void nested(const std::string& key, std::string_view value, const std::string& where, const chain_t& chain, int depth) {
    if (depth >= max_nesting || nested_scans >= max_nested_scans) {
      return;
    }
    // URL-encoding makes text: a binary value (a file part, a blob) with a stray "%3F" in it
    // is not decoded and scanned again as one.
    if (has_percent_escape(value) && looks_textual(value)) {
      ++nested_scans;
      buffer(percent_decode(value, true), where, plus(chain, {"url"}), depth + 1, key, "");
    } else if (looks_base64(value)) {
      auto bytes = base64_decode(value);
      if (bytes && !bytes->empty()) {
        ++nested_scans;
        chain_t c = plus(chain, {"base64"});
        if (looks_compressed(*bytes)) {
          auto inflated = inflate_capped(*bytes, e.limits_.max_decoded_body);
          if (inflated.limit_hit) {
            out.incomplete.push_back("decompression_limit");
          }
          if (inflated.ok) {
            c.push_back(static_cast<unsigned char>((*bytes)[0]) == 0x1f ? "gzip" : "deflate");
            bytes = std::move(inflated.data);
          }
        }
        if (looks_textual(*bytes)) {
          buffer(*bytes, where, c, depth + 1, key, "");
        } else {
          // Binary: only the profile's literal forms can be told apart from noise here.
          known(e.known_.match(*bytes), where, c);
        }
      }
    } else if (value.size() >= 2 && (value.front() == '{' || value.front() == '[')) {
      ++nested_scans;
      buffer(value, where, chain, depth + 1, key, "application/json");
    }
  }

  // Whether a scalar of a buffer whose known-value hits are `hits` can hold one of them: an
  // occurrence overlaps its source range, or its text was decoded from what the buffer spells
  // (escapes can hide a form from the buffer-wide match). Everything else is left to the
  // pattern detectors, which is most of an event batch that carries an identifier per event.
  //
  // The walk asks in source order, so `hits.next` follows it instead of a search per scalar.
  struct located_hits {
    const known_hits& hits;
    std::size_t next = 0;  // the first occurrence that can overlap the last node asked about
    std::size_t from = 0;  // that node's begin, less the longest form
  };
  bool known_in(const node& n, body_format f, located_hits& at) const {
    return known_in(n.begin, n.end, verbatim(n, f), at);
  }
  // For a scalar spelled at [begin, end) of the buffer, `verbatim` as verbatim() says.
  bool known_in(std::size_t begin, std::size_t end, bool verbatim, located_hits& at) const {
    const auto& spans = at.hits.spans;
    if (at.hits.forms.empty()) {
      return false;
    }
    if (!verbatim) {
      return true;
    }
    // Occurrences are ordered by begin and none is longer than the longest form.
    const std::size_t from = begin > e.known_.longest_form() ? begin - e.known_.longest_form() : 0;
    if (from < at.from) {  // not in source order after all: search again
      at.next = static_cast<std::size_t>(
          std::lower_bound(spans.begin(), spans.end(), std::make_pair(from, std::size_t{0})) - spans.begin());
    }
    at.from = from;
    while (at.next < spans.size() && spans[at.next].first < from) {
      ++at.next;
    }
    for (std::size_t i = at.next; i < spans.size() && spans[i].first < end; ++i) {
      if (spans[i].second > begin) {
        return true;
      }
    }
    return false;
  }

  // `path` is the node's place inside the buffer; children extend it and restore it.
  void walk(const node& n, body_format f, const std::string& prefix, std::string& path, const chain_t& chain, int depth,
            located_hits& hits) {
    switch (n.kind) {
      case node::type::string:
      case node::type::number: {
        const bool known_here = known_in(n, f, hits);
        if (!known_here && !could_match(n.norm, n.text)) {
          return;  // no detector can fire on this value: skip building its place
        }
        const std::string where = prefix + path;
        leaf(n.norm, n.text, where, chain, depth, known_here);
        if (n.kind == node::type::string && n.text.size() < 65536 &&
            list_separator(n.text) != std::string_view::npos) {
          list_in_string(n.norm, n.text, where, chain);
        }
        return;
      }
      case node::type::object: {
        // protobuf encodes map<string, …> entries as messages {1: key, 2: value}: read them as
        // the key-value pair they are, so key context works without a schema.
        if (f == body_format::protobuf && n.children.size() == 2 && n.children[0].key == "1" &&
            n.children[1].key == "2" && n.children[0].kind == node::type::string &&
            (n.children[1].kind == node::type::string || n.children[1].kind == node::type::number) &&
            n.children[0].text.size() <= 64 && looks_textual(n.children[0].text)) {
          leaf(normalize_key(n.children[0].text), n.children[1].text, prefix + path + "[" + n.children[0].text + "]",
               chain, depth, known_in(n.children[1], f, hits));
          return;
        }
        std::vector<pattern_hit> found;
        scan_object(n, found);
        // Repeated members (XML siblings, protobuf repeated fields, multipart parts) are lists
        // too; JSON keys are unique, so JSON objects skip the grouping.
        if (f != body_format::json && n.children.size() >= 2) {
          std::unordered_map<std::string_view, std::size_t, string_hash> group_of;  // key -> index
          std::vector<std::vector<const node*>> groups;                            // first seen first
          for (const auto& c : n.children) {
            const auto [it, added] = group_of.emplace(c.key, groups.size());
            if (added) {
              groups.emplace_back();
            }
            groups[it->second].push_back(&c);
          }
          for (const auto& items : groups) {
            if (items.size() >= 2) {
              scan_list(items.front()->norm, items, found);
            }
          }
        }
        report(found, prefix, path, chain);
        walk_children(n, f, prefix, path, chain, depth, hits, false);
        return;
      }
      case node::type::array: {
        std::vector<const node*> items;
        items.reserve(n.children.size());
        for (const auto& c : n.children) {
          items.push_back(&c);
        }
        std::vector<pattern_hit> found;
        scan_list(n.norm, items, found);
        report(found, prefix, path, chain);
        walk_children(n, f, prefix, path, chain, depth, hits, true);
        return;
      }
      case node::type::other:
        return;
    }
  }

  void walk_children(const node& n, body_format f, const std::string& prefix, std::string& path, const chain_t& chain,
                     int depth, located_hits& hits, bool in_array) {
    const std::size_t mark = path.size();
    for (std::size_t i = 0; i < n.children.size(); ++i) {
      append_step(path, f, n.children[i], i, in_array);
      walk(n.children[i], f, prefix, path, chain, depth, hits);
      path.resize(mark);
    }
  }

  // walk() for a JSON text, without its tree: the same findings in the same order, for texts
  // whose findings all lie in single scalars (with what is inside them: URL-encoded, base64,
  // JSON in a string, a list in a string). It hands over to the tree walk (stops) at anything
  // that needs the tree: a key an object or list detector pairs with others, a package name
  // or BSSID where a list could count it, a key repeated within one object. Most SDK event
  // batches need none of these, even those with identifiers in every event, and building and
  // walking the tree costs several times this pass. Invalid JSON also goes to the tree path.
  struct json_walk {
    struct outcome {
      std::uint32_t serial = 0;  // which value this slot last held, for `tallies`
      std::uint64_t print = 0;  // fingerprint(value)
      std::string value;
      node::type kind = node::type::other;
      bool known = false;               // the known-value match was part of it
      std::vector<finding> findings;    // `where` left empty
    };
    struct member_key {
      const std::string* raw = nullptr;  // the map's key (node-based: it never moves)
      std::string norm;
      key_verdict verdict{};
      unsigned uses = 0;                 // member_uses(norm)
      const member_key* next = nullptr;  // the key that followed this one last time
      std::uint32_t in_object = no_object;  // the serial of the object it was last read in
      bool repeated = false;                 // read in more than one object
      // What leaf() made of the last few values under this key: event batches repeat event
      // names and identifiers under the same key, and leaf() is pure apart from the findings.
      // Grown on demand: a hostile text can hold 200,000 keys that never keep anything.
      std::vector<outcome> outcomes;
      std::uint8_t next_outcome = 0;  // the slot to reuse once all are filled
    };
    struct frame {
      bool object;
      bool item;              // the container is an array's item, where scan_list() looks
      std::size_t items = 0;  // arrays: children begun so far
      member_key* key = nullptr;  // objects: the member being read
      std::uint32_t serial = 0;   // objects: in the order they were opened
      std::size_t mark = 0;       // findings before it: where the tree walk reports its own
      std::size_t kept_from = 0;  // its children in `kept` begin here
      unsigned uses = 0;          // objects: the member_uses() of its members, or-ed
      std::size_t tallied = 0;    // scan::tallied when it began
    };
    static constexpr std::uint32_t no_object = UINT32_MAX;
    scan& s;
    const std::string& prefix;
    const chain_t& chain;
    const int depth;
    located_hits& hits;
    std::unordered_map<std::string, member_key, string_hash, std::equal_to<>> keys;  // by raw name
    std::vector<frame> frames;
    member_key* current = nullptr;
    const bool unnamed_interesting;  // the verdict for array items, which have no key
    const bool any_known;            // the buffer holds a known form somewhere
    std::string path;                // place()'s
    // A child of an open container that scan_object() or scan_list() could read: a member
    // they look up (`key` set), a package name or BSSID in a list, or an object a list could
    // count (`item`, built when it closed). Its text is a view into the walked text, copied
    // only where unescaping made it (the parser's copy lasts one call).
    struct kept_child {
      node::type kind = node::type::other;
      const member_key* key = nullptr;
      std::string_view view;
      std::string copy;
      bool copied = false;
      bool counted = false;  // `item` holds it
      node item;
      std::string_view text() const { return copied ? std::string_view(copy) : view; }
    };
    // The kept children of the open containers, a stack of ranges, one per frame, reused: most
    // objects keep a member or two ("name") and drop them when they close.
    std::vector<kept_child> kept;
    std::size_t kept_size = 0;
    std::string_view walked;
    std::uint32_t objects = 0;       // opened so far
    std::uint32_t outcomes_kept = 0;
    // A kept outcome met again at a place that differs from an earlier one only in list
    // indices adds to the counts of that place's findings instead of copying them: finish()
    // would fold the copies into those findings anyway (places are unique here, and a leaf's
    // findings never hide or are hidden by another leaf's), and a batch with identifiers in
    // every event makes thousands. Keyed by the outcome's serial and the path's keys.
    std::unordered_map<std::string, std::size_t> tallies;  // -> index of the first finding
    std::string tally_key;

    json_walk(scan& owner, std::string_view walked, const std::string& prefix, const chain_t& chain, int depth,
              located_hits& hits)
        : s(owner),
          prefix(prefix),
          chain(chain),
          depth(depth),
          hits(hits),
          unnamed_interesting(owner.interesting_key_cached("")),
          any_known(!hits.hits.forms.empty()),
          walked(walked) {}

    // Keys and repeated values are a few bytes long: a loop beats the call to memcmp.
    static bool same_text(std::string_view a, std::string_view b) {
      if (a.size() != b.size()) {
        return false;
      }
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i] != b[i]) {
          return false;
        }
      }
      return true;
    }
    // Length and first and last eight bytes: values under one key that differ mostly differ
    // there (timestamps, ids), so most misses cost one comparison instead of a byte loop.
    static std::uint64_t fingerprint(std::string_view v) {
      std::uint64_t first = 0;
      std::uint64_t last = 0;
      if (v.size() >= 8) {  // two fixed-size loads: a memcpy of a variable size is a call
        std::memcpy(&first, v.data(), 8);
        std::memcpy(&last, v.data() + v.size() - 8, 8);
      } else {
        for (const char c : v) {
          first = (first << 8) | static_cast<unsigned char>(c);
        }
        last = first;
      }
      return (first ^ (last * 0x9e3779b97f4a7c15ull)) + v.size();
    }
    static bool hand_over() { return false; }  // for the tree walk to do
    // Counts a new child of the innermost container; whether it is an array item.
    bool child() {
      if (frames.empty() || frames.back().object) {
        return false;
      }
      ++frames.back().items;
      return true;
    }
    kept_child& keep(node::type kind, const member_key* key, std::string_view text) {
      if (kept_size == kept.size()) {
        kept.emplace_back();
      }
      kept_child& c = kept[kept_size++];
      c.kind = kind;
      c.key = key;
      c.counted = false;
      c.copied = text.data() < walked.data() || text.data() + text.size() > walked.data() + walked.size();
      if (c.copied) {
        c.copy.assign(text);
      } else {
        c.view = text;
      }
      return c;
    }
    // A member of the innermost object, kept when the object detectors look it up. A
    // contact's, an app's or an access point's members only matter in an array's item.
    void note_member(const member_key& k, node::type kind, std::string_view text) {
      using namespace member_use;
      const unsigned uses = frames.back().item ? k.uses : k.uses & (paired | looked_up);
      if (uses != 0) {
        frames.back().uses |= uses;
        keep(kind, &k, text);
      }
    }
    // json_parser's handler.
    bool on_begin(node::type kind, std::size_t) {
      const bool object = kind == node::type::object;
      const bool item = child();
      if (!frames.empty() && frames.back().object) {
        note_member(*frames.back().key, kind, {});  // a contact's phones can be a list
      }
      frames.push_back({object, item, 0, nullptr, object ? objects++ : 0, s.out.findings.size(), kept_size, 0, s.tallied});
      return true;
    }
    // The object and list detectors on a closing container, on the children they could read:
    // what the tree walk finds there, reported where it reports it, ahead of the findings of
    // the container's children.
    bool on_end(std::size_t) {
      const frame f = frames.back();
      frames.pop_back();  // place() is now the container's
      using namespace member_use;
      const bool pairs = f.object && (f.uses & paired) != 0;
      // An object that scan_list() could count: a contact, an app, an access point.
      const bool counted = f.object && f.item && ((f.uses & name && f.uses & phone) || (f.uses & (package | bssid)) != 0);
      if (kept_size == f.kept_from || (f.object && !pairs && !counted)) {
        kept_size = f.kept_from;
        return true;
      }
      node n;
      n.kind = f.object ? node::type::object : node::type::array;
      n.children.reserve(kept_size - f.kept_from);
      for (std::size_t i = f.kept_from; i < kept_size; ++i) {
        auto& c = kept[i];
        if (c.counted) {
          n.children.push_back(std::move(c.item));
          continue;
        }
        auto& child = n.children.emplace_back();
        child.kind = c.kind;
        if (c.key != nullptr) {
          child.norm = c.key->norm;
        }
        child.text = c.text();
      }
      kept_size = f.kept_from;
      std::vector<pattern_hit> found;
      if (pairs) {
        scan_object(n, found);
      } else if (!f.object) {
        std::vector<const node*> items;
        items.reserve(n.children.size());
        for (const auto& c : n.children) {
          items.push_back(&c);
        }
        static const std::string no_key;
        scan_list(!frames.empty() && frames.back().object ? frames.back().key->norm : no_key, items, found);
      }
      if (!found.empty()) {
        // finish() drops a pattern finding a known one of its category inside the container
        // covers; one counted at an earlier place is not inside it.
        if (s.tallied != f.tallied) {
          return hand_over();
        }
        report_at(f.mark, found);
      }
      if (counted) {
        auto& c = keep(node::type::object, nullptr, {});
        c.counted = true;
        c.item = std::move(n);
      }
      return true;
    }
    // Pattern findings of the container just closed. They belong at `mark`, ahead of what its
    // children reported: they are added at the end, where the tallies' indices stay put, and
    // moved there once the text is walked (in_tree_order()).
    struct placement {
      std::size_t index;  // in the findings
      std::size_t mark;   // the findings before the container began
      std::size_t depth;  // of the container: an outer one's findings come first
    };
    std::vector<placement> placed;
    [[gnu::noinline]] void report_at(std::size_t mark, std::vector<pattern_hit>& found) {
      const std::string where = prefix + place();
      for (auto& h : found) {
        placed.push_back({s.out.findings.size(), mark, frames.size()});
        s.add(std::move(h.category), "pattern", std::move(h.confidence), where, chain, std::move(h.value));
      }
    }
    // The findings from `first` on in the tree walk's order: a container's own before its
    // children's, an outer container's before an inner one's that began at the same place.
    void in_tree_order(std::size_t first) {
      if (placed.empty()) {
        return;
      }
      auto& all = s.out.findings;
      struct order {
        std::size_t at;     // the finding's index, or its container's mark
        std::size_t after;  // 0 for a container's finding (then by depth), 1 for any other
        std::size_t depth;
        std::size_t index;
      };
      std::vector<order> keys;
      keys.reserve(all.size() - first);
      for (std::size_t i = first; i < all.size(); ++i) {
        keys.push_back({i, 1, 0, i});
      }
      for (const auto& p : placed) {
        keys[p.index - first] = {p.mark, 0, p.depth, p.index};
      }
      std::stable_sort(keys.begin(), keys.end(), [](const order& a, const order& b) {
        return std::tie(a.at, a.after, a.depth) < std::tie(b.at, b.after, b.depth);
      });
      std::vector<finding> sorted;
      sorted.reserve(keys.size());
      for (const auto& k : keys) {
        sorted.push_back(std::move(all[k.index]));
      }
      std::move(sorted.begin(), sorted.end(), all.begin() + static_cast<std::ptrdiff_t>(first));
    }
    // Event batches repeat one sequence of keys: the key that followed this one last time is
    // tried before the hash table.
    bool on_key(std::string_view raw) {
      member_key* found = nullptr;
      if (current != nullptr && current->next != nullptr && same_text(*current->next->raw, raw)) {
        found = const_cast<member_key*>(current->next);
      } else {
        auto it = keys.find(raw);
        if (it == keys.end()) {
          it = keys.try_emplace(std::string(raw)).first;
          member_key& m = it->second;
          m.raw = &it->first;
          m.norm = normalize_key(raw);
          m.verdict = s.judge_key(m.norm);
          m.uses = member_uses(m.norm);
        }
        found = &it->second;
        if (current != nullptr) {
          current->next = found;
        }
      }
      current = found;
      frames.back().key = found;
      if (found->in_object == frames.back().serial) {
        return hand_over();  // a repeated member: two values at one place, which tallies cannot tell apart
      }
      found->repeated = found->in_object != no_object;
      found->in_object = frames.back().serial;
      return true;
    }
    bool on_scalar(node::type kind, std::string_view text, std::size_t begin, std::size_t end) {
      const bool item = child();
      member_key* k = !frames.empty() && frames.back().object ? frames.back().key : nullptr;
      if (k != nullptr) {
        note_member(*k, kind, text);
      } else if (item && kind == node::type::string && list_item(text)) {
        keep(kind, nullptr, text);  // a package name or BSSID in a list
      }
      if (kind == node::type::other) {
        return true;  // true, false and null: nothing to find
      }
      const bool known_here =
          any_known && s.known_in(begin, end, verbatim_json(kind, begin, end, text.size()), hits);
      const std::uint64_t print = k != nullptr && !k->outcomes.empty() ? fingerprint(text) : 0;
      if (k != nullptr) {
        for (const auto& o : k->outcomes) {
          if (o.print == print && o.kind == kind && same_text(o.value, text) &&
              (o.known == known_here || (o.known && o.findings.empty()))) {
            if (!o.findings.empty()) {
              replay(o);
            }
            return true;
          }
        }
      }
      if (!known_here && !s.could_match_given(k != nullptr ? k->verdict.interesting : unnamed_interesting, text)) {
        return true;
      }
      inspect_leaf(k, kind, text, known_here);
      return true;
    }
    // leaf() on a value, and what it made of it kept under its key. Out of line: most values
    // never get here, and scalar()'s own path stays short.
    [[gnu::noinline]] void inspect_leaf(member_key* k, node::type kind, std::string_view text, bool known_here) {
      const std::size_t findings = s.out.findings.size();
      const auto effects = s.side_effects();
      static const std::string no_key;
      const std::string& key = k != nullptr ? k->norm : no_key;
      const std::string where = prefix + place();
      s.leaf(key, text, where, chain, depth, known_here);
      if (kind == node::type::string && text.size() < 65536 && list_separator(text) != std::string_view::npos) {
        s.list_in_string(key, text, where, chain);
      }
      // Only keys that repeat can meet a value again; a text of distinct keys keeps nothing. A
      // value that was scanned inside (URL-encoded, base64, JSON in a string) is not kept
      // either: its findings lie at places of their own, and each scan counts against
      // max_nested_scans.
      if (k == nullptr || !k->repeated || s.side_effects() != effects) {
        return;
      }
      constexpr std::size_t kept_per_key = 8;
      outcome* slot = nullptr;
      if (k->outcomes.size() < kept_per_key) {
        slot = &k->outcomes.emplace_back();
      } else {
        slot = &k->outcomes[k->next_outcome];
        k->next_outcome = static_cast<std::uint8_t>((k->next_outcome + 1) % kept_per_key);
      }
      auto& o = *slot;
      o.serial = outcomes_kept++;
      o.print = fingerprint(text);
      o.value.assign(text);
      o.kind = kind;
      o.known = known_here;
      o.findings.assign(s.out.findings.begin() + static_cast<std::ptrdiff_t>(findings), s.out.findings.end());
      for (auto& f : o.findings) {
        f.where.clear();
      }
      if (!o.findings.empty()) {
        tallies.emplace(tally(o), findings);
      }
    }
    // tallies' key for `o` at the value being read: the keys of the path, with arrays as null.
    const std::string& tally(const outcome& o) {
      tally_key.assign(reinterpret_cast<const char*>(&o.serial), sizeof o.serial);
      for (const auto& f : frames) {
        const member_key* step = f.object ? f.key : nullptr;
        tally_key.append(reinterpret_cast<const char*>(&step), sizeof step);
      }
      return tally_key;
    }
    // Adds a kept outcome's findings at the value being read.
    [[gnu::noinline]] void replay(const outcome& o) {
      if (const auto it = tallies.find(tally(o)); it != tallies.end()) {
        for (std::size_t i = 0; i < o.findings.size(); ++i) {
          ++s.out.findings[it->second + i].count;
        }
        s.tallied += o.findings.size();
        return;
      }
      tallies.emplace(tally_key, s.out.findings.size());
      const std::string where = prefix + place();
      for (const auto& f : o.findings) {
        s.out.findings.push_back(f);
        s.out.findings.back().where = where;
      }
    }
    // The JSONPath of the value being read.
    const std::string& place() {
      path.assign(root_path(body_format::json));
      for (const auto& f : frames) {
        append_json_step(path, f.object ? std::string_view(*f.key->raw) : std::string_view(), f.items - 1, !f.object);
      }
      return path;
    }
  };
  // What leaf() can change besides adding findings, as sizes: equal sizes before and after a
  // leaf() that handed nothing to nested() mean it changed nothing else (the maps only gain).
  std::array<std::size_t, 7> side_effects() const {
    return {contacts.size(), sms_tags.size(), sms_codes.size(), apps.size(), numbers.size(), out.incomplete.size(),
            nested_scans};
  }
  // Runs a walk without a tree; when it hands over (returns false), undoes everything it did,
  // values inside values included, so that the tree walk starts from the same state.
  template <class Walk>
  bool walked_or_undone(Walk&& walk) {
    const std::size_t findings = out.findings.size();
    const std::size_t readings = numbers.size();
    const std::size_t incomplete = out.incomplete.size();
    const std::size_t scans = nested_scans;
    auto before = std::make_tuple(contacts, sms_tags, sms_codes, apps);
    if (walk()) {
      return true;
    }
    out.findings.erase(out.findings.begin() + static_cast<std::ptrdiff_t>(findings), out.findings.end());
    numbers.erase(numbers.begin() + static_cast<std::ptrdiff_t>(readings), numbers.end());
    out.incomplete.resize(incomplete);
    nested_scans = scans;
    std::tie(contacts, sms_tags, sms_codes, apps) = std::move(before);
    return false;
  }

  bool walk_json(std::string_view data, const std::string& prefix, const chain_t& chain, int depth,
                 const known_hits& hits) {
    return walked_or_undone([&] {
      located_hits located{hits};
      const std::size_t first = out.findings.size();
      json_walk w(*this, data, prefix, chain, depth, located);
      if (!json_parser(data).document(w)) {
        return false;
      }
      w.in_tree_order(first);
      return true;
    });
  }

  // walk() for a form body, without its tree: the same findings in the same order. What the
  // tree's structure detectors read is kept as the pairs go by: the members scan_object()
  // looks up (lat, mcc, an SMS body), and, per key, the values scan_list() could count
  // (package names, BSSIDs) in the group of pairs that repeat it. Their findings go ahead of
  // the pairs' own, where the tree walk reports them. Building the tree cost more than the
  // detectors on most form bodies: three strings and a normalised key per pair, and every
  // repeated key grouped.
  bool walk_form(std::string_view data, const std::string& prefix, const chain_t& chain, int depth,
                 const known_hits& hits) {
    return walked_or_undone([&] {
      struct key_info {
        std::string norm;
        bool interesting;
        unsigned uses;
        std::size_t first_seen;
        std::vector<node> items;  // its values that are package names or BSSIDs
      };
      std::unordered_map<std::string, key_info, string_hash, std::equal_to<>> keys;  // by decoded name
      node members;  // what scan_object() looks up, in order
      members.kind = node::type::object;
      bool paired = false;
      located_hits located{hits};
      std::string key_scratch, value_scratch, where;
      const std::size_t first = out.findings.size();
      std::size_t at = 0;  // of `data` in the whole, as parse_form() counts
      std::size_t pairs = 0;
      while (!data.empty() && pairs < max_structure_nodes) {
        const auto amp = data.find('&');
        const auto pair = data.substr(0, amp);
        if (!pair.empty()) {
          ++pairs;
          const auto eq = pair.find('=');
          const auto k = percent_decoded(pair.substr(0, eq), true, key_scratch);
          const auto v = eq == std::string_view::npos ? std::string_view() : percent_decoded(pair.substr(eq + 1), true, value_scratch);
          auto it = keys.find(k);
          if (it == keys.end()) {
            std::string norm = normalize_key(k);
            const bool interesting = interesting_key_cached(norm);
            const unsigned uses = member_uses(norm) & (member_use::paired | member_use::looked_up);
            it = keys.emplace(std::string(k), key_info{std::move(norm), interesting, uses, keys.size(), {}}).first;
          }
          key_info& info = it->second;
          if (info.uses != 0) {
            paired = paired || (info.uses & member_use::paired) != 0;
            auto& m = members.children.emplace_back();
            m.kind = node::type::string;
            m.norm = info.norm;
            m.text.assign(v);
          }
          if (list_item(v)) {
            auto& item = info.items.emplace_back();
            item.kind = node::type::string;
            item.text.assign(v);
          }
          // The tree's node spans the pair; verbatim() as it judges a form member.
          const bool known_here = known_in(at, at + pair.size(), pair.size() == k.size() + 1 + v.size(), located);
          if (known_here || could_match_given(info.interesting, v)) {
            where.assign(prefix).append(k);
            leaf(info.norm, v, where, chain, depth, known_here);
            if (v.size() < 65536 && list_separator(v) != std::string_view::npos) {
              list_in_string(info.norm, v, where, chain);
            }
          }
        }
        data = amp == std::string_view::npos ? std::string_view() : data.substr(amp + 1);
        at += pair.size() + 1;
      }
      std::vector<pattern_hit> found;
      if (paired) {
        scan_object(members, found);
      }
      // Groups of a repeated key, in the order their keys first came (a group of fewer than
      // two list items holds no list finding).
      std::vector<const key_info*> lists;
      for (const auto& [name, info] : keys) {
        if (info.items.size() >= 2) {
          lists.push_back(&info);
        }
      }
      std::sort(lists.begin(), lists.end(), [](const key_info* a, const key_info* b) { return a->first_seen < b->first_seen; });
      for (const key_info* info : lists) {
        std::vector<const node*> items;
        for (const auto& item : info->items) {
          items.push_back(&item);
        }
        scan_list(info->norm, items, found);
      }
      if (!found.empty()) {
        const std::size_t end = out.findings.size();
        report(found, prefix, "", chain);
        std::rotate(out.findings.begin() + static_cast<std::ptrdiff_t>(first),
                    out.findings.begin() + static_cast<std::ptrdiff_t>(end), out.findings.end());
      }
      return true;
    });
  }

  // Pattern findings of a structure, placed at `prefix + path`.
  void report(std::vector<pattern_hit>& found, const std::string& prefix, const std::string& path, const chain_t& chain) {
    if (found.empty()) {
      return;
    }
    const std::string where = prefix + path;
    for (auto& h : found) {
      add(std::move(h.category), "pattern", std::move(h.confidence), where, chain, std::move(h.value));
    }
  }

  // How many parts of "a,b;c|d" list_item() counts, up to two.
  static int list_items_in(std::string_view rest) {
    int items = 0;
    while (!rest.empty() && items < 2) {
      const auto cut = list_separator(rest);
      auto part = rest.substr(0, cut);
      while (!part.empty() && part.front() == ' ') {
        part.remove_prefix(1);
      }
      while (!part.empty() && part.back() == ' ') {
        part.remove_suffix(1);
      }
      items += list_item(part) ? 1 : 0;
      rest = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + 1);
    }
    return items;
  }

  // "com.a.b,com.c.d,…" or "aa:bb:…;cc:dd:…" in one string: checked as a list.
  void list_in_string(std::string_view key, std::string_view text, const std::string& where, const chain_t& chain) {
    if (list_items_in(text) < 2) {
      return;  // "12,34" and most other comma-separated values: no list finding needs fewer
    }
    std::vector<node> parts;
    std::string_view rest = text;
    while (!rest.empty() && parts.size() < 10'000) {
      const auto cut = list_separator(rest);
      node p;
      p.kind = node::type::string;
      p.text = std::string(rest.substr(0, cut));
      p.text.erase(0, p.text.find_first_not_of(" "));
      p.text.erase(p.text.find_last_not_of(" ") + 1);
      parts.push_back(std::move(p));
      rest = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + 1);
    }
    std::vector<const node*> items;
    for (const auto& p : parts) {
      items.push_back(&p);
    }
    std::vector<pattern_hit> hits;
    scan_list(key, items, hits);
    for (auto& h : hits) {
      add(std::move(h.category), "pattern", std::move(h.confidence), where, chain, std::move(h.value));
    }
  }

  // A buffer of bytes: parsed by its format when it has one, else scanned as text.
  void buffer(std::string_view data, const std::string& where, const chain_t& chain, int depth, const std::string& key,
              std::string_view content_type) {
    const auto hits = e.known_.match(data, true);
    const body_format f = sniff_format(data, content_type);
    const std::size_t before = out.findings.size();
    const std::string prefix = where + (where.empty() ? "" : (depth == 0 && where == "body" ? "." : "/")) + format_name(f) + ":";
    const chain_t inner = plus(chain, {format_name(f)});
    if (e.limits_.walk_without_tree && ((f == body_format::json && walk_json(data, prefix, inner, depth, hits)) ||
                                        (f == body_format::form && walk_form(data, prefix, inner, depth, hits)))) {
      unplaced_known(hits, before, where, chain);
      return;
    }
    std::optional<node> root;
    if (f != body_format::text && (f != body_format::protobuf || depth == 0 || !content_type.empty())) {
      root = parse_body(data, f, content_type);
    }
    if (!root) {
      known(hits, where, chain);
      leaf_text(key, data, where, chain, depth);
      if (depth == 0 && looks_encrypted(data)) {
        out.incomplete.push_back("opaque_body");
      }
      return;
    }
    std::string path = root_path(f);
    located_hits located{hits};
    walk(*root, f, prefix, path, inner, depth, located);
    unplaced_known(hits, before, where, chain);
  }

  // Profile values the leaves since finding `before` did not account for (in keys, across
  // fields, in raw bytes) are still reported, at the level of the whole buffer.
  void unplaced_known(const known_hits& hits, std::size_t before, const std::string& where, const chain_t& chain) {
    if (hits.forms.empty()) {
      return;
    }
    // Views: a batch with an identifier per event has thousands of these findings.
    std::set<std::pair<std::string_view, std::string_view>> found;
    for (std::size_t i = before; i < out.findings.size(); ++i) {
      const auto& f = out.findings[i];
      if (f.source == std::string_view("known")) {
        found.insert({f.category, f.value});  // not emplace, which allocates a node before it looks
      }
    }
    known_hits rest;
    for (const auto* form : hits.forms) {
      const bool special = form->kind == kind_contact || form->kind == kind_sms_tag || form->kind == kind_sms_code ||
                           form->kind == "installed_apps";
      if (!special && !found.count({form->kind, e.known_.value(form->value)})) {
        rest.forms.push_back(form);
      }
    }
    known(rest, where, chain);
  }

  void leaf_text(const std::string& key, std::string_view text, const std::string& where, const chain_t& chain, int depth) {
    std::vector<pattern_hit> hits;
    scan_scalar(key, text, hits);
    for (auto& h : hits) {
      add(std::move(h.category), "pattern", std::move(h.confidence), where, chain, std::move(h.value));
    }
    numbers_in(text, where, chain);
    if (depth < max_nesting && text.size() < 65536) {
      nested(key, text, where, chain, depth);
    }
  }

  void request_level() {
    if (contacts.size() >= 2) {
      std::string names;
      for (const auto& [i, place] : contacts) {
        names += (names.empty() ? "" : ", ") + e.known_.value(i);
      }
      const auto& first = contacts.begin()->second;
      add("contacts", "known", "high", first.first, first.second, names);
    }
    for (const auto& [sms, where] : sms_tags) {
      if (sms_codes.count(sms)) {
        add("sms", "known", "high", where, {}, "sms #" + std::to_string(sms + 1) + " (sender tag and code)");
      }
    }
    if (apps.size() >= 2) {
      const auto& first = apps.begin()->second;
      add("installed_apps", "known", "high", first.first, first.second,
          std::to_string(apps.size()) + " profile packages, " + e.known_.value(apps.begin()->first));
    }
    location();
  }

  // How a number can read as a coordinate of the profile's fix: in degrees with at least two
  // decimals, or as an integer of degrees scaled by 1e5 or 1e6, within radius_m of the fix's
  // latitude or longitude.
  struct reading {
    double degrees;
    const char* scale;  // nullptr, "x1e5" or "x1e6"
    bool lat, lng;
  };
  std::vector<reading> readings(std::string_view text) const {
    std::vector<reading> out;
    const auto& fix = e.known_.location();
    if (!fix || text.size() > 40) {
      return out;
    }
    const std::string token(text);
    char* end = nullptr;
    const double value = std::strtod(token.c_str(), &end);
    if (end != token.c_str() + token.size() || !std::isfinite(value)) {
      return out;
    }
    const auto dot = token.find('.');
    const bool decimal = dot != std::string::npos;
    if (decimal && token.size() - dot - 1 < 2) {
      return out;
    }
    const double lat_tolerance = fix->radius_m / metres_per_degree;
    const double lng_tolerance = fix->radius_m / (metres_per_degree * std::max(0.01, std::cos(fix->lat * M_PI / 180)));
    const std::pair<double, const char*> scales[] = {{1.0, nullptr}, {1e5, "x1e5"}, {1e6, "x1e6"}};
    for (const auto& [scale, name] : scales) {
      if ((scale == 1.0) != decimal) {
        continue;  // decimals are degrees; integers are degrees scaled
      }
      const double d = value / scale;
      const bool lat = std::abs(d - fix->lat) <= lat_tolerance;
      const bool lng = std::abs(d - fix->lng) <= lng_tolerance;
      if (lat || lng) {
        out.push_back({d, name, lat, lng});
      }
    }
    return out;
  }

  // The profile's GPS fix, as a latitude and a longitude reading in one request, either order.
  void location() {
    const auto& fix = e.known_.location();
    if (!fix || numbers.empty()) {
      return;
    }
    struct pick {
      const location_candidate* c;
      double degrees;
      const char* scale;
    };
    std::vector<pick> lats, lngs;
    for (const auto& c : numbers) {
      for (const auto& r : readings(c.text)) {
        if (r.lat) {
          lats.push_back({&c, r.degrees, r.scale});
        }
        if (r.lng) {
          lngs.push_back({&c, r.degrees, r.scale});
        }
      }
    }
    for (const auto& a : lats) {
      for (const auto& b : lngs) {
        if (a.c == b.c) {
          continue;
        }
        const double dlat = (a.degrees - fix->lat) * metres_per_degree;
        const double dlng = (b.degrees - fix->lng) * metres_per_degree * std::cos(fix->lat * M_PI / 180);
        if (std::hypot(dlat, dlng) <= fix->radius_m) {
          chain_t encoding = a.c->encoding;
          if (a.scale != nullptr) {
            encoding.push_back(a.scale);
          }
          add("location", "known", "high", a.c->where, encoding, a.c->text + "," + b.c->text);
          return;
        }
      }
    }
  }

  // Known findings win over pattern findings of the same category in the same place; repeats go.
  void finish() {
    std::sort(out.incomplete.begin(), out.incomplete.end());
    out.incomplete.erase(std::unique(out.incomplete.begin(), out.incomplete.end()), out.incomplete.end());
    const std::size_t n = out.findings.size();
    if (n <= 1) {
      return;  // most requests: nothing to fold, and no tables to build
    }
    std::vector<bool> keep(n, true);
    drop_covered_patterns(keep);
    // Repeats of one category, place and value: the first stays.
    const std::hash<std::string_view> hash;
    index_table places(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (!keep[i]) {
        continue;
      }
      const auto& f = out.findings[i];
      const std::size_t h = hash(f.where) ^ (hash(f.value) * 31) ^ (hash(f.category) * 131);
      keep[i] = places.find_or_add(h, i, [&](std::size_t j) {
        const auto& g = out.findings[j];
        return f.where == g.where && f.value == g.value && f.category == g.category;
      }) == i;
    }
    // An event batch repeats one identifier in every event: one finding per value and form
    // with a count, not thousands of records that differ only in a list index.
    std::vector<finding> unique;
    std::vector<std::string> unique_shapes;
    index_table shapes(n);
    std::string shape;
    for (std::size_t i = 0; i < n; ++i) {
      if (!keep[i]) {
        continue;
      }
      auto& f = out.findings[i];
      shape.clear();
      for (const std::string_view part : {std::string_view(f.category), std::string_view(f.source),
                                          std::string_view(f.confidence), std::string_view(f.value)}) {
        shape += part;
        shape += '\0';
      }
      append_without_list_indices(shape, f.where);
      for (const auto& layer : f.encoding) {
        shape += '\0';
        shape += layer;
      }
      const std::size_t u = shapes.find_or_add(hash(shape), unique.size(),
                                               [&](std::size_t j) { return unique_shapes[j] == shape; });
      if (u < unique.size()) {
        unique[u].count += f.count;  // more than one where the walk tallied repeats
        continue;
      }
      unique_shapes.push_back(shape);
      unique.push_back(std::move(f));
    }
    out.findings = std::move(unique);
  }

  // A pattern finding is covered by a known one of its category at the same place or inside
  // it (a lat/lng object and its lat member), and by a known one of any category for the same
  // value: the profile knows a BSSID is a BSSID, whatever its shape suggests. Indexed, so a
  // body with thousands of findings stays linearithmic.
  // How a place goes one level in: a member or item ('.', '['), an XML child or a value
  // inside a value ('/').
  static bool is_step(char c) { return c == '.' || c == '[' || c == '/'; }
  void drop_covered_patterns(std::vector<bool>& keep) const {
    const auto is_known = [](const finding& f) { return f.source == std::string_view("known"); };
    if (std::all_of(out.findings.begin(), out.findings.end(), is_known)) {
      return;
    }
    const auto place_and_value = [](const finding& f) { return f.where + '\0' + f.value; };
    std::map<std::string, std::vector<std::string>> known_places;  // category -> sorted wheres
    std::unordered_set<std::string> known_values;                  // place_and_value()
    for (const auto& f : out.findings) {
      if (is_known(f)) {
        known_places[f.category].push_back(f.where);
        known_values.insert(place_and_value(f));
      }
    }
    for (auto& [category, wheres] : known_places) {
      std::sort(wheres.begin(), wheres.end());
    }
    for (std::size_t i = 0; i < out.findings.size(); ++i) {
      const auto& p = out.findings[i];
      if (is_known(p)) {
        continue;
      }
      if (known_values.count(place_and_value(p)) != 0) {
        keep[i] = false;
        continue;
      }
      const auto places = known_places.find(p.category);
      if (places == known_places.end()) {
        continue;
      }
      // Every where starting with p.where sorts at or right after it; one of them is inside
      // p's place when a step follows ("$.dev.id2" is not inside "$.dev.id").
      for (auto it = std::lower_bound(places->second.begin(), places->second.end(), p.where);
           it != places->second.end() && it->compare(0, p.where.size(), p.where) == 0; ++it) {
        if (it->size() == p.where.size() || is_step((*it)[p.where.size()])) {
          keep[i] = false;
          break;
        }
      }
    }
  }
};

engine::engine(const config::device_profile& profile, engine_limits limits) : known_(profile), limits_(limits) {}

inspect_result engine::inspect_bytes(std::string_view bytes, const std::string& where) const {
  scan s(*this);
  s.known(known_.match(bytes), where, {});
  s.request_level();
  s.finish();
  return std::move(s.out);
}

inspect_result engine::inspect(const http_request& request) const {
  scan s(*this);
  const auto& target = request.target;
  const auto q = target.find('?');
  const std::string_view path = std::string_view(target).substr(0, q);
  s.known(known_.match(path), "url.path", {});
  const std::string decoded_path = percent_decode(path, false);
  if (decoded_path != path) {
    s.known(known_.match(decoded_path), "url.path", {"url"});
  }
  // Path segments are values too ("/v1/device/865432101234564/report").
  std::size_t start = 0;
  while (start < decoded_path.size()) {
    const auto slash = decoded_path.find('/', start);
    const auto segment = std::string_view(decoded_path).substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (!segment.empty()) {
      std::vector<pattern_hit> hits;
      scan_scalar("", segment, hits);
      for (auto& h : hits) {
        s.add(std::move(h.category), "pattern", std::move(h.confidence), "url.path", {}, std::move(h.value));
      }
    }
    if (slash == std::string::npos) {
      break;
    }
    start = slash + 1;
  }
  if (q != std::string::npos) {
    node query = parse_form(std::string_view(target).substr(q + 1));
    normalize_keys(query);
    for (const auto& param : query.children) {
      const std::string where = "url.query:" + param.key;
      // parse_form has percent-decoded the value; when that changed it, the chain says so.
      const bool encoded = target.find(param.key + "=" + param.text, q) == std::string::npos;
      const chain_t chain = encoded ? chain_t{"url"} : chain_t{};
      s.leaf(normalize_key(param.key), param.text, where, chain, 0, true);
    }
    std::vector<pattern_hit> hits;
    scan_object(query, hits);
    for (auto& h : hits) {
      s.add(std::move(h.category), "pattern", std::move(h.confidence), "url.query", {}, std::move(h.value));
    }
  }
  for (const auto& h : request.headers) {
    if (::strcasecmp(h.name.c_str(), "cookie") == 0) {
      std::string_view rest = h.value;
      while (!rest.empty()) {
        const auto semi = rest.find(';');
        auto pair = rest.substr(0, semi);
        while (!pair.empty() && pair.front() == ' ') {
          pair.remove_prefix(1);
        }
        const auto eq = pair.find('=');
        const std::string name(pair.substr(0, eq));
        const auto value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
        s.leaf(normalize_key(name), value, "cookie:" + name, {}, 0, true);
        rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      }
      continue;
    }
    s.leaf(normalize_key(h.name), h.value, "header:" + h.name, {}, 0, true);
  }
  if (!request.body.empty() && !has_content_coding(request.body, header_value(request, "content-encoding"))) {
    s.buffer(request.body, "body", {}, 0, "", header_value(request, "content-type"));  // no copy of a plain body
  } else if (!request.body.empty()) {
    auto body = decode_content(request.body, header_value(request, "content-encoding"), limits_.max_decoded_body);
    s.out.incomplete.insert(s.out.incomplete.end(), body.incomplete.begin(), body.incomplete.end());
    s.buffer(body.data, "body", body.chain, 0, "", header_value(request, "content-type"));
    recycle(std::move(body.data));
  }
  if (request.body_truncated) {
    s.out.incomplete.push_back("body_truncated");
  }
  s.request_level();
  s.finish();
  return std::move(s.out);
}

}  // namespace leakscope::detectors
