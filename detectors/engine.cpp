#include "detectors/engine.hpp"

#include "detectors/decode.hpp"
#include "detectors/patterns.hpp"
#include "detectors/structure.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>
#include <unordered_map>
#include <strings.h>

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

bool plain_key(const std::string& k) {
  return !k.empty() && std::all_of(k.begin(), k.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

// Path of a child inside a structure, in that format's own notation.
std::string child_path(body_format f, const std::string& parent, const node& child, std::size_t index, bool in_array) {
  switch (f) {
    case body_format::json:
      if (in_array) {
        return parent + "[" + std::to_string(index) + "]";
      }
      return plain_key(child.key) ? parent + "." + child.key : parent + "[\"" + child.key + "\"]";
    case body_format::xml:
      return parent + "/" + child.key;
    case body_format::protobuf:
      return parent.empty() ? child.key : parent + "." + child.key;
    default:
      return parent.empty() ? child.key : parent + "." + child.key;
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
  bool upper = false, lower = false, other = false;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c >= 'A' && c <= 'Z') {
      upper = true;
    } else if (c >= 'a' && c <= 'z') {
      lower = true;
    } else if (c == '+' || c == '/' || c == '-' || c == '_') {
      other = true;
    } else if (c == '=') {
      if (i + 2 < v.size()) {
        return false;
      }
    } else if (!(c >= '0' && c <= '9')) {
      return false;
    }
  }
  return (upper && lower) || other;
}

bool has_percent_escape(std::string_view v) {
  for (std::size_t i = 0; i + 2 < v.size(); ++i) {
    if (v[i] == '%' && std::isxdigit(static_cast<unsigned char>(v[i + 1])) && std::isxdigit(static_cast<unsigned char>(v[i + 2]))) {
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

struct location_candidate {
  double value;
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
  std::map<std::size_t, std::pair<std::string, chain_t>> contacts;  // profile contact -> first place
  std::map<std::size_t, std::string> sms_tags, sms_codes;           // profile SMS -> place
  std::map<std::size_t, std::pair<std::string, chain_t>> apps;      // profile package -> first place
  std::vector<location_candidate> numbers;

  // Whole degrees of the profile's fix (one either side, for a fix near a degree line): a
  // number can only be near the fix if it starts with one of these, as degrees or x1e5/x1e6.
  std::string leads[6];
  int n_leads = 0;

  explicit scan(const engine& engine) : e(engine) {
    if (const auto& fix = e.known_.location()) {
      for (const double d : {std::abs(fix->lat), std::abs(fix->lng)}) {
        for (const long delta : {-1L, 0L, 1L}) {
          const long whole = static_cast<long>(d) + delta;
          if (whole > 0) {
            leads[n_leads++] = std::to_string(whole);
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
    for (int k = 0; k < n_leads; ++k) {
      const auto& lead = leads[k];
      if (token[0] == lead[0] && token.compare(0, lead.size(), lead) == 0) {
        return true;
      }
    }
    return false;
  }

  // Whether any detector could use a value, judged from its key and shape before any work is
  // done on it. Every rule mirrors a detector's trigger; the corpus test guards against a rule
  // that is too narrow.
  bool could_match(std::string_view key, std::string_view v) const {
    if (v.size() < 4) {
      return false;
    }
    if (interesting_key_cached(key)) {
      return true;  // key-context detectors decide
    }
    std::size_t digits = 0;     // in the current run, counting across ' ' and '-' separators
    std::size_t run_start = 0;  // where that run began
    bool letters = false;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const char c = v[i];
      if (c >= '0' && c <= '9') {
        if (digits == 0) {
          run_start = i;
        }
        ++digits;
        continue;
      }
      if ((c == ' ' || c == '-') && digits > 0) {
        continue;
      }
      if (digits > 0 && identifier_length(v.substr(run_start), digits)) {
        return true;
      }
      digits = 0;
      if (c == '@' || c == '%' || c == ',' || c == ';' || c == '|' || c == '{' || c == '[' || c == ':' || c == '+' ||
          c == '=' || c == '&' || static_cast<unsigned char>(c) >= 0x80) {
        return true;  // email, escapes, lists, JSON, MAC/vCard, +86, key=value text, non-ASCII (SMS, names)
      }
      letters = letters || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    }
    if (digits > 0 && identifier_length(v.substr(run_start), digits)) {
      return true;
    }
    if (n_leads > 0 && near_fix(v)) {
      return true;
    }
    if (letters && (v.find("ode") != std::string_view::npos || v.find("OTP") != std::string_view::npos ||
                    v.find("otp") != std::string_view::npos)) {
      return true;  // verification-code phrasing ("code", "Code", "OTP")
    }
    return looks_base64(v);
  }

  // Digit runs that can be an identifier: 11 (mobile), 13 starting 86 (mobile with country
  // code), 14 and more (IMEI, IMSI, ICCID, ID card, bank card, 0086 mobile).
  static bool identifier_length(std::string_view run, std::size_t digits) {
    return digits == 11 || digits >= 14 || (digits == 13 && run.substr(0, 2) == "86") || (digits == 17);
  }

  // Keys repeat thousands of times in a batch of events: each is judged once per request.
  mutable std::unordered_map<std::string_view, bool> key_verdicts;
  bool interesting_key_cached(std::string_view k) const {
    const auto it = key_verdicts.find(k);
    if (it != key_verdicts.end()) {
      return it->second;
    }
    return key_verdicts[k] = interesting_key(k);
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
      const chain_t encoding = plus(chain, {});
      chain_t full = encoding;
      full.insert(full.end(), f->encoding.begin(), f->encoding.end());
      if (f->kind == kind_contact) {
        contacts.emplace(f->value, std::make_pair(where, full));
      } else if (f->kind == kind_sms_tag) {
        sms_tags.emplace(e.known_.sms_of(f->value), where);
      } else if (f->kind == kind_sms_code) {
        sms_codes.emplace(e.known_.sms_of(f->value), where);
      } else if (f->kind == "installed_apps") {
        apps.emplace(f->value, std::make_pair(where, full));
      } else {
        add(f->kind, "known", "high", where, full, value);
      }
    }
  }

  void numbers_in(std::string_view text, const std::string& where, const chain_t& chain) {
    if (n_leads == 0 || text.size() > 4096) {
      return;
    }
    auto plausible = [&](std::string_view token) { return near_fix(token); };
    std::size_t i = 0;
    while (i < text.size()) {
      while (i < text.size() && !(std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '-')) {
        ++i;
      }
      std::size_t j = i;
      while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '.' || text[j] == '-')) {
        ++j;
      }
      if (j > i && plausible(text.substr(i, j - i))) {
        const std::string token(text.substr(i, j - i));
        char* end = nullptr;
        const double v = std::strtod(token.c_str(), &end);
        if (end == token.c_str() + token.size() && std::isfinite(v)) {
          numbers.push_back({v, token, where, chain});
        }
      }
      i = j == i ? i + 1 : j;
    }
  }

  // A scalar: known values (when the enclosing buffer had any), patterns, values inside it.
  // `key` is normalised (normalize_key).
  void leaf(const std::string& key, std::string_view value, const std::string& where, const chain_t& chain, int depth,
            bool known_here) {
    if (value.empty()) {
      return;
    }
    if (known_here) {
      known(e.known_.match(value), where, chain);
    }
    std::vector<pattern_hit> hits;
    scan_scalar(key, value, hits);
    for (auto& h : hits) {
      add(std::move(h.category), "pattern", std::move(h.confidence), where, chain, std::move(h.value));
    }
    numbers_in(value, where, chain);
    nested(key, value, where, chain, depth);
  }

  // Values inside values: URL-encoded text, base64 (maybe of gzip), JSON in a string.
  void nested(const std::string& key, std::string_view value, const std::string& where, const chain_t& chain, int depth) {
    if (depth >= max_nesting || nested_scans >= max_nested_scans) {
      return;
    }
    if (has_percent_escape(value)) {
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

  void walk(const node& n, body_format f, const std::string& prefix, const std::string& path, const chain_t& chain,
            int depth, bool known_here) {
    if ((n.kind == node::type::string || n.kind == node::type::number) && !known_here && !could_match(n.norm, n.text)) {
      return;  // no detector can fire on this value: skip building its path
    }
    const std::string where = prefix + path;
    switch (n.kind) {
      case node::type::string:
      case node::type::number:
        leaf(n.norm, n.text, where, chain, depth, known_here);
        if (n.kind == node::type::string && n.text.size() < 65536 &&
            n.text.find_first_of(",;|") != std::string::npos) {
          list_in_string(n, where, chain);
        }
        return;
      case node::type::object: {
        // protobuf encodes map<string, …> entries as messages {1: key, 2: value}: read them as
        // the key-value pair they are, so key context works without a schema.
        if (f == body_format::protobuf && n.children.size() == 2 && n.children[0].key == "1" &&
            n.children[1].key == "2" && n.children[0].kind == node::type::string &&
            (n.children[1].kind == node::type::string || n.children[1].kind == node::type::number) &&
            n.children[0].text.size() <= 64 && looks_textual(n.children[0].text)) {
          leaf(normalize_key(n.children[0].text), n.children[1].text, where + "[" + n.children[0].text + "]", chain, depth,
               known_here);
          return;
        }
        std::vector<pattern_hit> hits;
        scan_object(n, hits);
        // Repeated members (XML siblings, protobuf repeated fields, multipart parts) are lists
        // too; JSON keys are unique, so JSON objects skip the grouping.
        if (f != body_format::json && n.children.size() >= 2) {
          std::map<std::string, std::vector<const node*>> groups;
          for (const auto& c : n.children) {
            groups[c.key].push_back(&c);
          }
          for (const auto& [k, items] : groups) {
            if (items.size() >= 2) {
              scan_list(items.front()->norm, items, hits);
            }
          }
        }
        for (auto& h : hits) {
          add(std::move(h.category), "pattern", std::move(h.confidence), where, chain, std::move(h.value));
        }
        for (std::size_t i = 0; i < n.children.size(); ++i) {
          walk(n.children[i], f, prefix, child_path(f, path, n.children[i], i, false), chain, depth, known_here);
        }
        return;
      }
      case node::type::array: {
        std::vector<const node*> items;
        for (const auto& c : n.children) {
          items.push_back(&c);
        }
        std::vector<pattern_hit> hits;
        scan_list(n.norm, items, hits);
        for (auto& h : hits) {
          add(std::move(h.category), "pattern", std::move(h.confidence), where, chain, std::move(h.value));
        }
        for (std::size_t i = 0; i < n.children.size(); ++i) {
          walk(n.children[i], f, prefix, child_path(f, path, n.children[i], i, true), chain, depth, known_here);
        }
        return;
      }
      case node::type::other:
        return;
    }
  }

  // "com.a.b,com.c.d,…" or "aa:bb:…;cc:dd:…" in one string: checked as a list.
  void list_in_string(const node& n, const std::string& where, const chain_t& chain) {
    std::vector<node> parts;
    std::string_view rest = n.text;
    while (!rest.empty() && parts.size() < 10'000) {
      const auto cut = rest.find_first_of(",;|");
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
    scan_list(n.norm, items, hits);
    for (auto& h : hits) {
      add(std::move(h.category), "pattern", std::move(h.confidence), where, chain, std::move(h.value));
    }
  }

  // A buffer of bytes: parsed by its format when it has one, else scanned as text.
  void buffer(std::string_view data, const std::string& where, const chain_t& chain, int depth, const std::string& key,
              std::string_view content_type) {
    const auto hits = e.known_.match(data);
    const body_format f = sniff_format(data, content_type);
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
    const std::size_t before = out.findings.size();
    const std::string prefix = where + (where.empty() ? "" : (depth == 0 && where == "body" ? "." : "/")) + format_name(f) + ":";
    const bool known_here = !hits.forms.empty();
    walk(*root, f, prefix, root_path(f), plus(chain, {format_name(f)}), depth, known_here);
    // Profile values the leaves did not account for (in keys, across fields, in raw bytes) are
    // still reported, at the level of the whole buffer.
    if (known_here) {
      std::set<std::string> found;
      for (std::size_t i = before; i < out.findings.size(); ++i) {
        if (out.findings[i].source == std::string("known")) {
          found.insert(out.findings[i].category + '\0' + out.findings[i].value);
        }
      }
      known_hits rest;
      for (const auto* form : hits.forms) {
        const bool special = form->kind == kind_contact || form->kind == kind_sms_tag || form->kind == kind_sms_code ||
                             form->kind == "installed_apps";
        if (!special && !found.count(form->kind + '\0' + e.known_.value(form->value))) {
          rest.forms.push_back(form);
        }
      }
      known(rest, where, chain);
    }
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

  // The profile's GPS fix, in any precision of at least two decimals, either order, or scaled
  // to an integer by 1e5 or 1e6, within radius_m of the fix.
  void location() {
    const auto& fix = e.known_.location();
    if (!fix || numbers.empty()) {
      return;
    }
    const double lat_tolerance = fix->radius_m / metres_per_degree;
    const double lng_tolerance = fix->radius_m / (metres_per_degree * std::max(0.01, std::cos(fix->lat * M_PI / 180)));
    struct pick {
      const location_candidate* c;
      double degrees;
      const char* scale;
    };
    std::vector<pick> lats, lngs;
    for (const auto& c : numbers) {
      const bool decimal = c.text.find('.') != std::string::npos;
      const auto dot = c.text.find('.');
      if (decimal && c.text.size() - dot - 1 < 2) {
        continue;
      }
      const std::pair<double, const char*> scales[] = {{1.0, nullptr}, {1e5, "x1e5"}, {1e6, "x1e6"}};
      for (const auto& [scale, name] : scales) {
        if ((scale == 1.0) != decimal) {
          continue;  // decimals are degrees; integers are degrees scaled
        }
        const double d = c.value / scale;
        if (std::abs(d - fix->lat) <= lat_tolerance) {
          lats.push_back({&c, d, name});
        }
        if (std::abs(d - fix->lng) <= lng_tolerance) {
          lngs.push_back({&c, d, name});
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
    std::vector<const finding*> known_findings;
    for (const auto& f : out.findings) {
      if (f.source == std::string("known")) {
        known_findings.push_back(&f);
      }
    }
    // A pattern finding is covered by a known one of its category at the same place or inside
    // it (a lat/lng object and its lat member), and by a known one of any category for the
    // same value: the profile knows a BSSID is a BSSID, whatever its shape suggests.
    auto covered = [&](const finding& p) {
      return std::any_of(known_findings.begin(), known_findings.end(), [&](const finding* k) {
        return (k->category == p.category && k->where.compare(0, p.where.size(), p.where) == 0) ||
               (k->where == p.where && k->value == p.value);
      });
    };
    // Decide first, move after: `known_findings` points into out.findings.
    std::set<std::string> seen;
    std::vector<bool> keep(out.findings.size(), false);
    for (std::size_t i = 0; i < out.findings.size(); ++i) {
      const auto& f = out.findings[i];
      if (f.source == std::string("pattern") && covered(f)) {
        continue;
      }
      keep[i] = seen.insert(f.category + '\0' + f.where + '\0' + f.value).second;
    }
    std::vector<finding> unique;
    for (std::size_t i = 0; i < out.findings.size(); ++i) {
      if (keep[i]) {
        unique.push_back(std::move(out.findings[i]));
      }
    }
    out.findings = std::move(unique);
    std::sort(out.incomplete.begin(), out.incomplete.end());
    out.incomplete.erase(std::unique(out.incomplete.begin(), out.incomplete.end()), out.incomplete.end());
  }
};

engine::engine(const config::device_profile& profile, engine_limits limits) : known_(profile), limits_(limits) {}

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
  if (!request.body.empty()) {
    auto body = decode_content(request.body, header_value(request, "content-encoding"), limits_.max_decoded_body);
    s.out.incomplete.insert(s.out.incomplete.end(), body.incomplete.begin(), body.incomplete.end());
    s.buffer(body.data, "body", body.chain, 0, "", header_value(request, "content-type"));
  }
  if (request.body_truncated) {
    s.out.incomplete.push_back("body_truncated");
  }
  s.request_level();
  s.finish();
  return std::move(s.out);
}

}  // namespace leakscope::detectors
