#include "detectors/attribution.hpp"

#include <arpa/inet.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace leakscope::detectors {

bool host_matches_suffix(const std::string& host, const std::string& suffix) {
  if (suffix.empty() || host.size() < suffix.size()) {
    return false;
  }
  if (host.size() == suffix.size()) {
    return host == suffix;
  }
  return host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0 &&
         host[host.size() - suffix.size() - 1] == '.';
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

public_suffix_list::public_suffix_list(const std::string& text) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    // Rules end at the first whitespace; comments start with "//".
    const auto end = line.find_first_of(" \t\r");
    line = line.substr(0, end);
    if (line.empty() || line.rfind("//", 0) == 0) {
      continue;
    }
    for (auto& c : line) {
      if (static_cast<unsigned char>(c) < 0x80) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
    }
    if (line[0] == '!') {
      exception_.insert(line.substr(1));
    } else if (line.rfind("*.", 0) == 0) {
      wildcard_.insert(line.substr(2));
    } else {
      normal_.insert(line);
    }
  }
}

public_suffix_list public_suffix_list::load_system() {
  for (const char* path : {"/usr/share/publicsuffix/public_suffix_list.dat", "/usr/share/publicsuffix/effective_tld_names.dat"}) {
    std::ifstream in(path);
    if (in) {
      std::stringstream text;
      text << in.rdbuf();
      return public_suffix_list(text.str());
    }
  }
  throw std::runtime_error("the public suffix list is missing (/usr/share/publicsuffix; install the publicsuffix package)");
}

std::string public_suffix_list::registrable_domain(const std::string& host_in) const {
  std::string host = host_in;
  for (auto& c : host) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  while (!host.empty() && host.back() == '.') {
    host.pop_back();
  }
  if (host.empty() || is_ip_literal(host)) {
    return {};
  }
  std::vector<std::size_t> starts = {0};  // where each label begins
  for (std::size_t i = 0; i < host.size(); ++i) {
    if (host[i] == '.') {
      starts.push_back(i + 1);
    }
  }
  const std::size_t n = starts.size();
  // The public suffix starts at label `suffix_at`; the longest matching rule wins, exceptions first.
  std::size_t suffix_at = n - 1;  // the default rule "*": the last label
  for (std::size_t i = 0; i < n; ++i) {
    const std::string candidate = host.substr(starts[i]);
    if (exception_.count(candidate)) {
      suffix_at = i + 1;
      break;
    }
    if (normal_.count(candidate)) {
      suffix_at = i;
      break;
    }
    if (i + 1 < n && wildcard_.count(host.substr(starts[i + 1]))) {
      suffix_at = i;
      break;
    }
  }
  if (suffix_at == 0 || suffix_at > n) {
    return {};  // the host is itself a public suffix
  }
  return host.substr(starts[suffix_at - 1]);
}

attributor::attributor(std::vector<config::sdk_entry> catalog, std::vector<std::string> first_party,
                       public_suffix_list psl)
    : first_party_(std::move(first_party)), psl_(std::move(psl)) {
  for (auto& e : catalog) {
    by_domain_[e.domain] = std::move(e);
  }
}

attribution attributor::attribute(const std::string& host_in) const {
  std::string host = host_in;
  for (auto& c : host) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  while (!host.empty() && host.back() == '.') {
    host.pop_back();
  }
  attribution a;
  for (const auto& suffix : first_party_) {
    if (host_matches_suffix(host, suffix)) {
      a.party = "first";
      a.domain = suffix;
      a.rule = "app.first_party: " + suffix;
      break;
    }
  }
  // Longest catalog suffix: the host itself, then each parent domain.
  for (std::size_t pos = 0; pos != std::string::npos;) {
    const auto it = by_domain_.find(host.substr(pos));
    if (it != by_domain_.end()) {
      a.sdk = it->second;
      break;
    }
    pos = host.find('.', pos);
    pos = pos == std::string::npos ? pos : pos + 1;
  }
  if (!a.party.empty()) {
    return a;  // the app's own domains are first party even when an SDK shares them
  }
  if (a.sdk) {
    a.party = "third";
    a.domain = a.sdk->domain;
    a.rule = "sdk_catalog: " + a.sdk->domain;
    return a;
  }
  if (is_ip_literal(host)) {
    a.party = "unknown";
    a.domain = host;
    a.rule = "ip literal: no name to attribute (list it in app.first_party if it is the app's)";
    return a;
  }
  a.party = "third";
  a.domain = psl_.registrable_domain(host);
  if (a.domain.empty()) {
    a.domain = host;
  }
  a.rule = "other domain: " + a.domain;
  return a;
}

attributor make_attributor(const config::config& cfg) {
  public_suffix_list psl;
  try {
    psl = public_suffix_list::load_system();
  } catch (const std::exception& e) {
    std::cerr << "leakscope: " << e.what() << "; grouping unknown hosts by their last two labels\n";
  }
  return attributor(config::load_sdk_catalogs(cfg), cfg.app.first_party, std::move(psl));
}

std::string party_of(const std::string& host, const std::vector<std::string>& first_party) {
  for (const auto& suffix : first_party) {
    if (host_matches_suffix(host, suffix)) {
      return "first";
    }
  }
  return is_ip_literal(host) ? "unknown" : "third";
}

}  // namespace leakscope::detectors
