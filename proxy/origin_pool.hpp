#pragma once
// Verified TLS connections to origins, kept between the phone's tunnels.
//
// A phone opens a new tunnel for most of its connections (keep-alive off, a connection per
// SDK, one closed by the app and opened again a second later). Dialling and verifying the
// origin again for each costs the proxy a TCP connection and a TLS handshake, and the origin
// as much again: with the connection kept, the next tunnel to the same origin starts with
// the phone's handshake alone. HTTP/1.1 persistence is per hop (RFC 9112 §9.3), so the
// origin's connection may outlive the phone's, as squid's and every reverse proxy's do.
//
// Each io_context has its own pool: a connection's socket never changes threads.
//
//   tunnel ends, origin idle ──put──► idle ──take (same host, port, name)──► next tunnel, or
//   tunnel idle, max_held passed ─put─┘   │                                  its next request
//                                         └─ the origin closes or sends anything, idle_limit
//                                            passes, or the proxy stops ──► closed (FIN in pcapng)

#include "captures/tap.hpp"
#include "proxy/tls_stream.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace leakscope::proxy {

// Sees every ciphertext byte an SSL object reads from or writes to the network, in order: the
// SSL object has one BIO for both directions.
struct tls_tap {
  captures::leg_tap* leg = nullptr;
  bool ssl_is_client = false;  // the origin leg's SSL is the client of its TCP connection
};

// `tap` must outlive the stream.
void attach_tap(tls_stream& stream, tls_tap* tap);

// Whether the peer has sent anything or closed (or the socket failed) and nothing has read it
// yet. Asio's async_wait only sees readiness that arrives after it is started (the reactor is
// edge-triggered), so a wait for an origin's close starts with this check.
bool has_input(boost::asio::ip::tcp::socket& socket);

// A TLS connection to an origin with its leg of traffic.pcapng (interface 1).
struct origin_connection {
  origin_connection(boost::beast::tcp_stream&& tcp, SSL_CTX* ctx, const boost::asio::ip::tcp::endpoint& to)
      : stream(std::move(tcp), ctx), remote(to) {}
  origin_connection(const origin_connection&) = delete;
  origin_connection& operator=(const origin_connection&) = delete;

  // Before the stream, so the tap outlives the SSL object whose BIO feeds it.
  std::optional<captures::leg_tap> leg;
  tls_tap tap;
  tls_stream stream;
  boost::asio::ip::tcp::endpoint remote;
  // The end of its last exchange (or of its handshake): the origin's keep-alive timer runs from
  // there, not from when the phone's tunnel ended.
  std::chrono::steady_clock::time_point idle_since = std::chrono::steady_clock::now();
};

class origin_pool {
 public:
  // Counted from the connection's last exchange. Shorter than the shortest keep-alive common
  // servers give an idle connection (Apache httpd's 5 s), so the origin is not the one to
  // close it while a request is on its way.
  static constexpr auto idle_limit = std::chrono::seconds(4);
  // Enough for the parallel connections of one phone's SDKs to one host, with room.
  static constexpr std::size_t max_per_origin = 32;
  static constexpr std::size_t max_idle = 256;
  // Tunnels between exchanges that keep their own origin connection. An idle intercepted
  // tunnel costs about 44 KiB, a third of it its origin connection (an SSL object, its
  // ciphers, a socket), and phones keep many: OkHttp holds 5 idle connections per client for
  // 5 minutes. Past this many on a thread, the tunnel idle the longest hands its connection to
  // the pool, which keeps it as any other (or closes it), and its next request takes one
  // from the pool or dials.
  static constexpr std::size_t max_held = 128;

  explicit origin_pool(boost::asio::io_context& io) : io_(io) {}
  ~origin_pool();
  origin_pool(const origin_pool&) = delete;
  origin_pool& operator=(const origin_pool&) = delete;

  boost::asio::io_context& context() { return io_; }

  // Connections are kept per phone (`client`, its address): one phone's tunnels never carry
  // another's requests, in the evidence or at an origin that ties state to its connection.
  // The address of an idle connection to host:port, if there is one.
  std::optional<boost::asio::ip::tcp::endpoint> peek(const std::string& client, const std::string& host,
                                                     std::uint16_t port) const;
  // An idle connection to host:port verified for `name` that the origin has not closed, or null.
  std::shared_ptr<origin_connection> take(const std::string& client, const std::string& host, std::uint16_t port,
                                          const std::string& name);
  // Keeps `c`, idle between two exchanges, for the next tunnel; closes it when it cannot be kept.
  void put(const std::string& client, const std::string& host, std::uint16_t port, const std::string& name,
           std::shared_ptr<origin_connection> c);
  // Closes every idle connection, and any put from now on.
  void close();
  std::size_t size() const { return count_; }

  // A tunnel between exchanges that keeps its origin connection: the number to let() it go
  // by. When more than max_held are held, the oldest holder's `hand_over` is called (once, in
  // this call) and it is let go.
  std::uint64_t hold(std::function<void()> hand_over);
  // The tunnel's exchanges go on, or it handed its connection over: no longer a holder.
  void let(std::uint64_t holder) { held_.erase(holder); }
  std::size_t held() const { return held_.size(); }

 private:
  struct entry {
    std::uint64_t id = 0;
    std::string name;
    std::shared_ptr<origin_connection> connection;
    std::unique_ptr<boost::asio::steady_timer> expiry;
  };
  void drop(const std::string& key, std::uint64_t id);
  // Waits for the origin to send something; what is not data or a close (a session ticket)
  // leaves the connection in the pool.
  void watch(const std::string& key, std::uint64_t id, origin_connection& c);
  entry* find(const std::string& key, std::uint64_t id);

  boost::asio::io_context& io_;
  std::map<std::string, std::vector<entry>> idle_;  // by "client host:port", newest last
  std::size_t count_ = 0;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::function<void()>> held_;  // by number: the oldest first
  std::uint64_t next_holder_ = 1;
  bool closed_ = false;
};

}  // namespace leakscope::proxy
