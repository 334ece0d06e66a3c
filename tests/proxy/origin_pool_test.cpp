#include "proxy/origin_pool.hpp"

#include "tests/proxy/loopback_tls.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/write.hpp>
#include <doctest/doctest.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <numeric>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
using leakscope::proxy::origin_connection;
using leakscope::proxy::origin_pool;
using leakscope::proxy::tls_stream;
using leakscope::testing::loopback_tls;
using net::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// `n` verified TLS connections to the fixture's server: the origin's ends and ours.
struct connections {
  std::vector<std::unique_ptr<tls_stream>> origin_ends;
  std::vector<std::shared_ptr<origin_connection>> ours;
};

connections open_connections(loopback_tls& t, int n) {
  connections out;
  net::co_spawn(
      t.io,
      [&]() -> net::awaitable<void> {
        for (int i = 0; i < n; ++i) {
          tcp::socket socket(t.io);
          co_await socket.async_connect(t.acceptor.local_endpoint(), net::use_awaitable);
          auto accepted = co_await t.acceptor.async_accept(net::use_awaitable);
          auto& server = out.origin_ends.emplace_back(
              std::make_unique<tls_stream>(beast::tcp_stream(std::move(accepted)), t.server_ctx.native_handle()));
          const auto to = socket.remote_endpoint();
          auto& ours = out.ours.emplace_back(
              std::make_shared<origin_connection>(beast::tcp_stream(std::move(socket)), t.client_ctx.native_handle(), to));
          bool server_done = false;
          net::co_spawn(
              t.io,
              [&]() -> net::awaitable<void> {
                REQUIRE_FALSE(co_await t.server_handshake(*server));
                server_done = true;
              },
              net::detached);
          REQUIRE_FALSE(co_await t.client_handshake(ours->stream));
          while (!server_done) {
            co_await net::post(t.io, net::use_awaitable);
          }
        }
      },
      [](std::exception_ptr e) {
        if (e) {
          std::rethrow_exception(e);
        }
      });
  t.io.run();
  t.io.restart();
  return out;
}

// Blocks until `c`'s socket has something to read: the origin's close has arrived.
void wait_readable(origin_connection& c) {
  pollfd p{c.stream.socket().native_handle(), POLLIN, 0};
  REQUIRE(::poll(&p, 1, 5000) == 1);
}

// Runs the pool's handlers until it holds `n` connections, or fails after a few seconds.
void run_until_size(loopback_tls& t, origin_pool& pool, std::size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (pool.size() != n && std::chrono::steady_clock::now() < deadline) {
    t.io.run_one_for(std::chrono::milliseconds(50));
  }
  t.io.restart();
  CHECK(pool.size() == n);
}

}  // namespace

TEST_CASE("Origin pool: the newest live connection for the same phone, origin and name; a closed one is skipped") {
  loopback_tls t;
  auto c = open_connections(t, 3);
  origin_pool pool(t.io);
  for (auto& ours : c.ours) {
    pool.put("10.0.0.2", "api.example.test", 443, "api.example.test", ours);
  }
  REQUIRE(pool.size() == 3);
  CHECK(pool.peek("10.0.0.2", "api.example.test", 443).has_value());
  CHECK_FALSE(pool.peek("10.0.0.3", "api.example.test", 443).has_value());  // another phone's
  CHECK(pool.take("10.0.0.2", "api.example.test", 443, "other.example.test") == nullptr);
  CHECK(pool.take("10.0.0.3", "api.example.test", 443, "api.example.test") == nullptr);
  CHECK(pool.take("10.0.0.2", "api.example.test", 8443, "api.example.test") == nullptr);

  c.origin_ends[2]->socket().close();  // the newest: its origin hangs up, before the pool has run
  wait_readable(*c.ours[2]);
  const auto taken = pool.take("10.0.0.2", "api.example.test", 443, "api.example.test");
  CHECK(taken == c.ours[1]);
  CHECK(pool.size() == 1);
}

TEST_CASE("Origin pool: a connection whose origin speaks while it is kept is dropped; a fresh one stays") {
  loopback_tls t;
  auto c = open_connections(t, 2);
  origin_pool pool(t.io);
  pool.put("10.0.0.2", "api.example.test", 443, "api.example.test", c.ours[0]);
  pool.put("10.0.0.2", "api.example.test", 443, "api.example.test", c.ours[1]);
  REQUIRE(pool.size() == 2);
  error_code ec;
  net::async_write(*c.origin_ends[1], net::buffer(std::string_view("HTTP/1.1 408 Request Timeout\r\n\r\n")),
                   [&](error_code e, std::size_t) { ec = e; });
  run_until_size(t, pool, 1);
  CHECK_FALSE(ec);
  CHECK(pool.take("10.0.0.2", "api.example.test", 443, "api.example.test") == c.ours[0]);
}

TEST_CASE("Origin pool: nothing is kept past its idle limit, or once the pool is closed") {
  loopback_tls t;
  auto c = open_connections(t, 2);
  origin_pool pool(t.io);
  c.ours[0]->idle_since = std::chrono::steady_clock::now() - origin_pool::idle_limit;
  pool.put("10.0.0.2", "api.example.test", 443, "api.example.test", c.ours[0]);
  CHECK(pool.size() == 0);
  pool.put("10.0.0.2", "api.example.test", 443, "api.example.test", c.ours[1]);
  CHECK(pool.size() == 1);
  pool.close();
  CHECK(pool.size() == 0);
  pool.put("10.0.0.2", "api.example.test", 443, "api.example.test", c.ours[1]);
  CHECK(pool.size() == 0);
}

TEST_CASE("Origin pool: past max_held holders, the one that has held the longest is asked once for its connection") {
  net::io_context io;
  origin_pool pool(io);
  std::vector<int> asked(origin_pool::max_held + 3, 0);
  std::vector<std::uint64_t> holders;
  for (std::size_t i = 0; i < origin_pool::max_held; ++i) {
    holders.push_back(pool.hold([&asked, i] { ++asked[i]; }));
  }
  CHECK(pool.held() == origin_pool::max_held);
  CHECK(std::count(asked.begin(), asked.end(), 0) == static_cast<std::ptrdiff_t>(asked.size()));

  pool.let(holders[0]);  // its exchanges went on: the next oldest is now holder 1
  holders.push_back(pool.hold([&asked] { ++asked[origin_pool::max_held]; }));
  CHECK(pool.held() == origin_pool::max_held);
  holders.push_back(pool.hold([&asked] { ++asked[origin_pool::max_held + 1]; }));
  CHECK(asked[0] == 0);
  CHECK(asked[1] == 1);
  CHECK(pool.held() == origin_pool::max_held);

  pool.let(holders[1]);  // one that was asked lets go afterwards: nothing else changes
  CHECK(pool.held() == origin_pool::max_held);
  holders.push_back(pool.hold([&asked] { ++asked[origin_pool::max_held + 2]; }));
  CHECK(asked[1] == 1);
  CHECK(asked[2] == 1);
  CHECK(std::accumulate(asked.begin(), asked.end(), 0) == 2);
}
