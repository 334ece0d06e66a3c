#pragma once
// `leakscope report DIR`: the session's leaks judged rule by rule.

#include "captures/manifest.hpp"
#include "config/config.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
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

// The findings of the session folder `dir` judged by `cfg`'s declarations (build_report's JSON).
nlohmann::json judge(const std::filesystem::path& dir, const config::config& cfg);

// Ends a session folder: flows.har (when capture.har), session.sqlite, then manifest.json over
// everything.
void seal_session(const std::filesystem::path& dir, const config::config& cfg, const captures::manifest_info& info);

}  // namespace leakscope::app
