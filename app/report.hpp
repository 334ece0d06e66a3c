#pragma once
// `leakscope report DIR`: the session's leaks judged rule by rule.

#include <string>
#include <vector>

namespace leakscope::app {

struct report_options {
  std::string dir;
  std::string config;  // "" = DIR/config.yaml when present, else the defaults
  std::string format = "html";
  std::string out;  // "" = DIR/report.<format> for html, standard output otherwise
  std::vector<std::string> fail_on;  // rule ids
};

// 0 done, 2 unreadable session, 3 a rule in --fail-on has findings.
int report(const report_options& options);

}  // namespace leakscope::app
