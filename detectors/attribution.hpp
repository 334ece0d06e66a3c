#pragma once
// Who received a request: the app itself (first party), a known SDK, or another domain, and
// which rule decided it. Pure: the public suffix list and the catalog are given as data.

#include "config/config.hpp"

#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace leakscope::detectors {

// True when `host` is `suffix` or a subdomain of it (label-aligned: "xumeng.com" is not umeng.com).
bool host_matches_suffix(const std::string& host, const std::string& suffix);
bool is_ip_literal(const std::string& host);

// The Mozilla public suffix list (https://publicsuffix.org/list/): normal, wildcard and
// exception rules, ICANN and private sections alike.
class public_suffix_list {
 public:
  // Parses the list's text format; an empty list treats every TLD as the public suffix.
  explicit public_suffix_list(const std::string& text = "");
  // Reads Debian's copy (package publicsuffix); throws std::runtime_error when it is missing.
  static public_suffix_list load_system();

  // "alog.umeng.com" -> "umeng.com"; "a.b.github.io" -> "b.github.io"; "" for a public suffix
  // itself or an IP literal.
  std::string registrable_domain(const std::string& host) const;
  std::size_t rule_count() const { return normal_.size() + wildcard_.size() + exception_.size(); }

 private:
  std::unordered_set<std::string> normal_, wildcard_, exception_;
};

struct attribution {
  std::string party;  // "first", "third" or "unknown"
  std::optional<config::sdk_entry> sdk;
  std::string domain;  // the SDK's catalog domain, else the registrable domain, else the host
  std::string rule;    // what decided: "app.first_party: demo.example", "sdk_catalog: umeng.com", …
};

class attributor {
 public:
  attributor(std::vector<config::sdk_entry> catalog, std::vector<std::string> first_party, public_suffix_list psl);

  attribution attribute(const std::string& host) const;

 private:
  std::unordered_map<std::string, config::sdk_entry> by_domain_;  // later catalog rows win
  std::vector<std::string> first_party_;
  public_suffix_list psl_;
};

// The catalog from config plus the system public suffix list; falls back to an empty list (every
// TLD a suffix) with a warning on stderr when the publicsuffix package is missing.
attributor make_attributor(const config::config& cfg);

// Kept for callers that only need the party by the first-party rule.
std::string party_of(const std::string& host, const std::vector<std::string>& first_party);

}  // namespace leakscope::detectors
