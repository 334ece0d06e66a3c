#include "app/marks.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <openssl/rand.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

namespace leakscope::app {

using nlohmann::json;

namespace {

void write_private(const std::filesystem::path& file, const std::string& text) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    if (fd >= 0) {
      ::close(fd);
    }
    throw std::runtime_error(file.string() + ": cannot write (" + std::strerror(errno) + ")");
  }
  ::close(fd);
}

std::string read_all(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string make_control_token() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    throw std::runtime_error("cannot generate the control token");
  }
  std::string token;
  char hex[3];
  for (const unsigned char b : raw) {
    std::snprintf(hex, sizeof hex, "%02x", b);
    token += hex;
  }
  return token;
}

void write_control_files(const std::filesystem::path& session, const std::string& address, std::uint16_t port,
                         const std::string& token) {
  write_private(session / "control.token", token + "\n");
  write_private(session / "control.json",
                json{{"address", address}, {"port", port}, {"pid", ::getpid()}}.dump() + "\n");
}

terminal_marks::terminal_marks(captures::timeline& timeline) : timeline_(timeline) {
  if (::isatty(STDIN_FILENO)) {
    std::cout << "Marks: c consent, r refuse, b background, f foreground, n note\n" << std::flush;
    thread_ = std::thread([this] { run(); });
  }
}

terminal_marks::~terminal_marks() {
  stop_ = true;
  if (thread_.joinable()) {
    thread_.join();
  }
}

void terminal_marks::run() {
  termios saved{};
  ::tcgetattr(STDIN_FILENO, &saved);
  termios raw = saved;
  raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  ::tcsetattr(STDIN_FILENO, TCSANOW, &raw);
  auto announce = [](const captures::mark_record& m) {
    std::cout << "mark " << m.kind << (m.text.empty() ? "" : " \"" + m.text + "\"") << " at "
              << static_cast<double>(m.t_session_ms) / 1000.0 << " s\n"
              << std::flush;
  };
  while (!stop_) {
    pollfd p{STDIN_FILENO, POLLIN, 0};
    // A short poll so the thread notices the end of the session; the terminal is not a
    // synchronisation point for anything else.
    if (::poll(&p, 1, 200) <= 0) {
      continue;
    }
    char c = 0;
    if (::read(STDIN_FILENO, &c, 1) != 1) {
      break;
    }
    const char* kind = c == 'c' ? "consent" : c == 'r' ? "refuse" : c == 'b' ? "background" : c == 'f' ? "foreground" : nullptr;
    if (kind != nullptr) {
      announce(timeline_.add(kind, "", "terminal"));
    } else if (c == 'n') {
      ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
      std::cout << "note: " << std::flush;
      std::string text;
      std::getline(std::cin, text);
      if (!text.empty()) {
        announce(timeline_.add("note", text, "terminal"));
      }
      ::tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
  }
  ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
}

int send_mark(const config::config& cfg, const mark_options& options) {
  // Find the session: the one given, else the newest under capture.dir whose proxy still runs.
  std::filesystem::path session = options.session;
  if (session.empty()) {
    std::filesystem::file_time_type newest{};
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(cfg.capture.dir, ec)) {
      const auto control = entry.path() / "control.json";
      if (!std::filesystem::exists(control)) {
        continue;
      }
      const json info = json::parse(read_all(control), nullptr, false);
      if (info.is_discarded() || !info.contains("pid") || ::kill(info["pid"].get<int>(), 0) != 0) {
        continue;
      }
      const auto t = std::filesystem::last_write_time(control, ec);
      if (session.empty() || t > newest) {
        session = entry.path();
        newest = t;
      }
    }
    if (session.empty()) {
      std::cerr << "leakscope: no running session under " << cfg.capture.dir.string()
                << " (start `leakscope run`, or give --session DIR)\n";
      return 2;
    }
  }
  const json info = json::parse(read_all(session / "control.json"), nullptr, false);
  std::string token = read_all(session / "control.token");
  token.erase(token.find_last_not_of("\r\n") + 1);
  if (info.is_discarded() || token.empty()) {
    std::cerr << "leakscope: " << session.string() << " has no control.json/control.token: is it a live session?\n";
    return 2;
  }
  const std::string address = info.value("address", "127.0.0.1");
  const int port = info.value("port", 0);

  const int fd = ::socket(address.find(':') == std::string::npos ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_storage sa{};
  socklen_t len = 0;
  if (address.find(':') == std::string::npos) {
    auto* in = reinterpret_cast<sockaddr_in*>(&sa);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, address.c_str(), &in->sin_addr);
    len = sizeof *in;
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&sa);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET6, address.c_str(), &in6->sin6_addr);
    len = sizeof *in6;
  }
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0) {
    std::cerr << "leakscope: cannot reach the control endpoint " << address << ":" << port << " of "
              << session.string() << " (" << std::strerror(errno) << ")\n";
    if (fd >= 0) {
      ::close(fd);
    }
    return 2;
  }
  const std::string body = json{{"kind", options.kind}, {"text", options.text}}.dump();
  const std::string request = "POST /marks HTTP/1.1\r\nHost: leakscope\r\nAuthorization: Bearer " + token +
                              "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                              "\r\nConnection: close\r\n\r\n" + body;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    std::cerr << "leakscope: the control endpoint closed the connection\n";
    return 2;
  }
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
    response.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const auto body_start = response.find("\r\n\r\n");
  const std::string payload = body_start == std::string::npos ? response : response.substr(body_start + 4);
  if (response.rfind("HTTP/1.1 201", 0) != 0) {
    std::cerr << "leakscope: the proxy refused the mark: " << payload;
    return 1;
  }
  const json answer = json::parse(payload, nullptr, false);
  if (!answer.is_discarded() && answer.contains("mark")) {
    const auto& m = answer["mark"];
    std::cout << "mark " << m.value("kind", "") << " at " << static_cast<double>(m.value("t_session_ms", 0)) / 1000.0
              << " s in " << session.filename().string() << "\n";
  }
  return 0;
}

}  // namespace leakscope::app
