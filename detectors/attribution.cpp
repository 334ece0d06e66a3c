#include "detectors/attribution.hpp"

#include <arpa/inet.h>

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

std::string party_of(const std::string& host, const std::vector<std::string>& first_party) {
  for (const auto& suffix : first_party) {
    if (host_matches_suffix(host, suffix)) {
      return "first";
    }
  }
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1) {
    return "unknown";
  }
  return "third";
}

}  // namespace leakscope::detectors
