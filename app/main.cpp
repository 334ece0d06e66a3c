// The leakscope command: wires config, CA, detectors, proxy and the session writer together.

#include "app/allocator.hpp"
#include "app/marks.hpp"
#include "app/report.hpp"
#include "app/scan.hpp"
#include "captures/har_writer.hpp"
#include "captures/index.hpp"
#include "captures/manifest.hpp"
#include "captures/recorder.hpp"
#include "certs/ca.hpp"
#include "config/config.hpp"
#include "detectors/engine.hpp"
#include "proxy/server.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <fstream>
#include <functional>
#include <iostream>
#include <thread>

namespace {

using namespace leakscope;
using app::scan_options;

constexpr const char* version = LEAKSCOPE_VERSION;

config::config load(const std::string& path) {
  if (path.empty()) {
    // No -c: the default config next to the working directory, else built-in defaults.
    const std::filesystem::path fallback = "config/leakscope.yaml";
    if (std::filesystem::exists(fallback)) {
      return config::load_config(fallback);
    }
    return config::default_config(std::filesystem::current_path());
  }
  return config::load_config(path);
}

std::string join(const std::vector<config::cidr>& blocks) {
  std::string out;
  for (const auto& b : blocks) {
    out += (out.empty() ? "" : ", ") + b.text;
  }
  return out;
}

void print_banner(const config::config& cfg, const certs::certificate_authority& ca,
                  const boost::asio::ip::tcp::endpoint& listen, const boost::asio::ip::tcp::endpoint& control,
                  const std::filesystem::path& session, std::size_t known_forms) {
  const auto address = listen.address().to_string();
  std::cout << "leakscope " << version << "\n"
            << "Listening on     " << address << ":" << listen.port() << " ("
            << (cfg.listen.mode == config::listen_mode::explicit_proxy ? "explicit proxy" : "transparent") << ")\n"
            << "CA certificate   " << ca.cert_file().string() << (ca.created() ? "  (created now, unique to this install)" : "")
            << "\n"
            << "CA SHA-256       " << ca.sha256_fingerprint() << "\n"
            << "Session folder   " << session.string() << "\n"
            << "Device profile   " << known_forms << " value forms to look for\n"
            << "Control          " << control.address().to_string() << ":" << control.port() << " (marks; token in "
            << (session / "control.token").string() << ")\n"
            << "\n"
            << "Point a phone at it:\n";
  if (listen.address().is_loopback()) {
    std::cout << "  0. This address is loopback only: a phone cannot reach it. Set listen.address to this\n"
              << "     machine's Wi-Fi address and add the phone's subnet to clients.allow (now: "
              << join(cfg.clients.allow) << ").\n";
  }
  std::cout << "  1. Phone Wi-Fi settings -> this network -> Proxy: Manual; host " << address << ", port "
            << listen.port() << ".\n"
            << "  2. Install the CA: `leakscope ca export --format android` (system store, rooted or emulator)\n"
            << "     or `--format der` (Android user store, iOS profile; then enable full trust on iOS).\n"
            << "  3. Check: curl -x http://" << address << ":" << listen.port() << " --cacert "
            << ca.cert_file().string() << " https://example.com/\n"
            << "Timeline marks:  `leakscope mark consent|refuse|background|foreground|note TEXT`\n"
            << "Press Ctrl-C to stop and see the summary.\n"
            << std::flush;
}

void print_summary(const captures::session_summary& s, const std::filesystem::path& session) {
  std::cout << "\nSession " << session.filename().string() << ": " << s.flows << " flows, " << s.leaks << " leaks\n";
  if (!s.leaks_by_category.empty()) {
    std::cout << "Leaks by category:\n";
    for (const auto& [category, n] : s.leaks_by_category) {
      std::cout << "  " << category << ": " << n << "\n";
    }
    std::cout << "Leaks by destination:\n";
    for (const auto& [host, n] : s.leaks_by_destination) {
      std::cout << "  " << host << ": " << n << "\n";
    }
  }
  if (s.write_errors > 0) {
    std::cout << "WARNING: " << s.write_errors << " records could not be written (see the messages above)\n";
  }
  std::cout << "Evidence in " << session.string() << "\n" << std::flush;
}

int run(const std::string& config_path) {
  app::keep_freed_memory();
  const auto cfg = load(config_path);
  const auto ca = certs::certificate_authority::load_or_create(cfg.ca.dir);
  const detectors::engine engine(cfg.device, detectors::engine_limits{cfg.limits.max_decoded_body});
  const auto attribution = detectors::make_attributor(cfg);
  const auto wall_start = std::chrono::system_clock::now();
  const auto steady_start = std::chrono::steady_clock::now();
  const auto session = captures::create_session_dir(cfg.capture.dir, wall_start);
  captures::recorder recorder(session, cfg.capture.pcapng);
  captures::timeline timeline(recorder, wall_start, steady_start);
  const std::string token = app::make_control_token();
  proxy::server server(cfg, ca, engine, attribution, recorder, timeline, token);
  // Written before run() accepts anything, with the port actually bound (control.port may be 0).
  app::write_control_files(session, cfg.control.address, server.control_endpoint().port(), token);
  app::write_session_info(session, cfg,
                          {{"source", "proxy"},
                           {"start", captures::iso8601(wall_start)},
                           {"listen", server.local_endpoint().address().to_string() + ":" +
                                          std::to_string(server.local_endpoint().port())},
                           {"config", cfg.source.string()}});
  print_banner(cfg, ca, server.local_endpoint(), server.control_endpoint(), session, engine.known_form_count());
  app::terminal_marks keys(timeline);

  // What a burst of traffic left free goes back to the kernel every few seconds: a lab's proxy
  // runs for hours, mostly holding idle connections (app/allocator.hpp).
  boost::asio::steady_timer release_timer(server.io());
  std::function<void()> schedule_release = [&] {
    release_timer.expires_after(std::chrono::seconds(2));
    release_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) {
        app::release_free_memory();
        schedule_release();
      }
    });
  };
  schedule_release();

  boost::asio::signal_set signals(server.io(), SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) {
      return;
    }
    server.stop();
    signals.async_wait([&](const boost::system::error_code& e2, int) {
      if (!e2) {
        server.halt();  // a second Ctrl-C: stop now
      }
    });
  });
  server.run(std::max(1u, std::thread::hardware_concurrency()));
  recorder.close();
  // Sealing reads the session back a record at a time; what the proxy freed is returned first,
  // so the process's peak stays that of the traffic rather than traffic plus sealing.
  app::release_free_memory();
  const auto summary = recorder.summary();
  bool sealed = true;
  try {
    app::seal_session(session, cfg,
                      {version, LEAKSCOPE_GIT_COMMIT, ca.sha256_fingerprint(), captures::iso8601(wall_start),
                       captures::iso8601(std::chrono::system_clock::now()), summary.leaks, summary.leaks_chain_head});
  } catch (const std::exception& e) {
    // The logs are on disk; what failed was deriving HAR, index or manifest from them.
    std::cerr << "leakscope: cannot seal the session (" << e.what() << "); the logs are kept, run "
              << "`leakscope har`, `leakscope index` when there is room\n";
    sealed = false;
  }
  print_summary(summary, session);
  return sealed && summary.write_errors == 0 ? 0 : 1;
}

int ca_export(const std::string& config_path, const std::string& format, const std::string& out) {
  const auto cfg = load(config_path);
  const auto ca = certs::certificate_authority::load_or_create(cfg.ca.dir);
  if (format == "android") {
    const std::filesystem::path dir = out.empty() ? std::filesystem::current_path() : std::filesystem::path(out);
    const auto file = dir / ca.android_file_name();
    std::ofstream f(file, std::ios::binary);
    f << ca.pem();
    if (!f.flush()) {
      std::cerr << "leakscope: cannot write " << file.string() << "\n";
      return 1;
    }
    std::cout << file.string() << "\n"
              << "Copy it to /system/etc/security/cacerts/ (rooted phone or emulator image), chmod 644, reboot.\n";
    return 0;
  }
  std::string bytes;
  if (format == "pem") {
    bytes = ca.pem();
  } else {
    const auto der = ca.der();
    bytes.assign(der.begin(), der.end());
  }
  if (out.empty()) {
    std::cout.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::cout.flush();
    return 0;
  }
  std::ofstream f(out, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f.flush()) {
    std::cerr << "leakscope: cannot write " << out << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"leakscope: an intercepting TLS proxy that finds personal data leaving a test phone"};
  app.set_version_flag("--version", version);
  app.require_subcommand(1);
  std::string config_path;

  auto* run_cmd = app.add_subcommand("run", "start the proxy and record a session");
  run_cmd->add_option("-c,--config", config_path, "config file (default: config/leakscope.yaml)");

  auto* ca_cmd = app.add_subcommand("ca", "the local certificate authority");
  ca_cmd->require_subcommand(1);
  auto* export_cmd = ca_cmd->add_subcommand("export", "write the CA certificate for installing on a phone");
  std::string format = "pem";
  std::string out;
  export_cmd->add_option("--format", format, "pem, der (iOS profile, Android user store) or android (system store file)")
      ->check(CLI::IsMember({"pem", "der", "android"}));
  export_cmd->add_option("-o,--out", out, "output file (pem, der) or folder (android); default stdout / current folder");
  export_cmd->add_option("-c,--config", config_path, "config file (for ca.dir)");

  auto* mark_cmd = app.add_subcommand("mark", "add a timeline mark to the running session");
  app::mark_options mark;
  mark_cmd->add_option("kind", mark.kind, "consent, refuse, background, foreground or note")
      ->required()
      ->check(CLI::IsMember({"consent", "refuse", "background", "foreground", "note"}));
  mark_cmd->add_option("text", mark.text, "the note's text");
  mark_cmd->add_option("-c,--config", config_path, "config file (for capture.dir)");
  mark_cmd->add_option("--session", mark.session, "session folder (default: the newest running one)");

  auto* har_cmd = app.add_subcommand("har", "(re)build DIR/flows.har from the session's logs");
  std::string har_dir;
  har_cmd->add_option("dir", har_dir, "session folder")->required();

  auto* index_cmd = app.add_subcommand("index", "(re)build DIR/session.sqlite from the session's logs");
  std::string index_dir;
  index_cmd->add_option("dir", index_dir, "session folder")->required();
  index_cmd->add_option("-c,--config", config_path, "config with the declarations (for the findings table)");

  auto* verify_cmd = app.add_subcommand("verify", "re-check a session folder against its manifest and hash chain");
  std::string verify_dir;
  verify_cmd->add_option("dir", verify_dir, "session folder")->required();

  auto* report_cmd = app.add_subcommand("report", "judge a session's leaks rule by rule (R1-R6)");
  app::report_options report;
  report_cmd->add_option("dir", report.dir, "session folder (captures/<id>, or one made by scan --out)")->required();
  report_cmd->add_option("-c,--config", report.config, "config with the declarations (default: the session's copy)");
  report_cmd->add_option("--format", report.format, "html (default, written to DIR/report.html), md or json")
      ->check(CLI::IsMember({"html", "md", "json"}));
  report_cmd->add_option("--out", report.out, "output file (default: DIR/report.html for html, stdout otherwise)");
  report_cmd->add_option("--fail-on", report.fail_on, "exit 3 when these rules have findings, e.g. R1,R3")
      ->delimiter(',')
      ->check(CLI::IsMember({"R1", "R2", "R3", "R4", "R5", "R6"}));

  auto* scan_cmd = app.add_subcommand("scan", "run the detectors over a HAR file and print leak records");
  scan_options scan;
  scan_cmd->add_option("har", scan.har_file, "HAR 1.2 file (browsers, mitmproxy, HTTP Toolkit)")->required();
  scan_cmd->add_option("-c,--config", config_path, "config file (device profile, first-party domains)");
  scan_cmd->add_option("--jsonl", scan.jsonl_out, "write leak records here instead of standard output");
  scan_cmd->add_option("--out", scan.out_dir, "make a session folder here (leaks, flows, marks) for `leakscope report`");
  scan_cmd->add_option("--mark", scan.marks, "a timeline mark, KIND@ISO-8601-TIME (consent, refuse, background, foreground, note:TEXT)");
  scan_cmd->add_option("--fail-on", scan.fail_on, "exit 3 when a finding is in one of these categories (or any)")
      ->delimiter(',')
      ->check([](const std::string& v) {
        return v == "any" || config::is_category(v) ? std::string() : "unknown category " + v;
      });

  CLI11_PARSE(app, argc, argv);
  try {
    if (*run_cmd) {
      return run(config_path);
    }
    if (*export_cmd) {
      return ca_export(config_path, format, out);
    }
    if (*har_cmd) {
      const auto entries = captures::write_har(har_dir, version);
      std::cout << (std::filesystem::path(har_dir) / "flows.har").string() << ": " << entries << " entries\n";
      return 0;
    }
    if (*index_cmd) {
      const auto cfg = config_path.empty() && std::filesystem::exists(std::filesystem::path(index_dir) / "config.yaml")
                           ? config::load_config(std::filesystem::path(index_dir) / "config.yaml")
                           : load(config_path);
      captures::write_index(index_dir, app::judge(index_dir, cfg));
      std::cout << (std::filesystem::path(index_dir) / "session.sqlite").string() << " rebuilt\n";
      return 0;
    }
    if (*verify_cmd) {
      const auto result = captures::verify_session(verify_dir);
      for (const auto& p : result.problems) {
        std::cout << p << "\n";
      }
      if (result.intact) {
        std::cout << verify_dir << ": intact (" << result.files << " files, " << result.leaks
                  << " chained leak records)\n";
        return 0;
      }
      std::cout << verify_dir << ": NOT intact (" << result.problems.size() << " problems)\n";
      return 1;
    }
    if (*report_cmd) {
      return app::report(report);
    }
    if (*mark_cmd) {
      if (mark.kind == "note" && mark.text.empty()) {
        std::cerr << "leakscope: a note needs a text: leakscope mark note \"opened the settings page\"\n";
        return 2;
      }
      return app::send_mark(load(config_path), mark);
    }
    if (*scan_cmd) {
      app::keep_freed_memory();  // one tree per HAR entry, thousands of entries
      return app::scan_har(load(config_path), scan);
    }
  } catch (const std::exception& e) {
    std::cerr << "leakscope: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
