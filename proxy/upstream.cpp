#include "proxy/upstream.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>

namespace leakscope::proxy {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

bool is_private_address(const net::ip::address& address) {
  if (address.is_loopback() || address.is_unspecified() || address.is_multicast()) {
    return true;
  }
  if (address.is_v6()) {
    const auto v6 = address.to_v6();
    if (v6.is_v4_mapped()) {
      return is_private_address(net::ip::make_address_v4(net::ip::v4_mapped, v6));
    }
    const auto b = v6.to_bytes();
    return v6.is_link_local() || (b[0] & 0xfe) == 0xfc;  // fe80::/10, fc00::/7
  }
  const auto b = address.to_v4().to_bytes();
  return b[0] == 0 || b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
         (b[0] == 169 && b[1] == 254) || (b[0] == 100 && (b[1] & 0xc0) == 64) || b[0] >= 240;
}

namespace {

upstream_failure failure(int status, std::string type, std::string detail) {
  return {status, {std::move(type), std::move(detail)}};
}

// The listener itself, reached by any of its names: a CONNECT there would loop forever.
bool is_self(const services& sv, const tcp::endpoint& target) {
  const auto& l = sv.listen_endpoint;
  if (target.port() != l.port()) {
    return false;
  }
  return target.address() == l.address() || l.address().is_unspecified() || target.address().is_loopback();
}

}  // namespace

net::awaitable<dial_result> dial(services& sv, const std::string& host, std::uint16_t port) {
  dial_result out;
  const auto& up = sv.cfg.upstream;
  if (up.allow_ports && std::find(up.allow_ports->begin(), up.allow_ports->end(), port) == up.allow_ports->end()) {
    out.failure = failure(403, "port_not_allowed", "port " + std::to_string(port) + " is not in upstream.allow_ports");
    co_return out;
  }
  const auto executor = co_await net::this_coro::executor;
  std::vector<tcp::endpoint> candidates;
  std::string lower = host;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  const auto mapped = up.resolve.find(lower);
  if (mapped != up.resolve.end()) {
    candidates.emplace_back(net::ip::make_address(mapped->second), port);
  } else if (is_ip_literal(host)) {
    candidates.emplace_back(net::ip::make_address(host), port);
  } else {
    tcp::resolver resolver(executor);
    boost::system::error_code ec;
    const std::string service = std::to_string(port);  // named: see refuse_request on GCC 12
    const auto results = co_await resolver.async_resolve(host, service, net::redirect_error(net::use_awaitable, ec));
    if (ec || results.empty()) {
      out.failure = failure(502, "dns_failed", "cannot resolve " + host + (ec ? " (" + ec.message() + ")" : ""));
      co_return out;
    }
    for (const auto& r : results) {
      candidates.push_back(r.endpoint());
    }
  }

  for (const auto& endpoint : candidates) {
    if (is_self(sv, endpoint)) {
      out.failure = failure(403, "loop_to_proxy", host + " resolves to the proxy's own listener");
      co_return out;
    }
    // Hosts mapped by upstream.resolve are the lab's explicit choice and exempt.
    if (mapped == up.resolve.end() && !up.allow_private && is_private_address(endpoint.address())) {
      out.failure = failure(403, "private_address",
                            host + " resolves to " + endpoint.address().to_string() +
                                ", a private address (set upstream.allow_private or map it in upstream.resolve)");
      co_return out;
    }
  }

  boost::system::error_code last;
  for (const auto& endpoint : candidates) {
    beast::tcp_stream stream(executor);
    stream.expires_after(sv.cfg.limits.timeouts.upstream_connect);
    co_await stream.async_connect(endpoint, net::redirect_error(net::use_awaitable, last));
    if (!last) {
      stream.socket().set_option(tcp::no_delay(true));
      out.remote = endpoint;
      out.stream.emplace(std::move(stream));
      co_return out;
    }
  }
  const std::string where = host + ":" + std::to_string(port);
  if (last == beast::error::timeout) {
    out.failure = failure(504, "upstream_connect_timeout", "no answer from " + where + " within limits.timeouts.upstream_connect");
  } else if (last == net::error::connection_refused) {
    out.failure = failure(502, "upstream_refused", where + " refused the connection");
  } else {
    out.failure = failure(502, "upstream_unreachable", "cannot connect to " + where + " (" + last.message() + ")");
  }
  co_return out;
}

namespace {

// Each verification failure gets its own type, so a report can tell an expired certificate
// from an interception attempt by someone else.
upstream_failure verify_failure(long result, const std::string& server_name) {
  std::string type = "upstream_cert_invalid";
  switch (result) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      type = "upstream_cert_expired";
      break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      type = "upstream_cert_not_yet_valid";
      break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      type = "upstream_cert_wrong_host";
      break;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      type = "upstream_cert_self_signed";
      break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      type = "upstream_cert_untrusted";
      break;
    case X509_V_ERR_CA_MD_TOO_WEAK:
    case X509_V_ERR_EE_KEY_TOO_SMALL:
    case X509_V_ERR_CA_KEY_TOO_SMALL:
      type = "upstream_cert_weak";
      break;
    default:
      break;
  }
  return {502, {type, "the certificate of " + server_name + " does not verify: " +
                          X509_verify_cert_error_string(result)}};
}

}  // namespace

net::awaitable<std::optional<upstream_failure>> upstream_handshake(services& sv, tls_stream& stream,
                                                                    const std::string& server_name) {
  SSL* ssl = stream.native_handle();
  if (is_ip_literal(server_name)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, server_name.c_str());
    SSL_set1_host(ssl, server_name.c_str());
  }
  if (sv.sessions != nullptr) {
    boost::system::error_code ignored;
    const auto remote = beast::get_lowest_layer(stream).socket().remote_endpoint(ignored);
    sv.sessions->prepare(ssl, server_name + "@" + remote.address().to_string() + ":" + std::to_string(remote.port()));
  }
  beast::get_lowest_layer(stream).expires_after(sv.cfg.limits.timeouts.handshake);
  boost::system::error_code ec;
  co_await stream.async_handshake(net::ssl::stream_base::client, net::redirect_error(net::use_awaitable, ec));
  if (!ec) {
    co_return std::nullopt;
  }
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    co_return verify_failure(verify, server_name);
  }
  if (ec == beast::error::timeout) {
    co_return upstream_failure{504, {"upstream_tls_timeout", "TLS handshake with " + server_name + " timed out"}};
  }
  co_return upstream_failure{502, {"upstream_tls_failed", "TLS handshake with " + server_name + " failed (" + ec.message() + ")"}};
}

}  // namespace leakscope::proxy
