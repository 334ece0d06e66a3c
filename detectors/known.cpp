#include "detectors/known.hpp"

#include "detectors/decode.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <stdexcept>

namespace leakscope::detectors {

namespace {

constexpr std::size_t min_base64_middle = 8;  // shorter fragments would match by chance

std::string digest(const std::string& value, const EVP_MD* md) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(value.data(), value.size(), out, &len, md, nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string percent_encode(const std::string& v, bool upper) {
  const char* hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (const char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

// "张三" -> "\u5f20\u4e09"; ASCII stays. Characters beyond the BMP become surrogate pairs.
std::string json_escape(const std::string& v, bool upper) {
  const char* hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  auto unit = [&](unsigned u) {
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) {
      out += hex[(u >> shift) & 15];
    }
  };
  for (std::size_t i = 0; i < v.size();) {
    const auto c = static_cast<unsigned char>(v[i]);
    if (c < 0x80) {
      out += v[i++];
      continue;
    }
    const int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    unsigned cp = c & (len == 4 ? 0x07 : len == 3 ? 0x0f : 0x1f);
    for (int k = 1; k < len && i + static_cast<std::size_t>(k) < v.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(v[i + static_cast<std::size_t>(k)]) & 0x3f);
    }
    i += static_cast<std::size_t>(len);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      unit(0xd800 + (cp >> 10));
      unit(0xdc00 + (cp & 0x3ff));
    } else {
      unit(cp);
    }
  }
  return out;
}

// The part of base64(filler + value) that does not depend on the neighbouring bytes.
std::string base64_middle(const std::string& value, int shift, bool url_safe) {
  const std::string filler(static_cast<std::size_t>(shift), '\0');
  const std::string encoded = base64_encode(filler + value, url_safe, false);
  const std::size_t drop_front = shift == 0 ? 0 : static_cast<std::size_t>(shift + 1);
  const std::size_t total = static_cast<std::size_t>(shift) + value.size();
  const std::size_t drop_back = total % 3 == 0 ? 0 : 1;
  if (encoded.size() < drop_front + drop_back) {
    return {};
  }
  return encoded.substr(drop_front, encoded.size() - drop_front - drop_back);
}

bool is_ascii(const std::string& v) {
  return std::all_of(v.begin(), v.end(), [](unsigned char c) { return c < 0x80; });
}

std::string digits_of(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      out += c;
    }
  }
  return out;
}

std::string to_lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string to_upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

std::vector<std::string> phone_variants(const std::string& number) {
  std::string national = digits_of(number);
  for (const std::string prefix : {"0086", "86"}) {
    if (national.size() == 11 + prefix.size() && national.rfind(prefix, 0) == 0) {
      national = national.substr(prefix.size());
    }
  }
  std::vector<std::string> out = {national};
  for (const char* cc : {"+86", "+86 ", "+86-", "0086", "86-", "86 ", "(+86)"}) {
    out.push_back(cc + national);
  }
  if (national.size() == 11) {
    for (const char sep : {' ', '-'}) {
      const std::string grouped = national.substr(0, 3) + sep + national.substr(3, 4) + sep + national.substr(7);
      out.push_back(grouped);
      out.push_back(std::string("+86") + sep + grouped);
    }
  }
  return out;
}

std::vector<std::string> imei_variants(const std::string& imei) {
  const std::string d = digits_of(imei);
  std::vector<std::string> out = {d};
  if (d.size() == 15) {
    for (const char sep : {'-', ' ', '/'}) {
      out.push_back(d.substr(0, 2) + sep + d.substr(2, 6) + sep + d.substr(8, 6) + sep + d.substr(14));
    }
  }
  return out;
}

std::vector<std::string> mac_variants(const std::string& mac) {
  std::string hex;
  for (const char c : mac) {
    if (std::isxdigit(static_cast<unsigned char>(c))) {
      hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  if (hex.size() != 12) {
    return {mac};
  }
  std::vector<std::string> out;
  for (const bool upper : {false, true}) {
    const std::string h = upper ? to_upper(hex) : hex;
    out.push_back(h);
    for (const char sep : {':', '-'}) {
      std::string s;
      for (std::size_t i = 0; i < 12; i += 2) {
        if (i > 0) {
          s += sep;
        }
        s += h.substr(i, 2);
      }
      out.push_back(s);
    }
  }
  return out;
}

std::vector<std::string> variants(const std::string& category, const std::string& value) {
  if (category == "phone_number") {
    return phone_variants(value);
  }
  if (category == "imei") {
    return imei_variants(value);
  }
  if (category == "mac_address" || category == "wifi_location") {
    return mac_variants(value);
  }
  if (category == "android_id" || category == "meid" || category == "email" || category == "serial_number") {
    std::vector<std::string> out = {value};
    for (const auto& v : {to_lower(value), to_upper(value)}) {
      if (std::find(out.begin(), out.end(), v) == out.end()) {
        out.push_back(v);
      }
    }
    return out;
  }
  if (category == "advertising_id") {
    std::string bare;
    for (const char c : value) {
      if (c != '-') {
        bare += c;
      }
    }
    std::vector<std::string> out;
    for (const auto& v : {to_lower(value), to_upper(value), to_lower(bare), to_upper(bare)}) {
      if (std::find(out.begin(), out.end(), v) == out.end()) {
        out.push_back(v);
      }
    }
    return out;
  }
  return {value};
}

// The sender tag 【…】 (or […]) and the first run of 4–8 digits of an SMS: together they
// identify a verification SMS even when an SDK sends only an excerpt.
std::pair<std::string, std::string> sms_tag_and_code(const std::string& sms) {
  std::string tag;
  const auto open = sms.find("【");
  if (open != std::string::npos) {
    const auto close = sms.find("】", open);
    if (close != std::string::npos) {
      tag = sms.substr(open, close + std::string("】").size() - open);
    }
  }
  std::string code;
  for (std::size_t i = 0; i < sms.size();) {
    std::size_t j = i;
    while (j < sms.size() && std::isdigit(static_cast<unsigned char>(sms[j]))) {
      ++j;
    }
    if (j - i >= 4 && j - i <= 8) {
      code = sms.substr(i, j - i);
      break;
    }
    i = j == i ? i + 1 : j;
  }
  return {tag, code};
}

}  // namespace

std::vector<std::pair<std::string, std::vector<std::string>>> encoded_forms(const std::string& value) {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  auto add = [&](std::string text, std::vector<std::string> encoding) {
    if (!text.empty() && text != value) {
      out.emplace_back(std::move(text), std::move(encoding));
    }
  };
  for (const bool upper : {true, false}) {
    add(percent_encode(value, upper), {"url"});
  }
  if (!is_ascii(value)) {
    for (const bool upper : {false, true}) {
      add(json_escape(value, upper), {"json_escape"});
    }
  }
  for (int shift = 0; shift < 3; ++shift) {
    for (const bool url_safe : {false, true}) {
      auto middle = base64_middle(value, shift, url_safe);
      if (middle.size() >= min_base64_middle) {
        add(std::move(middle), {"base64"});
      }
    }
  }
  for (const bool upper : {false, true}) {
    add(hex_encode(value, upper), {"hex"});
  }
  const std::pair<const char*, const EVP_MD*> hashes[] = {{"md5", EVP_md5()}, {"sha1", EVP_sha1()}, {"sha256", EVP_sha256()}};
  for (const auto& [name, md] : hashes) {
    const auto d = digest(value, md);
    add(hex_encode(d, false), {name});
    add(hex_encode(d, true), {name});
    add(base64_encode(d, false, false), {"base64", name});
  }
  // Identical spellings (an ASCII value's URL forms, say) are kept once.
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first == b.first; }), out.end());
  return out;
}

std::size_t known_matcher::add_value(const std::string& v, std::size_t sms) {
  values_.push_back(v);
  sms_index_.push_back(sms);
  return values_.size() - 1;
}

void known_matcher::add_forms(const std::string& kind, std::size_t value, const std::string& text, bool encodings) {
  forms_.push_back({kind, value, {}, text});
  if (encodings) {
    for (auto& [form, encoding] : encoded_forms(text)) {
      forms_.push_back({kind, value, std::move(encoding), std::move(form)});
    }
  }
}

known_matcher::known_matcher(const config::device_profile& p) {
  const std::pair<const char*, const std::vector<std::string>*> lists[] = {
      {"imei", &p.imei},
      {"meid", &p.meid},
      {"imsi", &p.imsi},
      {"iccid", &p.iccid},
      {"serial_number", &p.serial_number},
      {"android_id", &p.android_id},
      {"advertising_id", &p.advertising_id},
      {"mac_address", &p.mac_address},
      {"phone_number", &p.phone_number},
      {"email", &p.email},
      {"id_card", &p.id_card},
      {"bank_card", &p.bank_card},
      {"cell_location", &p.cell_location},
      {"wifi_location", &p.wifi_location},
      {"installed_apps", &p.installed_apps},
  };
  for (const auto& [category, list] : lists) {
    for (const auto& value : *list) {
      const auto index = add_value(value);
      // Package names are matched as written: their hashes would only add noise.
      const bool encodings = std::string(category) != "installed_apps";
      for (const auto& variant : variants(category, value)) {
        add_forms(category, index, variant, encodings);
      }
    }
  }
  for (std::size_t i = 0; i < p.sms.size(); ++i) {
    const auto& sms = p.sms[i];
    add_forms("sms", add_value(sms, i), sms, true);
    const auto [tag, code] = sms_tag_and_code(sms);
    if (!tag.empty() && !code.empty()) {
      add_forms(kind_sms_tag, add_value(tag, i), tag, true);
      add_forms(kind_sms_code, add_value(code, i), code, false);
    }
  }
  for (const auto& c : p.contacts) {
    const auto index = add_value(c.name.empty() ? c.phone : c.name);
    if (!c.name.empty()) {
      add_forms(kind_contact, index, c.name, true);
    }
    if (!c.phone.empty()) {
      for (const auto& v : phone_variants(c.phone)) {
        add_forms(kind_contact, index, v, false);
      }
    }
  }
  location_ = p.location;

  // Drop exact duplicates (a value listed twice, or two categories sharing a spelling keep both).
  std::set<std::pair<std::string, std::string>> seen;
  std::vector<known_form> unique;
  for (auto& f : forms_) {
    if (seen.insert({f.kind + '\0' + std::to_string(f.value), f.text}).second) {
      unique.push_back(std::move(f));
    }
  }
  forms_ = std::move(unique);

  std::vector<std::string> texts;
  texts.reserve(forms_.size());
  for (const auto& f : forms_) {
    texts.push_back(f.text);
    longest_ = std::max(longest_, f.text.size());
  }
  literals_ = literal_set(texts);
}

known_hits known_matcher::match(std::string_view buffer, bool locate) const {
  known_hits hits;
  if (forms_.empty() || buffer.empty()) {
    return hits;
  }
  std::vector<std::uint32_t> ids;
  if (locate) {
    std::vector<literal_set::occurrence> found;
    literals_.find_each(buffer, found);
    // A batch repeats a few forms thousands of times: each form is listed once, and only the
    // distinct ones are sorted.
    std::vector<bool> listed(forms_.size());
    hits.spans.reserve(found.size());
    for (const auto& o : found) {
      if (!listed[o.id]) {
        listed[o.id] = true;
        ids.push_back(o.id);
      }
      hits.spans.emplace_back(o.at, o.at + literals_.size_of(o.id));
    }
    std::sort(ids.begin(), ids.end());
  } else {
    literals_.find_all(buffer, ids);
  }
  for (const auto id : ids) {
    hits.forms.push_back(&forms_[id]);
  }
  return hits;
}

}  // namespace leakscope::detectors
