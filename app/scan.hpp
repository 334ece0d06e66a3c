#pragma once
// `leakscope scan traffic.har`: the detector engine over recorded traffic.

#include "config/config.hpp"

#include <string>
#include <vector>

namespace leakscope::app {

struct scan_options {
  std::string har_file;
  std::string jsonl_out;             // "" = standard output
  std::vector<std::string> fail_on;  // categories, or {"any"}
};

// Exit codes: 0 done, 2 unreadable input, 3 a finding matched --fail-on.
int scan_har(const config::config& cfg, const scan_options& options);

}  // namespace leakscope::app
