#pragma once
// TLS contexts, built by named factories (never inline in a constructor).

#include "config/config.hpp"

#include <boost/asio/ssl/context.hpp>

#include <functional>

namespace leakscope::proxy {

// The context that faces the phone: TLS >= 1.2, ALPN answers http/1.1 only (HTTP/2 comes
// later). The leaf is set per connection from the cache.
boost::asio::ssl::context make_client_facing_context();

// Sends every TLS secret the context negotiates, in SSLKEYLOGFILE format, to `sink`, so the
// captured traffic can be decrypted by Wireshark from keys.log. `sink` must outlive `ctx`.
void log_tls_secrets(boost::asio::ssl::context& ctx, std::function<void(const char* line)>* sink);

// The context that dials origins: TLS >= 1.2, peers verified against the system store plus
// `upstream.extra_ca` (unless upstream.verify is false). Throws on an unreadable extra CA.
boost::asio::ssl::context make_upstream_context(const config::upstream_config& upstream);

}  // namespace leakscope::proxy
