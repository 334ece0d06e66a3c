#pragma once
// The listener and what every session shares. Only proxy/ touches sockets.

#include "captures/recorder.hpp"
#include "captures/timeline.hpp"
#include "proxy/control.hpp"
#include "proxy/tls_contexts.hpp"
#include "certs/leaf.hpp"
#include "config/config.hpp"
#include "detectors/attribution.hpp"
#include "detectors/engine.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace leakscope::proxy {

class origin_pool;

// Hosts whose clients refused our certificate; with tls.auto_passthrough they are tunnelled.
class rejected_hosts {
 public:
  void add(const std::string& host);
  bool contains(const std::string& host) const;

 private:
  mutable std::mutex mutex_;
  std::set<std::string> hosts_;
};

// Everything a session needs, shared by all of them. Each member is thread-safe or immutable.
struct services {
  services(const config::config& c, const certs::certificate_authority& a, certs::leaf_cache& l,
           const detectors::engine& d, const detectors::attributor& at, captures::recorder& r, captures::timeline& t,
           boost::asio::ssl::context& phone_side, boost::asio::ssl::context& origin_side)
      : cfg(c), ca(a), leaves(l), detector(d), attribution(at), recorder(r), timeline(t), client_facing(phone_side),
        upstream_tls(origin_side) {}

  const config::config& cfg;
  const certs::certificate_authority& ca;
  certs::leaf_cache& leaves;
  const detectors::engine& detector;
  const detectors::attributor& attribution;
  captures::recorder& recorder;
  captures::timeline& timeline;
  boost::asio::ssl::context& client_facing;
  boost::asio::ssl::context& upstream_tls;
  upstream_sessions* sessions = nullptr;  // resumption toward origins
  // Idle origin connections, one pool per io_context, each used only on its own thread. Set
  // by run() before the first connection.
  std::vector<origin_pool*> pools;
  rejected_hosts rejected;
  boost::asio::ip::tcp::endpoint listen_endpoint;
  std::atomic<std::uint64_t> next_flow{1};
  std::atomic<std::uint64_t> next_leak{1};
  std::atomic<unsigned> connections{0};

  // Open client connections, so stop() can close them and let their flows be recorded. The
  // closers run under open_mutex; a session removes itself under it when it ends.
  std::mutex open_mutex;
  std::map<std::uint64_t, std::function<void()>> open;
  std::uint64_t next_open = 1;
};

class server {
 public:
  // Binds the listener; throws std::runtime_error naming the address when it cannot.
  // Binds the proxy and the control listener; `control_token` guards the control endpoint.
  server(const config::config& cfg, const certs::certificate_authority& ca, const detectors::engine& detector,
         const detectors::attributor& attribution, captures::recorder& recorder, captures::timeline& timeline,
         std::string control_token);
  ~server();

  boost::asio::ip::tcp::endpoint local_endpoint() const;
  boost::asio::ip::tcp::endpoint control_endpoint() const;
  // Serves on `threads` threads until stop(); returns when every session has ended. Each
  // thread has its own io_context, and each connection lives on one of them: its coroutines
  // never cross threads, so there are no strands and no lock handoffs between threads on the
  // data path (issue 7).
  void run(unsigned threads);
  // Thread-safe: stops accepting, closes every open connection, and makes run() return once
  // they have ended or `grace` has passed.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(2));
  // Ends run() now, abandoning what is in flight (a second Ctrl-C); called on io()'s thread.
  void halt();
  // The context of the listeners, the control endpoint and stop(); it serves connections too.
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context io_{1};
  std::vector<std::unique_ptr<boost::asio::io_context>> workers_;  // the other threads' contexts
  std::vector<std::unique_ptr<origin_pool>> pools_;  // one per context, after them: they hold sockets
  upstream_sessions sessions_;  // before the context that points at it, so it outlives it
  boost::asio::ssl::context client_facing_;
  boost::asio::ssl::context upstream_tls_;
  certs::leaf_cache leaves_;
  std::function<void(const char*)> key_sink_;
  std::unique_ptr<services> services_;
  std::unique_ptr<control_context> control_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ip::tcp::acceptor control_acceptor_;
};

}  // namespace leakscope::proxy
