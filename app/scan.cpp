#include "app/scan.hpp"

#include "captures/har_reader.hpp"
#include "captures/leak_builder.hpp"
#include "detectors/attribution.hpp"
#include "detectors/engine.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

namespace leakscope::app {

namespace {

// A progress line on a terminal for files big enough to make someone wait.
class progress {
 public:
  explicit progress(std::size_t total) : total_(total), enabled_(total >= 200 && ::isatty(STDERR_FILENO)) {}
  void update(std::size_t done) {
    if (!enabled_ || (done % 50 != 0 && done != total_)) {
      return;
    }
    const int width = 40;
    const auto filled = static_cast<int>(width * done / total_);
    std::cerr << "\rscanning [" << std::string(static_cast<std::size_t>(filled), '#')
              << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << done << "/" << total_ << std::flush;
    if (done == total_) {
      std::cerr << "\n";
    }
  }

 private:
  std::size_t total_;
  bool enabled_;
};

}  // namespace

int scan_har(const config::config& cfg, const scan_options& options) {
  std::ifstream in(options.har_file, std::ios::binary);
  if (!in) {
    std::cerr << "leakscope: cannot read " << options.har_file << "\n";
    return 2;
  }
  std::stringstream text;
  text << in.rdbuf();
  std::vector<std::string> skipped;
  std::vector<captures::har_request> entries;
  try {
    entries = captures::read_har(text.str(), &skipped);
  } catch (const captures::har_error& e) {
    std::cerr << "leakscope: " << options.har_file << ": " << e.what() << "\n";
    return 2;
  }
  for (const auto& s : skipped) {
    std::cerr << "leakscope: " << options.har_file << ": skipped " << s << "\n";
  }

  std::ofstream file;
  if (!options.jsonl_out.empty()) {
    file.open(options.jsonl_out, std::ios::binary | std::ios::trunc);
    if (!file) {
      std::cerr << "leakscope: cannot write " << options.jsonl_out << "\n";
      return 2;
    }
  }
  std::ostream& out = options.jsonl_out.empty() ? std::cout : file;

  const detectors::engine engine(cfg.device, detectors::engine_limits{cfg.limits.max_decoded_body});
  const auto attribution = detectors::make_attributor(cfg);
  const auto first = entries.empty() ? captures::wall_time{} : std::min_element(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
                                                                  return a.started < b.started;
                                                                })->started;
  std::map<std::string, std::map<std::string, std::uint64_t>> table;  // category -> host -> count
  std::uint64_t leaks = 0;
  bool failed = false;
  progress bar(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    detectors::http_request request;
    request.method = e.method;
    request.scheme = e.scheme;
    request.host = e.host;
    request.target = e.target;
    for (const auto& [name, value] : e.headers) {
      request.headers.push_back({name, value});
    }
    request.body = e.body;
    const auto result = engine.inspect(request);
    captures::leak_context context;
    context.flow = e.index + 1;
    context.ts = e.started;
    context.t_session_ms = std::chrono::duration_cast<std::chrono::milliseconds>(e.started - first).count();
    context.client = "har";
    context.dest = {e.host, e.server_ip, e.port, e.scheme};
    const auto who = attribution.attribute(e.host);
    context.party = who.party;
    context.party_rule = who.rule;
    context.domain = who.domain;
    if (who.sdk) {
      context.sdk = captures::sdk_info{who.sdk->sdk, who.sdk->vendor, who.sdk->category};
    }
    context.method = e.method;
    context.path = e.target.substr(0, e.target.find('?'));
    context.har_entry = e.index;
    for (const auto& f : result.findings) {
      out << captures::to_json_line(captures::make_leak(context, ++leaks, f, detectors::mask(f.value)));
      ++table[f.category][e.host];
      const bool any = std::find(options.fail_on.begin(), options.fail_on.end(), "any") != options.fail_on.end();
      if (any || std::find(options.fail_on.begin(), options.fail_on.end(), f.category) != options.fail_on.end()) {
        failed = true;
      }
    }
    bar.update(i + 1);
  }
  out.flush();

  std::cerr << options.har_file << ": " << entries.size() << " requests, " << leaks << " leaks\n";
  if (!table.empty()) {
    std::cerr << std::left << std::setw(16) << "category" << std::setw(8) << "leaks" << "destinations\n";
    for (const auto& [category, hosts] : table) {
      std::uint64_t n = 0;
      std::string list;
      for (const auto& [host, count] : hosts) {
        n += count;
        list += (list.empty() ? "" : ", ") + host + " (" + std::to_string(count) + ")";
      }
      std::cerr << std::left << std::setw(16) << category << std::setw(8) << n << list << "\n";
    }
  }
  if (failed) {
    std::cerr << "leakscope: findings match --fail-on; exit 3\n";
    return 3;
  }
  return 0;
}

}  // namespace leakscope::app
