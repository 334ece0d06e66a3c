#include "app/report.hpp"

#include "captures/har_writer.hpp"
#include "captures/index.hpp"
#include "captures/report.hpp"
#include "config/config.hpp"
#include "detectors/attribution.hpp"

#include <fstream>
#include <iostream>
#include <sstream>

namespace leakscope::app {

using nlohmann::json;

namespace {

json judge_records(const captures::session_records& records, const config::config& cfg) {
  captures::report_rules rules;
  rules.declared_first_party = cfg.declared.first_party;
  rules.declared_sdks = cfg.declared.sdks;
  rules.max_per_minute_default = cfg.rules.max_per_minute_default;
  rules.max_per_minute = cfg.rules.max_per_minute;
  const auto attribution = detectors::make_attributor(cfg);
  return captures::build_report(records, rules, [&](const std::string& host) { return attribution.attribute(host).party; });
}

}  // namespace

json judge(const std::filesystem::path& dir, const config::config& cfg) {
  return judge_records(captures::read_session(dir), cfg);
}

void seal_session(const std::filesystem::path& dir, const config::config& cfg, const captures::manifest_info& info) {
  if (cfg.capture.har) {
    captures::write_har(dir, info.tool_version);
  }
  captures::write_index(dir, judge(dir, cfg));
  captures::write_manifest(dir, info);
}

int report(const report_options& options) {
  const std::filesystem::path dir = options.dir;
  if (!std::filesystem::exists(dir / "leaks.jsonl")) {
    std::cerr << "leakscope: " << dir.string() << " is not a session folder (no leaks.jsonl)\n";
    return 2;
  }
  std::vector<std::string> warnings;
  auto records = captures::read_session(dir, &warnings);
  for (const auto& w : warnings) {
    std::cerr << "leakscope: " << w << "\n";
  }
  config::config cfg;
  if (!options.config.empty()) {
    cfg = config::load_config(options.config);
  } else if (std::filesystem::exists(dir / "config.yaml")) {
    // The session's copy, its relative paths resolved where the original lived.
    std::ifstream in(dir / "config.yaml");
    std::stringstream text;
    text << in.rdbuf();
    const std::string original = records.session.value("config", "");
    const auto base = original.empty() ? dir : std::filesystem::path(original).parent_path();
    try {
      cfg = config::parse_config(text.str(), (dir / "config.yaml").string(), base);
    } catch (const config::config_error& e) {
      std::cerr << "leakscope: the session's config does not load here (" << e.what()
                << "); judging with the defaults, give -c CONFIG to use your declarations\n";
      cfg = config::default_config(dir);
    }
  } else {
    cfg = config::default_config(dir);
  }

  const auto result = judge_records(records, cfg);

  std::string text;
  if (options.format == "json") {
    text = result.dump(2) + "\n";
  } else if (options.format == "md") {
    text = captures::report_markdown(result);
  } else {
    text = captures::report_html(result);
  }
  std::string out = options.out;
  if (out.empty() && options.format == "html") {
    out = (dir / "report.html").string();
  }
  if (out.empty()) {
    std::cout << text;
  } else {
    std::ofstream file(out, std::ios::binary | std::ios::trunc);
    file << text;
    if (!file.flush()) {
      std::cerr << "leakscope: cannot write " << out << "\n";
      return 2;
    }
    std::cerr << "report written to " << out << "\n";
  }

  std::map<std::string, std::size_t> per_rule;
  for (const auto& f : result["findings"]) {
    ++per_rule[f.value("rule", "")];
  }
  std::cerr << "findings:";
  for (const char* r : {"R1", "R2", "R3", "R4", "R5", "R6"}) {
    std::cerr << " " << r << "=" << per_rule[r];
  }
  std::cerr << ", limits: " << result["limits"].size() << "\n";
  for (const auto& rule : options.fail_on) {
    if (per_rule[rule] > 0) {
      std::cerr << "leakscope: rule " << rule << " has findings; exit 3\n";
      return 3;
    }
  }
  return 0;
}

}  // namespace leakscope::app
