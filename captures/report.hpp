#pragma once
// Findings: leaks turned into rule-by-rule statements with their evidence, as a technician
// hands them in ("Umeng received the IMEI 0.8 s before consent, 14 times"). Pure: records in,
// report out; renderers produce JSON, Markdown and one self-contained HTML file.

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace leakscope::captures {

// What the privacy policy declares and the frequency limits (from the config).
struct report_rules {
  std::vector<std::string> declared_first_party;                 // categories
  std::map<std::string, std::vector<std::string>> declared_sdks;  // SDK name (or domain) -> categories
  unsigned max_per_minute_default = 1;
  std::map<std::string, unsigned> max_per_minute;  // per category
};

struct session_records {
  nlohmann::json session = nlohmann::json::object();  // session.json
  std::vector<nlohmann::json> leaks, flows, marks;    // the JSONL files, line by line
  std::vector<nlohmann::json> exchanges;              // exchanges.jsonl, for build_har; read_session leaves it empty
};

// Rules R1-R6 and the limits of the evidence. `party_of_host` tells first/third/unknown for a
// host that has no leak record (the destinations of opaque bodies).
nlohmann::json build_report(const session_records& records, const report_rules& rules,
                            const std::function<std::string(const std::string&)>& party_of_host);

std::string report_markdown(const nlohmann::json& report);
std::string report_html(const nlohmann::json& report);

}  // namespace leakscope::captures
