#include "detectors/engine.hpp"

#include "detectors/decode.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <stdexcept>
#include <strings.h>

namespace leakscope::detectors {

std::string mask(const std::string& value) {
  if (value.size() <= 4) {
    return std::string(value.size(), '*');
  }
  const std::size_t keep = value.size() >= 12 ? 4 : 2;
  return value.substr(0, keep) + std::string(value.size() - 2 * keep, '*') + value.substr(value.size() - keep);
}

bool luhn_valid(std::string_view digits) {
  int sum = 0;
  bool twice = false;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (!std::isdigit(static_cast<unsigned char>(*it))) {
      return false;
    }
    int d = *it - '0';
    if (twice) {
      d *= 2;
      if (d > 9) {
        d -= 9;
      }
    }
    sum += d;
    twice = !twice;
  }
  return !digits.empty() && sum % 10 == 0;
}

namespace {

std::string digits_only(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      out += c;
    }
  }
  return out;
}

// The forms a phone number takes in SDK traffic: bare, with the country code in its three
// spellings, and grouped 3-4-4 with spaces or dashes (Chinese mobile numbers).
std::vector<std::string> phone_forms(const std::string& number) {
  std::string national = digits_only(number);
  for (const char* prefix : {"0086", "86"}) {
    const std::string p = prefix;
    if (national.size() == 11 + p.size() && national.rfind(p, 0) == 0) {
      national = national.substr(p.size());
    }
  }
  std::vector<std::string> forms = {national};
  for (const char* cc : {"+86", "+86 ", "+86-", "0086", "86-", "86 "}) {
    forms.push_back(cc + national);
  }
  if (national.size() == 11) {
    for (const char sep : {' ', '-'}) {
      forms.push_back(national.substr(0, 3) + sep + national.substr(3, 4) + sep + national.substr(7));
    }
  }
  return forms;
}

// IMEIs are printed with separators in some UIs and logs: 86-543210-123456-4, 86 543210 …
std::vector<std::string> imei_forms(const std::string& imei) {
  const std::string d = digits_only(imei);
  std::vector<std::string> forms = {d};
  if (d.size() == 15) {
    for (const char sep : {'-', ' '}) {
      forms.push_back(d.substr(0, 2) + sep + d.substr(2, 6) + sep + d.substr(8, 6) + sep + d.substr(14));
    }
  }
  return forms;
}

}  // namespace

engine::engine(const config::device_profile& profile, engine_limits limits) : limits_(limits) {
  std::set<std::pair<std::string, std::string>> seen;
  auto add = [&](const std::string& category, const std::string& value, const std::string& form) {
    if (!form.empty() && seen.insert({category, form}).second) {
      forms_.push_back({category, value});
      literal_.push_back(form);
    }
  };
  for (const auto& imei : profile.imei) {
    for (const auto& f : imei_forms(imei)) {
      add("imei", imei, f);
    }
  }
  for (const auto& phone : profile.phone_number) {
    for (const auto& f : phone_forms(phone)) {
      add("phone_number", phone, f);
    }
  }

  re2::RE2::Options options;
  options.set_literal(true);
  options.set_case_sensitive(true);
  options.set_max_mem(64 << 20);
  known_ = std::make_unique<re2::RE2::Set>(options, re2::RE2::UNANCHORED);
  for (const auto& form : literal_) {
    std::string error;
    if (known_->Add(form, &error) < 0) {
      throw std::runtime_error("cannot compile the device profile value " + mask(form) + ": " + error);
    }
  }
  if (!literal_.empty() && !known_->Compile()) {
    throw std::runtime_error("the device profile is too large to compile into one matcher");
  }
  imei_pattern_ = std::make_unique<re2::RE2>("(?:^|[^0-9])([0-9]{15})(?:[^0-9]|$)");
}

void engine::scan(std::string_view text, const std::string& where, const std::vector<std::string>& encoding,
                  inspect_result& out) const {
  if (text.empty()) {
    return;
  }
  std::set<std::string> known_here;
  if (!literal_.empty()) {
    std::vector<int> hits;
    re2::RE2::Set::ErrorInfo info{};
    if (!known_->Match(re2::StringPiece(text.data(), text.size()), &hits, &info) &&
        info.kind != re2::RE2::Set::kNoError) {
      // RE2 ran out of memory: this buffer was not scanned, which is not the same as clean.
      out.incomplete.push_back("scan_incomplete");
    }
    std::sort(hits.begin(), hits.end());
    for (const int i : hits) {
      const auto& form = forms_[static_cast<std::size_t>(i)];
      if (!known_here.insert(form.category + '\0' + form.value).second) {
        continue;  // several spellings of one value in one place are one finding
      }
      out.findings.push_back({form.category, "known", "high", where, encoding, form.value});
    }
  }

  // After a match the remaining input starts just past the consumed delimiter, so `^` there is
  // a true boundary and back-to-back values separated by one character are both found.
  re2::StringPiece input(text.data(), text.size());
  std::string candidate;
  while (re2::RE2::FindAndConsume(&input, *imei_pattern_, &candidate)) {
    const bool same_digits = candidate.find_first_not_of(candidate[0]) == std::string::npos;
    if (!luhn_valid(candidate) || same_digits || known_here.count("imei" + std::string(1, '\0') + candidate)) {
      continue;
    }
    const bool named = where.find("imei") != std::string::npos || where.find("IMEI") != std::string::npos;
    out.findings.push_back({"imei", "pattern", named ? "high" : "medium", where, encoding, candidate});
  }
}

void engine::scan_body(const http_request& request, inspect_result& out) const {
  if (request.body.empty()) {
    return;
  }
  std::string content_encoding;
  for (const auto& h : request.headers) {
    if (::strcasecmp(h.name.c_str(), "content-encoding") == 0) {
      content_encoding = h.value;
    }
  }
  std::transform(content_encoding.begin(), content_encoding.end(), content_encoding.begin(),
                 [](unsigned char c) { return std::tolower(c); });

  const bool declared = content_encoding == "gzip" || content_encoding == "x-gzip" || content_encoding == "deflate";
  // SDKs often send gzip or zlib bodies without saying so; the magic bytes tell.
  if (declared || looks_compressed(request.body)) {
    auto result = inflate_capped(request.body, limits_.max_decoded_body);
    std::string name = request.body.size() >= 2 && static_cast<unsigned char>(request.body[0]) == 0x1f ? "gzip" : "deflate";
    if (!result.ok && content_encoding == "deflate") {
      result = inflate_capped(request.body, limits_.max_decoded_body, true);  // raw deflate
      name = "deflate";
    }
    if (result.limit_hit) {
      out.incomplete.push_back("decompression_limit");
    }
    if (result.ok) {
      scan(result.data, "body", {name}, out);
      return;
    }
    if (declared) {
      out.incomplete.push_back("decode_error");
    }
  }
  scan(request.body, "body", {}, out);
}

inspect_result engine::inspect(const http_request& request) const {
  inspect_result out;
  const auto& target = request.target;
  const auto q = target.find('?');
  const std::string_view path = std::string_view(target).substr(0, q);
  scan(path, "url.path", {}, out);
  const std::string decoded_path = percent_decode(path, false);
  if (decoded_path != path) {
    scan(decoded_path, "url.path", {"url"}, out);
  }
  if (q != std::string::npos) {
    std::string_view query = std::string_view(target).substr(q + 1);
    while (!query.empty()) {
      const auto amp = query.find('&');
      const auto pair = query.substr(0, amp);
      const auto eq = pair.find('=');
      const std::string name = percent_decode(pair.substr(0, eq), true);
      const std::string_view raw_value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      const std::string value = percent_decode(raw_value, true);
      scan(value, "url.query:" + name, value == raw_value ? std::vector<std::string>{} : std::vector<std::string>{"url"}, out);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    }
  }
  for (const auto& h : request.headers) {
    scan(h.value, "header:" + h.name, {}, out);
  }
  scan_body(request, out);
  if (request.body_truncated) {
    out.incomplete.push_back("body_truncated");
  }

  // A value found both raw and decoded in one place is reported once, with its first chain.
  std::set<std::string> seen;
  std::vector<finding> unique;
  for (auto& f : out.findings) {
    if (seen.insert(f.category + '\0' + f.value + '\0' + f.where).second) {
      unique.push_back(std::move(f));
    }
  }
  out.findings = std::move(unique);
  std::sort(out.incomplete.begin(), out.incomplete.end());
  out.incomplete.erase(std::unique(out.incomplete.begin(), out.incomplete.end()), out.incomplete.end());
  return out;
}

}  // namespace leakscope::detectors
