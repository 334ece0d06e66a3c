#include "proxy/server.hpp"

#include "proxy/origin_pool.hpp"
#include "proxy/session.hpp"
#include "proxy/tls_contexts.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/socket.h>

#include <iostream>
#include <thread>

namespace leakscope::proxy {

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// Enough leaves for every host a phone talks to in a long session, a few MiB at most.
constexpr std::size_t leaf_cache_capacity = 4096;

// Accepts until the acceptor closes, each connection onto the context `next_context` names,
// and hands it to `on_accept`.
template <class Pick, class Handler>
net::awaitable<void> accept_loop(tcp::acceptor& acceptor, Pick next_context, Handler on_accept) {
  while (acceptor.is_open()) {
    boost::system::error_code ec;
    tcp::socket socket =
        co_await acceptor.async_accept(next_context().get_executor(), net::redirect_error(net::use_awaitable, ec));
    if (ec == net::error::operation_aborted || !acceptor.is_open()) {
      co_return;
    }
    if (ec) {
      // EMFILE and friends: report and keep serving the connections we have.
      std::cerr << "leakscope: accept failed: " << ec.message() << "\n";
      continue;
    }
    on_accept(std::move(socket));
  }
}

void start_session(services& sv, tcp::socket socket) {
  boost::system::error_code ec;
  if (!sv.recorder.healthy()) {
    // What cannot be recorded is not intercepted: the session folder would not be the evidence.
    std::cerr << "leakscope: refusing a connection: " << sv.recorder.failure() << "\n";
    socket.close(ec);
    return;
  }
  if (sv.connections.load() >= sv.cfg.limits.max_connections) {
    std::cerr << "leakscope: refusing a connection: limits.max_connections (" << sv.cfg.limits.max_connections
              << ") reached\n";
    socket.close(ec);
    return;
  }
  ++sv.connections;
  auto executor = socket.get_executor();
  std::uint64_t key = 0;
  {
    std::lock_guard lock(sv.open_mutex);
    key = sv.next_open++;
    // The descriptor survives the moves into the session's streams; shutdown(2) on it wakes
    // every pending operation of the session from any thread.
    const int fd = socket.native_handle();
    sv.open[key] = [fd] { ::shutdown(fd, SHUT_RDWR); };
  }
  net::co_spawn(executor, serve_client(sv, std::move(socket)), [&sv, key](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::cerr << "leakscope: connection ended by an internal error: " << ex.what() << "\n";
      }
    }
    std::lock_guard lock(sv.open_mutex);
    sv.open.erase(key);
    --sv.connections;
  });
}

void bind_listener(tcp::acceptor& acceptor, const std::string& address, std::uint16_t port, const char* key) {
  const tcp::endpoint endpoint(net::ip::make_address(address), port);
  boost::system::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) {
    acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    acceptor.bind(endpoint, ec);
  }
  if (!ec) {
    acceptor.listen(net::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    throw std::runtime_error("cannot listen on " + address + ":" + std::to_string(port) + ": " + ec.message() +
                             " (change " + key + " or stop the other program)");
  }
}

}  // namespace

server::server(const config::config& cfg, const certs::certificate_authority& ca, const detectors::engine& detector,
               const detectors::attributor& attribution, captures::recorder& recorder, captures::timeline& timeline,
               std::string control_token)
    : client_facing_(make_client_facing_context()),
      upstream_tls_(make_upstream_context(cfg.upstream)),
      leaves_(ca, leaf_cache_capacity),
      acceptor_(io_),
      control_acceptor_(io_) {
  services_ = std::make_unique<services>(cfg, ca, leaves_, detector, attribution, recorder, timeline, client_facing_,
                                         upstream_tls_);
  control_ = std::make_unique<control_context>(control_context{cfg, ca, timeline, std::move(control_token)});
  // Both legs' secrets go to keys.log: the phone side to read the capture as the phone saw it,
  // the origin side to check what reached the server.
  key_sink_ = [&recorder](const char* line) { recorder.write_key(line); };
  log_tls_secrets(client_facing_, &key_sink_);
  log_tls_secrets(upstream_tls_, &key_sink_);
  sessions_.attach(upstream_tls_);
  services_->sessions = &sessions_;
  bind_listener(acceptor_, cfg.listen.address, cfg.listen.port, "listen.port");
  bind_listener(control_acceptor_, cfg.control.address, cfg.control.port, "control.port");
  services_->listen_endpoint = acceptor_.local_endpoint();
}

tcp::endpoint server::control_endpoint() const { return control_acceptor_.local_endpoint(); }

server::~server() = default;

tcp::endpoint server::local_endpoint() const { return services_->listen_endpoint; }

void server::run(unsigned threads) {
  // A worker's context has no work of its own between connections: the guard keeps it running
  // until halt().
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  for (unsigned i = 1; i < threads; ++i) {
    workers_.push_back(std::make_unique<net::io_context>(1));
    guards.push_back(net::make_work_guard(*workers_.back()));
  }
  pools_.push_back(std::make_unique<origin_pool>(io_));
  for (auto& w : workers_) {
    pools_.push_back(std::make_unique<origin_pool>(*w));
  }
  for (auto& p : pools_) {
    services_->pools.push_back(p.get());
  }
  // Round robin over the contexts; only the accepting coroutine on io_ touches it.
  std::size_t next = 0;
  auto next_context = [this, next]() mutable -> net::io_context& {
    const std::size_t i = next++ % (workers_.size() + 1);
    return i == 0 ? io_ : *workers_[i - 1];
  };
  net::co_spawn(io_,
                accept_loop(acceptor_, next_context, [this](tcp::socket s) { start_session(*services_, std::move(s)); }),
                net::detached);
  net::co_spawn(io_,
                accept_loop(
                    control_acceptor_, [this]() -> net::io_context& { return io_; },
                    [this](tcp::socket s) {
                      auto executor = s.get_executor();
                      net::co_spawn(executor, serve_control(*control_, std::move(s)), net::detached);
                    }),
                net::detached);
  std::vector<std::thread> pool;
  for (auto& w : workers_) {
    pool.emplace_back([&w] { w->run(); });
  }
  io_.run();
  halt();  // io_ ends only when stopped; the workers follow it
  for (auto& t : pool) {
    t.join();
  }
  // Every thread has stopped: the idle origin connections close here, their FINs recorded
  // before the caller closes the capture.
  for (auto& p : pools_) {
    p->close();
  }
}

void server::halt() {
  io_.stop();
  for (auto& w : workers_) {
    w->stop();
  }
}

void server::stop(std::chrono::milliseconds grace) {
  net::post(io_, [this, grace] {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    control_acceptor_.close(ignored);
    {
      std::lock_guard lock(services_->open_mutex);
      for (auto& [key, close] : services_->open) {
        close();
      }
    }
    for (auto& p : pools_) {
      net::post(p->context(), [pool = p.get()] { pool->close(); });
    }
    // Sessions end as their sockets close and record their flows; whatever still waits on a
    // slow origin after `grace` is cut off so Ctrl-C never hangs.
    net::co_spawn(
        io_,
        [this, grace]() -> net::awaitable<void> {
          net::steady_timer tick(io_);
          const auto deadline = std::chrono::steady_clock::now() + grace;
          while (services_->connections.load() > 0 && std::chrono::steady_clock::now() < deadline) {
            tick.expires_after(std::chrono::milliseconds(20));
            co_await tick.async_wait(net::use_awaitable);
          }
          halt();
        },
        net::detached);
  });
}

}  // namespace leakscope::proxy
