#pragma once
// TLS contexts, built by named factories (never inline in a constructor).

#include "config/config.hpp"

#include <boost/asio/ssl/context.hpp>

#include <openssl/ssl.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

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

// TLS sessions the origins issued, by "name:port", so the next connection to an origin resumes
// instead of repeating the full handshake and certificate check (most SDK traffic is many short
// connections to a few hosts). Bounded; thread-safe. Attached to the upstream context, which
// hands it every ticket it receives.
class upstream_sessions {
 public:
  explicit upstream_sessions(std::size_t capacity = 4096) : capacity_(capacity) {}
  // Installs the callbacks on `ctx`; the cache must outlive it.
  void attach(boost::asio::ssl::context& ctx);
  // Before the handshake: names the connection and offers a session for it, if one is cached.
  void prepare(SSL* ssl, const std::string& key);

 private:
  static int on_new_session(SSL* ssl, SSL_SESSION* session);
  struct free_session {
    void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
  };
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<SSL_SESSION, free_session>> sessions_;
  std::size_t capacity_;
};

}  // namespace leakscope::proxy
