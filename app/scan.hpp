#pragma once
// `leakscope scan traffic.har`: the detector engine over recorded traffic.

#include "config/config.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>

#include <string>
#include <vector>

namespace leakscope::app {

struct scan_options {
  std::string har_file;
  std::string jsonl_out;             // "" = standard output
  std::vector<std::string> fail_on;  // categories, or {"any"}
  std::string out_dir;               // make a session folder here instead of printing records
  std::vector<std::string> marks;    // "consent@2026-11-23T10:00:05+08:00", "note:opened settings@…"
};

// Exit codes: 0 done, 2 unreadable input, 3 a finding matched --fail-on.
int scan_har(const config::config& cfg, const scan_options& options);

// session.json (what the session is) and config.yaml (a copy of the config it was made with).
void write_session_info(const std::filesystem::path& dir, const config::config& cfg, const nlohmann::json& info);

}  // namespace leakscope::app
