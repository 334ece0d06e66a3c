#pragma once
// Both ends of a real TLS connection on loopback, for the tests of proxy/ that need sockets.

#include "certs/ca.hpp"
#include "certs/leaf.hpp"
#include "proxy/tls_contexts.hpp"
#include "proxy/tls_stream.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <openssl/x509_vfy.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace leakscope::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
using leakscope::proxy::tls_stream;
using net::ip::tcp;
using error_code = boost::system::error_code;

// A CA and a leaf for "localhost", a listening socket on a free loopback port, and a client
// context that trusts the CA: the two ends of a real TLS connection on loopback.
struct loopback_tls {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("leakscope-tls-" + std::to_string(::getpid()));
  leakscope::certs::certificate_authority ca = [this] {
    std::filesystem::remove_all(dir);
    return leakscope::certs::certificate_authority::load_or_create(dir);
  }();
  std::shared_ptr<const leakscope::certs::leaf_certificate> leaf =
      leakscope::certs::mint_leaf(ca, "localhost", std::chrono::system_clock::now(), leakscope::certs::random_serial());
  net::io_context io;
  net::ssl::context server_ctx = leakscope::proxy::make_client_facing_context();
  net::ssl::context client_ctx{net::ssl::context::tls_client};
  tcp::acceptor acceptor{io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)};

  loopback_tls() {
    X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx.native_handle()), ca.cert());
    client_ctx.set_verify_mode(net::ssl::verify_peer);
  }
  ~loopback_tls() { std::filesystem::remove_all(dir); }

  // Runs `server` on the accepted connection and `client` on the dialled one, to their ends.
  void run(std::function<net::awaitable<void>(beast::tcp_stream)> server,
           std::function<net::awaitable<void>(beast::tcp_stream)> client) {
    net::co_spawn(io, [&]() -> net::awaitable<void> {
      auto s = co_await acceptor.async_accept(net::use_awaitable);
      co_await server(beast::tcp_stream(std::move(s)));
    }, [](std::exception_ptr e) { if (e) { std::rethrow_exception(e); } });
    net::co_spawn(io, [&]() -> net::awaitable<void> {
      tcp::socket s(io);
      co_await s.async_connect(acceptor.local_endpoint(), net::use_awaitable);
      co_await client(beast::tcp_stream(std::move(s)));
    }, [](std::exception_ptr e) { if (e) { std::rethrow_exception(e); } });
    io.run();
  }

  void use_leaf(tls_stream& s) {
    SSL_use_certificate(s.native_handle(), leaf->cert.get());
    SSL_use_PrivateKey(s.native_handle(), leaf->key.get());
  }

  net::awaitable<error_code> server_handshake(tls_stream& s) {
    use_leaf(s);
    error_code ec;
    co_await s.async_handshake(net::ssl::stream_base::server, net::redirect_error(net::use_awaitable, ec));
    co_return ec;
  }

  net::awaitable<error_code> client_handshake(tls_stream& s) {
    SSL_set_tlsext_host_name(s.native_handle(), "localhost");
    SSL_set1_host(s.native_handle(), "localhost");
    error_code ec;
    co_await s.async_handshake(net::ssl::stream_base::client, net::redirect_error(net::use_awaitable, ec));
    co_return ec;
  }
};

}  // namespace leakscope::testing
