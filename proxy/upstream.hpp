#pragma once
// Dialling the origin: name resolution (with upstream.resolve overrides), the destination
// policy (ports, private addresses, the proxy itself), TCP connect and TLS verification.
// Failures are typed values, each with the HTTP status the phone is answered with.

#include "captures/records.hpp"
#include "proxy/server.hpp"
#include "proxy/tls_stream.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <optional>
#include <string>

namespace leakscope::proxy {

struct upstream_failure {
  int status = 502;  // what the phone is told
  captures::typed_error error;
};

struct dial_result {
  std::optional<boost::beast::tcp_stream> stream;
  boost::asio::ip::tcp::endpoint remote;
  std::optional<upstream_failure> failure;
};

// Resolves, applies the destination policy, connects. `host` may be a name or an IP literal.
boost::asio::awaitable<dial_result> dial(services& sv, const std::string& host, std::uint16_t port);

// Client handshake on `stream` with SNI `server_name` (omitted for IP literals); the peer's
// certificate must verify and match `server_name`.
boost::asio::awaitable<std::optional<upstream_failure>> upstream_handshake(services& sv, tls_stream& stream,
                                                                            const std::string& server_name);

// Private, loopback, link-local and other non-global addresses (RFC 6890), refused by default.
bool is_private_address(const boost::asio::ip::address& address);

bool is_ip_literal(const std::string& host);

}  // namespace leakscope::proxy
