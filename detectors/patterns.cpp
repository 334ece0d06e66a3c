#include "detectors/patterns.hpp"

#include "detectors/validators.hpp"

#include <re2/re2.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <unordered_set>

namespace leakscope::detectors {

namespace {

bool has_any(std::string_view key, std::initializer_list<std::string_view> words) {
  return std::any_of(words.begin(), words.end(), [&](std::string_view w) { return key.find(w) != std::string_view::npos; });
}

bool is_any(std::string_view key, std::initializer_list<std::string_view> words) {
  return std::any_of(words.begin(), words.end(), [&](std::string_view w) { return key == w; });
}

// Key vocabularies, after normalize_key().
bool key_imei(std::string_view k) { return has_any(k, {"imei"}); }
bool key_meid(std::string_view k) { return has_any(k, {"meid"}); }
bool key_imsi(std::string_view k) { return has_any(k, {"imsi", "subscriberid"}); }
bool key_iccid(std::string_view k) { return has_any(k, {"iccid", "simserial", "simid", "simsn"}); }
bool key_phone(std::string_view k) {
  return has_any(k, {"phone", "mobile", "msisdn", "tel", "cellnum", "linenumber"}) && !has_any(k, {"telecom", "hotel"});
}
bool key_email(std::string_view k) { return has_any(k, {"email", "mail"}); }
bool key_id_card(std::string_view k) {
  return has_any(k, {"idcard", "idno", "idnum", "identity", "sfz", "certno", "certnum", "citizenid", "sfzh"});
}
bool key_bank(std::string_view k) { return has_any(k, {"bankcard", "cardno", "cardnum", "acctno", "bankacc", "accountno", "pan"}); }
bool key_mac(std::string_view k) { return has_any(k, {"mac"}) && !has_any(k, {"machine", "macos", "hmac"}); }
bool key_wifi(std::string_view k) { return has_any(k, {"bssid", "wifi", "ssid", "aplist", "wlan"}); }
bool key_android_id(std::string_view k) { return has_any(k, {"androidid"}) || is_any(k, {"aid", "andid", "adrid"}); }
bool key_ad_id(std::string_view k) {
  return has_any(k, {"oaid", "gaid", "idfa", "adid", "advertisingid", "aaid", "googleadid", "adsid"}) ||
         is_any(k, {"advid", "adsid"});
}
bool key_serial(std::string_view k) { return has_any(k, {"serial"}) || is_any(k, {"sn", "serialno", "devsn"}); }
bool key_lat(std::string_view k) { return is_any(k, {"lat", "latitude", "la", "gpslat", "locationlat", "y_lat"}) || has_any(k, {"latitude"}); }
bool key_lng(std::string_view k) {
  return is_any(k, {"lng", "lon", "long", "longitude", "lo", "gpslng", "gpslon", "locationlng"}) || has_any(k, {"longitude"});
}
bool key_location(std::string_view k) { return has_any(k, {"location", "loc", "gps", "coord", "latlng", "lnglat", "position"}); }
bool key_sms(std::string_view k) { return has_any(k, {"sms", "message", "msg", "inbox"}); }
bool key_contacts(std::string_view k) { return has_any(k, {"contact", "addressbook", "phonebook", "friends"}); }
bool key_apps(std::string_view k) { return has_any(k, {"applist", "apps", "installed", "package", "pkg", "applications"}); }
// Keys under which an 11-digit number is an identifier of something else, not a phone.
bool key_not_phone(std::string_view k) {
  return has_any(k, {"id", "order", "seq", "time", "ts", "ver", "count", "size", "amount", "price", "code", "num", "no", "sn",
                     "build", "date", "day", "duration", "len", "offset", "index", "idx", "port", "score", "level",
                     "rank", "balance", "total", "sum", "cost", "fee", "qq"}) &&
         !key_phone(k);
}

// The words just before a token in free text, as a key: "imei=8654…", "\"IMEI\": \"8654…\"".
std::string context_key(std::string_view text, std::size_t token_start) {
  const std::size_t from = token_start > 32 ? token_start - 32 : 0;
  auto window = text.substr(from, token_start - from);
  // Stop at the previous separator of key-value pairs so "a=1&imei=…" gives "imei", not "a1imei".
  const auto cut = window.find_last_of("&;,{}\n\r");
  if (cut != std::string_view::npos) {
    window.remove_prefix(cut + 1);
  }
  return normalize_key(window);
}

std::string digits_only(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      out += c;
    }
  }
  return out;
}

std::optional<double> to_number(std::string_view s) {
  if (s.empty() || s.size() > 40) {
    return std::nullopt;
  }
  std::string t(s);
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

std::size_t decimals(std::string_view s) {
  const auto dot = s.find('.');
  return dot == std::string_view::npos ? 0 : s.size() - dot - 1;
}

void emit(std::vector<pattern_hit>& out, const char* category, bool strong, std::string_view value) {
  out.push_back({category, strong ? "high" : "medium", std::string(value)});
}

// One token (a run of identifier characters) with the key it was sent under.
void check_token(std::string_view key, std::string_view token, std::vector<pattern_hit>& out) {
  if (token.size() < 6) {
    return;
  }
  if (all_digits(token)) {
    const auto n = token.size();
    if (n == 15) {
      if (key_imsi(key) && imsi_valid(token)) {
        emit(out, "imsi", true, token);
        return;
      }
      if (imei_valid(token) && !key_imsi(key) && !key_not_phone(key)) {
        emit(out, "imei", key_imei(key), token);
        return;
      }
      if (imei_valid(token) && key_imei(key)) {
        emit(out, "imei", true, token);
        return;
      }
    }
    if ((n == 19 || n == 20) && iccid_valid(token)) {
      emit(out, "iccid", key_iccid(key), token);
      return;
    }
    if (n >= 16 && n <= 19 && key_bank(key) && bank_card_valid(token)) {
      emit(out, "bank_card", true, token);
      return;
    }
    if (n == 18 && prc_id_valid(token)) {
      emit(out, "id_card", key_id_card(key), token);
      return;
    }
    // Mobile numbers, bare or with the country code in front.
    std::string_view national = token;
    for (const std::string_view cc : {"0086", "86"}) {
      if (national.size() == 11 + cc.size() && national.substr(0, cc.size()) == cc) {
        national.remove_prefix(cc.size());
      }
    }
    if (prc_mobile_valid(national) && (key_phone(key) || (!key_not_phone(key) && !key_imei(key)))) {
      emit(out, "phone_number", key_phone(key), national);
      return;
    }
    return;
  }
  if (token.size() == 18 && prc_id_valid(token)) {  // ends in X
    emit(out, "id_card", key_id_card(key), token);
    return;
  }
  if (token.find('@') != std::string_view::npos) {
    if (email_valid(token)) {
      emit(out, "email", key_email(key), token);
    }
    return;
  }
  char mac_buf[13];
  if (token.find(':') != std::string_view::npos && normalized_mac(token, mac_buf).empty()) {
    // "CELL:13900005555", "tel:+86…": a label and a value, not one token.
    std::size_t start = 0;
    while (start <= token.size()) {
      const auto colon = token.find(':', start);
      const auto piece = token.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start);
      if (piece.size() >= 6) {
        check_token(key, piece, out);
      }
      if (colon == std::string_view::npos) {
        break;
      }
      start = colon + 1;
    }
    return;
  }
  if (!normalized_mac(token, mac_buf).empty() && (token.size() == 17 || key_mac(key) || key_wifi(key))) {
    if (key_mac(key) && !has_any(key, {"bssid", "ap"})) {
      emit(out, "mac_address", true, token);  // the phone's own interface ("wifi_mac", "mac")
    } else if (key_wifi(key)) {
      emit(out, "wifi_location", false, token);  // one BSSID; a list of them is a location
    } else {
      emit(out, "mac_address", false, token);
    }
    return;
  }
  if (uuid_valid(token)) {
    if (key_ad_id(key)) {
      emit(out, "advertising_id", true, token);
    }
    return;
  }
  if (all_hex(token)) {
    if (token.size() == 14 && key_meid(key) && meid_valid(token)) {
      emit(out, "meid", true, token);
    } else if (token.size() == 16 && key_android_id(key) && token.find_first_not_of('0') != std::string_view::npos) {
      emit(out, "android_id", true, token);
    } else if ((token.size() == 16 || token.size() == 32 || token.size() == 64) && key_ad_id(key) &&
               token.find_first_not_of('0') != std::string_view::npos) {
      emit(out, "advertising_id", true, token);  // OAID formats vary by vendor
    }
    return;
  }
  if (key_serial(key) && token.size() >= 6 && token.size() <= 20 &&
      std::all_of(token.begin(), token.end(), [](unsigned char c) { return std::isalnum(c); }) &&
      std::any_of(token.begin(), token.end(), [](unsigned char c) { return std::isdigit(c); }) &&
      token != "unknown") {
    emit(out, "serial_number", false, token);
  }
}

// Identifier characters, as a table: free text and binary bodies are tokenised byte by byte.
constexpr auto token_chars = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[static_cast<std::size_t>(c)] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                     c == '@' || c == '.' || c == '_' || c == '-' || c == ':' || c == '+';
  }
  return t;
}();

bool token_char(char c) { return token_chars[static_cast<unsigned char>(c)]; }

// Whether check_token() could report a token, decided before its context key is built: every
// category needs a digit, '@', ':' or '-', except letters-only hex of an identifier's length.
bool worth_checking(std::string_view token) {
  if (token.size() < 6) {
    return false;
  }
  bool hex = true;
  for (const char c : token) {
    if ((c >= '0' && c <= '9') || c == '@' || c == ':' || c == '-') {
      return true;
    }
    hex = hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
  }
  const auto n = token.size();
  return hex && (n == 12 || n == 14 || n == 16 || n == 32 || n == 64);
}

// Calls `fn(at)` at each trigger word of verification_sms() in `text`, in order, until it
// returns false: "码", "碼", and "code" or "otp" in any case ("passcode" holds "code"). Every
// value of eight bytes or more is asked, and binary bodies are megabytes long: candidates
// (a c or an o in either case, and the first byte of both characters) are found 16 bytes a
// step.
template <class Fn>
void each_code_word(std::string_view text, Fn&& fn) {
  const std::size_t n = text.size();
  const auto word_at = [&text, n](std::size_t i, std::string_view word) {
    if (n - i < word.size()) {
      return false;
    }
    for (std::size_t k = 1; k < word.size(); ++k) {
      if ((text[i + k] | 0x20) != word[k]) {
        return false;
      }
    }
    return true;
  };
  // 码 is E7 A0 81 in UTF-8, 碼 E7 A2 BC.
  const auto trigger_at = [&](std::size_t i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == 0xe7) {
      return n - i >= 3 && ((text[i + 1] == '\xa0' && text[i + 2] == '\x81') || (text[i + 1] == '\xa2' && text[i + 2] == '\xbc'));
    }
    const char lower = static_cast<char>(c | 0x20);
    return (lower == 'c' && word_at(i, "code")) || (lower == 'o' && word_at(i, "otp"));
  };
  std::size_t i = 0;
#if defined(__SSE2__)
  const __m128i case_bit = _mm_set1_epi8(0x20);
  const __m128i c = _mm_set1_epi8('c');
  const __m128i o = _mm_set1_epi8('o');
  const __m128i lead = _mm_set1_epi8(static_cast<char>(0xe7));
  for (; i + 16 <= n; i += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(text.data() + i));
    const __m128i folded = _mm_or_si128(x, case_bit);
    auto mask = static_cast<unsigned>(_mm_movemask_epi8(
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(folded, c), _mm_cmpeq_epi8(folded, o)), _mm_cmpeq_epi8(x, lead))));
    for (; mask != 0; mask &= mask - 1) {
      const std::size_t at = i + static_cast<std::size_t>(__builtin_ctz(mask));
      if (trigger_at(at) && !fn(at)) {
        return;
      }
    }
  }
#endif
  for (; i < n; ++i) {
    if (trigger_at(i) && !fn(i)) {
      return;
    }
  }
}

bool regex_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'; }  // RE2's \s
bool regex_word(char c) {  // RE2's \w, what \b looks at: ASCII only
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

// How far a match of verification_sms()'s expressions reaches from the trigger word it holds:
// 8 digits and up to 16 other characters of up to 4 bytes, and a phrase, on either side. The
// one unbounded part, the white space of "verification\s+code", window_start() walks over.
constexpr std::size_t code_reach = 256;

// Where the window around a trigger word at `at` starts: `code_reach` back, then back over
// white space and the word before it ("one-time"), and never inside a word, where \b would
// see a boundary the text does not have. Not before `floor`, the end of the window before,
// which a start at or before it joins.
std::size_t window_start(std::string_view text, std::size_t at, std::size_t floor) {
  std::size_t s = at > floor + code_reach ? at - code_reach : floor;
  while (s > floor && regex_space(text[s - 1])) {
    --s;
  }
  s = s > floor + 16 ? s - 16 : floor;
  while (s > floor && regex_word(text[s - 1]) && regex_word(text[s])) {
    --s;
  }
  return s;
}

}  // namespace

bool verification_sms(std::string_view text, bool whole) {
  static const re2::RE2 zh("(验证码|校验码|动态码|驗證碼)[^0-9]{0,12}[0-9]{4,8}|[0-9]{4,8}[^0-9]{0,8}(是你的|为您的|為您的)?(验证码|校验码)");
  static const re2::RE2 en("(?i)(verification|security|login|one-time)\\s+code[^0-9]{0,16}[0-9]{4,8}|\\b(otp|passcode)\\b[^0-9]{0,8}[0-9]{4,8}");
  const auto matches = [&text](std::size_t from, std::size_t to) {
    const re2::StringPiece s(text.data() + from, to - from);
    return re2::RE2::PartialMatch(s, zh) || re2::RE2::PartialMatch(s, en);
  };
  if (whole) {
    return matches(0, text.size());
  }
  // Every match holds a trigger word: only the windows around them are searched, joined where
  // they overlap. A long value with a stray "otp" (binary bodies have one a MiB) was searched
  // whole, twice.
  bool found = false;
  bool open = false;
  std::size_t from = 0;
  std::size_t to = 0;
  each_code_word(text, [&](std::size_t at) {
    const std::size_t start = window_start(text, at, open ? to : 0);
    if (open && start <= to) {
      to = std::min(text.size(), at + code_reach);
      return true;
    }
    if (open && matches(from, to)) {
      found = true;
      return false;
    }
    from = start;
    to = std::min(text.size(), at + code_reach);
    open = true;
    return true;
  });
  return found || (open && matches(from, to));
}

namespace {

// "39.9087,116.3975" (or "116.3975,39.9087", the order Chinese map SDKs often use).
bool coordinate_pair(std::string_view text, std::string& value) {
  if (text.find('.') == std::string_view::npos || text.find_first_of(",;|") == std::string_view::npos) {
    return false;
  }
  static const re2::RE2 pair("(-?[0-9]{1,3}\\.[0-9]{3,})\\s*[,;|]\\s*(-?[0-9]{1,3}\\.[0-9]{3,})");
  std::string a, b;
  if (!re2::RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), pair, &a, &b)) {
    return false;
  }
  const double x = std::strtod(a.c_str(), nullptr);
  const double y = std::strtod(b.c_str(), nullptr);
  const bool lat_lng = std::abs(x) <= 90 && std::abs(y) <= 180;
  const bool lng_lat = std::abs(y) <= 90 && std::abs(x) <= 180;
  if ((!lat_lng && !lng_lat) || (std::abs(x) < 1e-3 && std::abs(y) < 1e-3)) {
    return false;
  }
  value = a + "," + b;
  return true;
}

}  // namespace

void scan_scalar(std::string_view key, std::string_view value, std::vector<pattern_hit>& out) {
  if (value.size() > 1 << 20) {
    value = value.substr(0, 1 << 20);  // free text past 1 MiB in one field is scanned by known values only
  }
  // The whole value first: a JSON leaf or form field is usually exactly one identifier.
  // worth_checking() takes no token shorter than six bytes, so the loop looks only for the
  // sixth byte of a run, without a branch per token: free text and binary bodies are mostly
  // short runs, where a branch at each end of each run was mispredicted half the time.
  std::size_t run = 0;
  for (std::size_t at = 0; at < value.size(); ++at) {
    run = (run + 1) * static_cast<std::size_t>(token_char(value[at]));  // a multiply: a conditional became a branch
    if (run != 6) [[likely]] {
      continue;
    }
    const std::size_t i = at - 5;
    std::size_t j = at + 1;
    while (j < value.size() && token_char(value[j])) {
      ++j;
    }
    at = j;  // not a token byte, or the end
    run = 0;
    if (worth_checking(value.substr(i, j - i))) {
      auto token = value.substr(i, j - i);
      // Trim punctuation that token_char admits at the edges ("…4564." or ":8654…").
      while (!token.empty() && (token.back() == '.' || token.back() == ':' || token.back() == '-' || token.back() == '+')) {
        token.remove_suffix(1);
      }
      while (!token.empty() && (token.front() == '.' || token.front() == ':' || token.front() == '-')) {
        token.remove_prefix(1);
      }
      const bool whole = i == 0 && j == value.size();
      const std::string context = whole ? std::string() : context_key(value, i);
      check_token(context.empty() ? key : context, token, out);
      // Dashed or spaced numbers ("138-1234-5678", "86 543210 123456 4") are also tried joined.
      if (token.find('-') != std::string_view::npos || token.find('+') != std::string_view::npos) {
        const auto joined = digits_only(token);
        if (joined.size() >= 11 && joined.size() <= 20 && joined.size() * 10 >= token.size() * 7) {
          check_token(context.empty() ? key : context, joined, out);
        }
      }
    }
  }
  // A whole value that is one number written with separators: "+86 138 1234 5678".
  if (value.size() <= 24 && value.find(' ') != std::string_view::npos &&
      std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c) || c == ' ' || c == '-' || c == '+' || c == '(' || c == ')'; })) {
    check_token(key, digits_only(value), out);
  }
  if (value.size() >= 4 && (value.size() >= 8 || key_sms(key)) && verification_sms(value)) {
    emit(out, "sms", true, value.substr(0, 64));
  }
  if (value.find("BEGIN:VCARD") != std::string_view::npos && value.find("TEL") != std::string_view::npos) {
    emit(out, "contacts", true, "vCard");
  }
  std::string pair;
  if (value.size() < 200 && coordinate_pair(value, pair)) {
    emit(out, "location", key_location(key) || key_lat(key) || key_lng(key), pair);
  }
}

namespace {

// The first member whose normalised key satisfies `pred` (nodes carry it from parse_body()).
const node* member(const node& object, bool (*pred)(std::string_view)) {
  for (const auto& c : object.children) {
    if (pred(c.norm)) {
      return &c;
    }
  }
  return nullptr;
}

bool is_scalar(const node* n) { return n != nullptr && (n->kind == node::type::string || n->kind == node::type::number); }

bool key_sms_body(std::string_view k) { return is_any(k, {"body", "content", "msg", "text", "message", "smsbody", "msgbody"}); }
bool key_sms_address(std::string_view k) { return is_any(k, {"address", "sender", "from", "number", "phone", "addr", "originatingaddress"}); }
bool key_name(std::string_view k) { return is_any(k, {"name", "displayname", "contactname", "fullname", "nickname", "n"}); }
bool key_contact_phone(std::string_view k) {
  return is_any(k, {"phone", "mobile", "tel", "number", "phones", "phonenumber", "phonenumbers", "telephone", "cell"});
}
bool key_pkg(std::string_view k) { return is_any(k, {"pkg", "packagename", "pkgname", "package", "pn", "bundleid", "appid", "p"}); }
bool key_bssid(std::string_view k) { return is_any(k, {"bssid", "mac", "apmac", "wifimac"}); }

bool sms_entry(const node& n) {
  return n.kind == node::type::object && is_scalar(member(n, key_sms_body)) && is_scalar(member(n, key_sms_address));
}

bool contact_entry(const node& n) {
  if (n.kind != node::type::object) {
    return false;
  }
  const node* phone = member(n, key_contact_phone);
  return is_scalar(member(n, key_name)) && phone != nullptr;
}

// A package name as apps and SDKs list them: reverse-DNS, starting with a top-level label.
bool package_like(std::string_view s) {
  if (!package_name_valid(s)) {
    return false;
  }
  const auto first = s.substr(0, s.find('.'));
  static constexpr std::string_view tlds[] = {"com", "cn", "org", "net", "io", "me", "tv", "android", "de",
                                              "jp", "co", "uk", "us", "in", "info", "xyz", "app", "ss", "air", "sina"};
  return std::find(std::begin(tlds), std::end(tlds), first) != std::end(tlds);
}

std::string_view package_of(const node& n) {
  if (n.kind == node::type::string && package_like(n.text)) {
    return n.text;
  }
  if (n.kind == node::type::object) {
    const node* p = member(n, key_pkg);
    if (is_scalar(p) && package_like(p->text)) {
      return p->text;
    }
  }
  return {};
}

std::string_view bssid_of(const node& n, char (&buf)[13]) {
  if (n.kind == node::type::string && !normalized_mac(n.text, buf).empty()) {
    return n.text;
  }
  if (n.kind == node::type::object) {
    const node* b = member(n, key_bssid);
    if (is_scalar(b) && !normalized_mac(b->text, buf).empty()) {
      return b->text;
    }
  }
  return {};
}

}  // namespace

// Keys the object detectors look for; an object with none of them is skipped at once.
bool object_key(std::string_view k) {
  static const std::unordered_set<std::string_view> words = {
      "lat", "latitude", "la", "gpslat", "locationlat", "ylat", "lng", "lon", "long", "longitude", "lo", "gpslng",
      "gpslon", "locationlng", "mcc", "mnc", "sid", "lac", "tac", "nid", "cid", "ci", "cellid", "bid", "pci", "body",
      "content", "msg", "text", "message", "smsbody", "msgbody"};
  return words.count(k) != 0 || (k.size() > 8 && (k.find("latitude") != std::string_view::npos ||
                                                   k.find("longitude") != std::string_view::npos));
}

void scan_object(const node& object, std::vector<pattern_hit>& out) {
  if (std::none_of(object.children.begin(), object.children.end(), [](const node& c) { return object_key(c.norm); })) {
    return;
  }
  struct {
    const node& o;
    const node* find(bool (*pred)(std::string_view)) const { return member(o, pred); }
  } m{object};
  // A latitude/longitude pair of members, in range and not 0,0.
  const node* lat = m.find(key_lat);
  const node* lng = m.find(key_lng);
  if (is_scalar(lat) && is_scalar(lng)) {
    const auto a = to_number(lat->text);
    const auto b = to_number(lng->text);
    if (a && b && std::abs(*a) <= 90 && std::abs(*b) <= 180 && (std::abs(*a) > 1e-3 || std::abs(*b) > 1e-3) &&
        decimals(lat->text) >= 2 && decimals(lng->text) >= 2) {
      const bool precise = decimals(lat->text) >= 3 && decimals(lng->text) >= 3;
      emit(out, "location", precise, lat->text + "," + lng->text);
    }
  }
  // A cell tower: at least three of MCC, MNC, LAC/TAC, CID with numbers, and a real MCC if given.
  const node* mcc = m.find([](std::string_view k) { return is_any(k, {"mcc"}); });
  const node* mnc = m.find([](std::string_view k) { return is_any(k, {"mnc", "sid"}); });
  const node* lac = m.find([](std::string_view k) { return is_any(k, {"lac", "tac", "nid"}); });
  const node* cid = m.find([](std::string_view k) { return is_any(k, {"cid", "ci", "cellid", "bid", "pci"}); });
  const int parts = is_scalar(mcc) + is_scalar(mnc) + is_scalar(lac) + is_scalar(cid);
  if (parts >= 3 && (is_scalar(lac) || is_scalar(cid)) && (!is_scalar(mcc) || mcc_valid(mcc->text))) {
    const auto text = [](const node* n) { return is_scalar(n) ? n->text : std::string("-"); };
    emit(out, "cell_location", is_scalar(mcc) && is_scalar(lac) && is_scalar(cid),
         text(mcc) + "/" + text(mnc) + "/" + text(lac) + "/" + text(cid));
  }
  const node* body = m.find(key_sms_body);
  if (is_scalar(body) && is_scalar(m.find(key_sms_address))) {
    emit(out, "sms", true, body->text.substr(0, 64));
  }
}

unsigned member_uses(std::string_view k) {
  unsigned uses = object_key(k) ? member_use::paired : 0;
  uses |= key_name(k) ? member_use::name : 0;
  uses |= key_contact_phone(k) ? member_use::phone : 0;
  uses |= key_pkg(k) ? member_use::package : 0;
  uses |= key_bssid(k) ? member_use::bssid : 0;
  // Every lookup of scan_object(), as it spells them.
  const bool cell = is_any(k, {"mcc", "mnc", "sid", "lac", "tac", "nid", "cid", "ci", "cellid", "bid", "pci"});
  if (key_lat(k) || key_lng(k) || cell || key_sms_body(k) || key_sms_address(k)) {
    uses |= member_use::looked_up;
  }
  return uses;
}

bool list_item(std::string_view text) {
  // Called for every part of every string with a separator: most parts are numbers or words,
  // told apart by shape first (a MAC has 12 or 17 characters, a package name starts with a
  // lower-case letter).
  const bool mac_size = text.size() == 12 || text.size() == 17;
  if (!mac_size && (text.empty() || text[0] < 'a' || text[0] > 'z')) {
    return false;
  }
  char buf[13];
  return package_like(text) || !normalized_mac(text, buf).empty();
}

void scan_list(std::string_view key, const std::vector<const node*>& items, std::vector<pattern_hit>& out) {
  std::size_t contacts = 0, apps = 0, messages = 0;
  std::set<std::string> bssids;
  std::string first_app;
  for (const node* item : items) {
    if (item->kind == node::type::object) {
      contacts += contact_entry(*item);
      messages += sms_entry(*item);
    } else if (item->kind != node::type::string) {
      continue;  // numbers and nested arrays are neither packages nor BSSIDs
    }
    if (const auto p = package_of(*item); !p.empty()) {
      if (apps++ == 0) {
        first_app = std::string(p);
      }
    }
    char buf[13];
    if (!bssid_of(*item, buf).empty()) {
      bssids.insert(std::string(buf, 12));
    }
  }
  if (contacts >= 3 || (contacts >= 1 && key_contacts(key))) {
    emit(out, "contacts", true, std::to_string(contacts) + " entries");
  }
  if (apps >= 5) {
    emit(out, "installed_apps", key_apps(key), std::to_string(apps) + " packages, " + first_app + ", …");
  }
  if (bssids.size() >= 2) {
    emit(out, "wifi_location", true, std::to_string(bssids.size()) + " BSSIDs");
  }
  (void)messages;  // each message object reports itself in scan_object
}

}  // namespace leakscope::detectors
