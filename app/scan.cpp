#include "app/scan.hpp"

#include "app/report.hpp"

#include "captures/har_reader.hpp"
#include "captures/leak_builder.hpp"
#include "captures/har_writer.hpp"
#include "captures/manifest.hpp"
#include "captures/recorder.hpp"

#include <nlohmann/json.hpp>
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

// "consent@2026-11-23T10:00:05+08:00" or "note:opened settings@…".
std::optional<captures::mark_record> parse_mark(const std::string& spec) {
  const auto at = spec.rfind('@');
  if (at == std::string::npos) {
    return std::nullopt;
  }
  captures::mark_record m;
  m.kind = spec.substr(0, at);
  if (m.kind.rfind("note:", 0) == 0) {
    m.text = m.kind.substr(5);
    m.kind = "note";
  }
  const auto t = captures::parse_iso8601(spec.substr(at + 1));
  if (!captures::is_mark_kind(m.kind) || !t || (m.kind == "note" && m.text.empty())) {
    return std::nullopt;
  }
  m.ts = *t;
  m.source = "cli";
  return m;
}

}  // namespace

void write_session_info(const std::filesystem::path& dir, const config::config& cfg, const nlohmann::json& info) {
  using std::filesystem::perms;
  std::ofstream(dir / "session.json") << info.dump(2) << "\n";
  std::filesystem::permissions(dir / "session.json", perms::owner_read | perms::owner_write);
  if (!cfg.source.empty()) {
    // The config the session was made with, so `leakscope report DIR` judges it by the same
    // declarations and limits.
    std::filesystem::copy_file(cfg.source, dir / "config.yaml", std::filesystem::copy_options::overwrite_existing);
    std::filesystem::permissions(dir / "config.yaml", perms::owner_read | perms::owner_write);
  }
}

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

  std::vector<captures::mark_record> marks;
  for (const auto& spec : options.marks) {
    auto m = parse_mark(spec);
    if (!m) {
      std::cerr << "leakscope: --mark " << spec
                << ": expected KIND@TIME, e.g. consent@2026-11-23T10:00:05+08:00 (kinds: consent, refuse, background, "
                   "foreground, note:TEXT)\n";
      return 2;
    }
    marks.push_back(*m);
  }
  std::sort(marks.begin(), marks.end(), [](const auto& a, const auto& b) { return a.ts < b.ts; });

  std::ofstream file;
  std::unique_ptr<captures::recorder> recorder;
  if (!options.out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.out_dir, ec);
    if (ec || !std::filesystem::is_empty(options.out_dir)) {
      std::cerr << "leakscope: --out " << options.out_dir << " must be a new or empty folder\n";
      return 2;
    }
    std::filesystem::permissions(options.out_dir, std::filesystem::perms::owner_all);
    recorder = std::make_unique<captures::recorder>(options.out_dir);
  } else if (!options.jsonl_out.empty()) {
    file.open(options.jsonl_out, std::ios::binary | std::ios::trunc);
    if (!file) {
      std::cerr << "leakscope: cannot write " << options.jsonl_out << "\n";
      return 2;
    }
  }
  std::ostream& out = options.jsonl_out.empty() ? std::cout : file;

  const detectors::engine engine(cfg.device, detectors::engine_limits{cfg.limits.max_decoded_body});
  const auto attribution = detectors::make_attributor(cfg);
  // The session starts at the first entry (or the first mark, if one comes earlier).
  auto first = entries.empty() ? captures::wall_time{} : std::min_element(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
                                                            return a.started < b.started;
                                                          })->started;
  if (!marks.empty() && (entries.empty() || marks.front().ts < first)) {
    first = marks.front().ts;
  }
  auto session_ms = [&](captures::wall_time t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t - first).count();
  };
  std::optional<std::int64_t> consent;
  for (std::size_t i = 0; i < marks.size(); ++i) {
    marks[i].id = i + 1;
    marks[i].t_session_ms = session_ms(marks[i].ts);
    if (marks[i].kind == "consent" && !consent) {
      consent = marks[i].t_session_ms;
    }
    if (recorder) {
      recorder->write(marks[i]);
    }
  }
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
    context.t_session_ms = session_ms(e.started);
    if (consent) {
      context.t_consent_ms = context.t_session_ms - *consent;
    }
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
      const auto leak = captures::make_leak(context, ++leaks, f, detectors::mask(f.value));
      if (recorder) {
        recorder->write(leak);
      } else {
        out << captures::to_json_line(leak);
      }
      ++table[f.category][e.host];
      const bool any = std::find(options.fail_on.begin(), options.fail_on.end(), "any") != options.fail_on.end();
      if (any || std::find(options.fail_on.begin(), options.fail_on.end(), f.category) != options.fail_on.end()) {
        failed = true;
      }
    }
    if (recorder) {
      captures::flow_record flow;
      flow.id = context.flow;
      flow.client = "har";
      flow.dest = context.dest;
      flow.kind = e.scheme;
      flow.method = e.method;
      flow.url = e.url;
      flow.status = e.status;
      flow.bytes_up = e.body.size();
      flow.start = e.started;
      flow.total_ms = e.time_ms;
      flow.incomplete = result.incomplete;
      flow.leaks = result.findings.size();
      flow.note = "har_entry " + std::to_string(e.index);
      captures::exchange_record ex;
      ex.flow = flow.id;
      ex.request_headers = e.headers;
      ex.request_body = e.body;
      ex.request_body_size = e.body.size();
      ex.status = e.status;
      recorder->write(ex);
      recorder->write(flow);
    }
    bar.update(i + 1);
  }
  out.flush();
  if (recorder) {
    recorder->close();
    const auto summary = recorder->summary();
    write_session_info(options.out_dir, cfg,
                       {{"source", "har"},
                        {"har_file", std::filesystem::absolute(options.har_file).string()},
                        {"start", captures::iso8601(first)},
                        {"entries", entries.size()},
                        {"config", cfg.source.string()}});
    seal_session(options.out_dir, cfg,
                 {LEAKSCOPE_VERSION, LEAKSCOPE_GIT_COMMIT, "", captures::iso8601(first),
                  captures::iso8601(std::chrono::system_clock::now()), summary.leaks, summary.leaks_chain_head});
    std::cerr << "session folder " << options.out_dir << "\n";
  }

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
