#pragma once
// One coroutine per client connection.

#include "proxy/server.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace leakscope::proxy {

// Serves one phone connection from accept to close: CONNECT or absolute-form HTTP, TLS
// interception or passthrough, every exchange relayed, inspected and recorded.
boost::asio::awaitable<void> serve_client(services& sv, boost::asio::ip::tcp::socket socket);

}  // namespace leakscope::proxy
