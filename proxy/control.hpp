#pragma once
// The control endpoint (control.address:control.port, loopback by default): timeline marks
// for scripts and `leakscope mark`. Every request needs the session's token:
//   POST /marks   {"kind": "consent"|"refuse"|"background"|"foreground"|"note", "text": "…"}
//   GET  /marks   the marks so far

#include "captures/timeline.hpp"
#include "certs/ca.hpp"
#include "config/config.hpp"

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <string>

namespace leakscope::proxy {

struct control_context {
  const config::config& cfg;
  const certs::certificate_authority& ca;
  captures::timeline& timeline;
  std::string token;
};

boost::asio::awaitable<void> serve_control(control_context& ctx, boost::asio::ip::tcp::socket socket);

// Compares in constant time, so the token cannot be guessed byte by byte from response times.
bool token_equal(const std::string& a, const std::string& b);

}  // namespace leakscope::proxy
