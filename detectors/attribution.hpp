#pragma once
// Who received a request: the app itself (first party) or someone else. The SDK catalog
// refines "third" into a named SDK in a later step; this is the rule both build on.

#include <string>
#include <vector>

namespace leakscope::detectors {

// "first" when `host` equals or ends in ".<suffix>" for one of `first_party`; "unknown" for IP
// literals (no name to attribute); otherwise "third".
std::string party_of(const std::string& host, const std::vector<std::string>& first_party);

// True when `host` is `suffix` or a subdomain of it (label-aligned: "xumeng.com" is not umeng.com).
bool host_matches_suffix(const std::string& host, const std::string& suffix);

}  // namespace leakscope::detectors
