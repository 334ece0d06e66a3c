#include "proxy/tls_stream.hpp"

#include "tests/proxy/loopback_tls.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <doctest/doctest.h>
#include <openssl/x509_vfy.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

namespace net = boost::asio;
namespace beast = boost::beast;
using leakscope::proxy::tls_stream;
using net::ip::tcp;
using error_code = boost::system::error_code;
using leakscope::testing::loopback_tls;

namespace {

auto use_ec(error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }

}  // namespace

TEST_CASE("TLS stream: a handshake over bytes already read, data both ways, close_notify read as eof") {
  loopback_tls t;
  const std::string big(1 << 20, 'x');  // more than the socket buffers take: writes must wait
  std::string got_by_server, got_by_client;
  error_code server_end, client_handshake_ec;
  t.run(
      [&](beast::tcp_stream raw) -> net::awaitable<void> {
        // The session peeks at the ClientHello before it knows to intercept: it is handed over.
        std::string first(5, '\0');
        co_await net::async_read(raw.socket(), net::buffer(first), net::use_awaitable);
        tls_stream s(std::move(raw), t.server_ctx.native_handle());
        t.use_leaf(s);
        error_code ec;
        co_await s.async_handshake(net::ssl::stream_base::server, net::buffer(first), use_ec(ec));
        REQUIRE_FALSE(ec);
        std::string buf(big.size() + 10, '\0');
        co_await net::async_read(s, net::buffer(buf.data(), big.size()), use_ec(ec));
        got_by_server = buf.substr(0, big.size());
        co_await net::async_write(s, net::buffer(std::string_view("pong")), use_ec(ec));
        REQUIRE_FALSE(ec);
        const auto n = co_await s.async_read_some(net::buffer(buf), use_ec(server_end));
        CHECK(n == 0);
      },
      [&](beast::tcp_stream raw) -> net::awaitable<void> {
        tls_stream s(std::move(raw), t.client_ctx.native_handle());
        client_handshake_ec = co_await t.client_handshake(s);
        REQUIRE_FALSE(client_handshake_ec);
        error_code ec;
        co_await net::async_write(s, net::buffer(big), use_ec(ec));
        REQUIRE_FALSE(ec);
        std::string pong(4, '\0');
        co_await net::async_read(s, net::buffer(pong), use_ec(ec));
        got_by_client = pong;
        co_await s.async_shutdown(use_ec(ec));
        CHECK_FALSE(ec);
      });
  CHECK(got_by_server == big);
  CHECK(got_by_client == "pong");
  CHECK(server_end == net::error::eof);
}

TEST_CASE("TLS stream: a TCP close without close_notify is stream_truncated; silence past the deadline is a timeout") {
  loopback_tls t;
  error_code truncated, timed_out;
  t.run(
      [&](beast::tcp_stream raw) -> net::awaitable<void> {
        tls_stream s(std::move(raw), t.server_ctx.native_handle());
        REQUIRE_FALSE(co_await t.server_handshake(s));
        error_code ec;
        char buf[64];
        s.expires_after(std::chrono::milliseconds(20));
        co_await s.async_read_some(net::buffer(buf), use_ec(timed_out));
        // The client is waiting for this before it hangs up.
        s.expires_never();
        co_await net::async_write(s, net::buffer(std::string_view("go")), use_ec(ec));
        co_await s.async_read_some(net::buffer(buf), use_ec(truncated));
      },
      [&](beast::tcp_stream raw) -> net::awaitable<void> {
        tls_stream s(std::move(raw), t.client_ctx.native_handle());
        REQUIRE_FALSE(co_await t.client_handshake(s));
        char buf[2];
        error_code ec;
        co_await net::async_read(s, net::buffer(buf), use_ec(ec));
        s.socket().close();
      });
  CHECK(timed_out == beast::error::timeout);
  CHECK(truncated == net::ssl::error::stream_truncated);
}

TEST_CASE("TLS stream: a client that does not trust the certificate fails with OpenSSL's reason, and so does the server") {
  loopback_tls t;
  X509_STORE* empty = X509_STORE_new();
  SSL_CTX_set_cert_store(t.client_ctx.native_handle(), empty);  // trusts nothing
  error_code server_ec, client_ec;
  t.run(
      [&](beast::tcp_stream raw) -> net::awaitable<void> {
        tls_stream s(std::move(raw), t.server_ctx.native_handle());
        t.use_leaf(s);
        co_await s.async_handshake(net::ssl::stream_base::server, use_ec(server_ec));
      },
      [&](beast::tcp_stream raw) -> net::awaitable<void> {
        tls_stream s(std::move(raw), t.client_ctx.native_handle());
        client_ec = co_await t.client_handshake(s);
      });
  REQUIRE(client_ec.category() == net::error::get_ssl_category());
  CHECK(ERR_GET_REASON(static_cast<unsigned long>(client_ec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED);
  REQUIRE(server_ec.category() == net::error::get_ssl_category());
  CHECK(ERR_GET_REASON(static_cast<unsigned long>(server_ec.value())) == SSL_R_TLSV1_ALERT_UNKNOWN_CA);
}

TEST_CASE("TLS stream: records read ahead into the SSL object are delivered without waiting for the socket") {
  loopback_tls t;
  const std::string sent(40000, 'r');  // three records, in as few segments as the kernel makes
  std::string got;
  bool buffered_after_first_read = false;
  error_code server_ec, client_ec;
  t.run(
      [&](beast::tcp_stream raw) -> net::awaitable<void> {
        tls_stream s(std::move(raw), t.server_ctx.native_handle());
        // A record left stranded inside OpenSSL would make a read wait for a socket that
        // stays quiet (the client waits for our answer): a timeout, not a hang.
        s.expires_after(std::chrono::seconds(10));
        REQUIRE_FALSE(co_await t.server_handshake(s));
        char small[100];
        while (got.size() < sent.size()) {
          const auto n = co_await s.async_read_some(net::buffer(small), use_ec(server_ec));
          if (server_ec) {
            break;
          }
          got.append(small, n);
          if (got.size() == n) {
            buffered_after_first_read = s.has_buffered();
          }
        }
        co_await net::async_write(s, net::buffer(std::string_view("ok")), use_ec(server_ec));
      },
      [&](beast::tcp_stream raw) -> net::awaitable<void> {
        tls_stream s(std::move(raw), t.client_ctx.native_handle());
        client_ec = co_await t.client_handshake(s);
        REQUIRE_FALSE(client_ec);
        co_await net::async_write(s, net::buffer(sent), use_ec(client_ec));
        REQUIRE_FALSE(client_ec);
        std::string ok(2, '\0');
        co_await net::async_read(s, net::buffer(ok), use_ec(client_ec));
        CHECK(ok == "ok");
      });
  CHECK_FALSE(server_ec);
  CHECK(got.size() == sent.size());
  CHECK((got == sent));  // not decomposed: 40,000 bytes would be printed
  CHECK(buffered_after_first_read);
}

TEST_CASE("TLS stream: writing to a peer that has gone fails with the socket's error, whatever sat unsent") {
  loopback_tls t;
  error_code write_ec;
  std::size_t writes = 0;
  t.run(
      [&](beast::tcp_stream raw) -> net::awaitable<void> {
        tls_stream s(std::move(raw), t.server_ctx.native_handle());
        REQUIRE_FALSE(co_await t.server_handshake(s));
        s.socket().close();  // gone without a word: what the client sends next meets a reset
      },
      [&](beast::tcp_stream raw) -> net::awaitable<void> {
        tls_stream s(std::move(raw), t.client_ctx.native_handle());
        REQUIRE_FALSE(co_await t.client_handshake(s));
        s.expires_after(std::chrono::seconds(10));  // a failure that never comes: a timeout, not a hang
        const std::string chunk(5000, 'w');       // below the burst size: held, then sent per step
        while (!write_ec && writes < 10000) {
          co_await net::async_write(s, net::buffer(chunk), use_ec(write_ec));
          ++writes;
        }
      });
  CHECK(writes < 10000);
  CHECK((write_ec == net::error::broken_pipe || write_ec == net::error::connection_reset));
}

TEST_CASE("TLS stream: a read completes while a write of the same stream waits for a peer that is not reading") {
  // A WebSocket or raw relay reads and writes one stream at once. A phone that sends all it has
  // before it reads must still be read: records our write could not send yet must not hold
  // the read back, or both sides wait on each other.
  loopback_tls t;
  const std::string payload(48 << 20, 'd');  // more than both sockets' buffers hold (up to 4 + 6 MiB each way)
  std::string got_by_server, got_by_client;
  error_code server_read_ec, server_write_ec, client_ec;
  t.run(
      [&](beast::tcp_stream raw) -> net::awaitable<void> {
        tls_stream s(std::move(raw), t.server_ctx.native_handle());
        s.expires_after(std::chrono::seconds(20));  // the deadlock, were it there, as a timeout
        REQUIRE_FALSE(co_await t.server_handshake(s));
        net::co_spawn(
            co_await net::this_coro::executor,
            [&]() -> net::awaitable<void> {
              co_await net::async_write(s, net::buffer(payload), use_ec(server_write_ec));
            },
            net::detached);
        got_by_server.resize(payload.size());
        co_await net::async_read(s, net::buffer(got_by_server), use_ec(server_read_ec));
        // The writer still uses `s`: stay until the client has read everything.
        net::steady_timer wait(co_await net::this_coro::executor);
        while (got_by_client.size() < payload.size() && !client_ec) {
          wait.expires_after(std::chrono::milliseconds(5));
          co_await wait.async_wait(net::use_awaitable);
        }
      },
      [&](beast::tcp_stream raw) -> net::awaitable<void> {
        tls_stream s(std::move(raw), t.client_ctx.native_handle());
        s.expires_after(std::chrono::seconds(20));
        REQUIRE_FALSE(co_await t.client_handshake(s));
        co_await net::async_write(s, net::buffer(payload), use_ec(client_ec));  // all of it before reading
        std::string in(payload.size(), '\0');
        if (!client_ec) {
          co_await net::async_read(s, net::buffer(in), use_ec(client_ec));
        }
        got_by_client = in;
      });
  CHECK_FALSE(server_read_ec);
  CHECK_FALSE(client_ec);
  CHECK_FALSE(server_write_ec);
  CHECK((got_by_server == payload));
  CHECK((got_by_client == payload));
}

TEST_CASE("TLS stream: a session ticket is not the peer speaking; data and close_notify are, and the data stays readable") {
  loopback_tls t;
  bool after_ticket = true, after_data = false, after_reading = true, after_close = false;
  std::string data(4, '\0');
  error_code end;
  t.run(
      [&](beast::tcp_stream raw) -> net::awaitable<void> {
        tls_stream s(std::move(raw), t.server_ctx.native_handle());
        REQUIRE_FALSE(co_await t.server_handshake(s));  // TLS 1.3: the ticket follows the handshake
        std::string go(1, '\0');
        error_code ec;
        co_await net::async_read(s, net::buffer(go), use_ec(ec));
        co_await net::async_write(s, net::buffer(std::string_view("data")), use_ec(ec));
        co_await net::async_read(s, net::buffer(go), use_ec(ec));
        co_await s.async_shutdown(use_ec(ec));
      },
      [&](beast::tcp_stream raw) -> net::awaitable<void> {
        tls_stream s(std::move(raw), t.client_ctx.native_handle());
        REQUIRE_FALSE(co_await t.client_handshake(s));
        error_code ec;
        auto wait_readable = [&]() -> net::awaitable<void> {
          if (!s.has_buffered()) {
            co_await s.socket().async_wait(tcp::socket::wait_read, use_ec(ec));
          }
        };
        co_await wait_readable();  // the ticket has come
        after_ticket = s.has_spoken();
        co_await net::async_write(s, net::buffer(std::string_view("g")), use_ec(ec));
        co_await wait_readable();
        after_data = s.has_spoken();
        co_await net::async_read(s, net::buffer(data), use_ec(ec));
        after_reading = s.has_spoken();
        co_await net::async_write(s, net::buffer(std::string_view("h")), use_ec(ec));
        co_await wait_readable();
        after_close = s.has_spoken();
        std::string rest(8, '\0');
        co_await s.async_read_some(net::buffer(rest), use_ec(end));
      });
  CHECK_FALSE(after_ticket);
  CHECK(after_data);
  CHECK(data == "data");
  CHECK_FALSE(after_reading);
  CHECK(after_close);
  CHECK(end == net::error::eof);
}
