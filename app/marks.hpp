#pragma once
// Timeline marks from outside the proxy: single keys in the `run` terminal, and the
// `leakscope mark` command that talks to a running session's control endpoint.

#include "captures/timeline.hpp"
#include "config/config.hpp"

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>

namespace leakscope::app {

// 256 random bits, hex: the control endpoint's token for one run.
std::string make_control_token();
// Writes control.token and control.json (0600) into the session folder: what `leakscope mark`
// needs to reach this run.
void write_control_files(const std::filesystem::path& session, const std::string& address, std::uint16_t port,
                         const std::string& token);

// Reads c, r, b, f (consent, refuse, background, foreground) and n (note, then a line of text)
// from a terminal on standard input; does nothing when standard input is not a terminal.
class terminal_marks {
 public:
  explicit terminal_marks(captures::timeline& timeline);
  ~terminal_marks();
  terminal_marks(const terminal_marks&) = delete;
  terminal_marks& operator=(const terminal_marks&) = delete;

 private:
  void run();
  captures::timeline& timeline_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct mark_options {
  std::string kind;
  std::string text;
  std::string session;  // "" = the newest running session under capture.dir
};

// `leakscope mark`: 0 when the running proxy recorded the mark, 2 when none could be reached.
int send_mark(const config::config& cfg, const mark_options& options);

}  // namespace leakscope::app
