#include "proxy/client_hello.hpp"

#include <doctest/doctest.h>
#include <openssl/ssl.h>

#include <string>

using namespace leakscope::proxy;

namespace {

// A real ClientHello, as OpenSSL's client writes it, captured from a memory BIO.
std::string openssl_client_hello(const char* sni, bool with_alpn) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  if (sni != nullptr) {
    SSL_set_tlsext_host_name(ssl, sni);
  }
  if (with_alpn) {
    static const unsigned char protos[] = "\x02h2\x08http/1.1";
    SSL_set_alpn_protos(ssl, protos, sizeof protos - 1);
  }
  SSL_connect(ssl);
  char* data = nullptr;
  const long n = BIO_get_mem_data(out, &data);
  std::string hello(data, static_cast<std::size_t>(n));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return hello;
}

// Re-frames a single-record hello into records of at most `chunk` handshake bytes each.
std::string split_records(const std::string& hello, std::size_t chunk) {
  const std::string body = hello.substr(5);
  std::string out;
  for (std::size_t i = 0; i < body.size(); i += chunk) {
    const auto piece = body.substr(i, chunk);
    out += hello.substr(0, 3);
    out += static_cast<char>(piece.size() >> 8);
    out += static_cast<char>(piece.size() & 0xff);
    out += piece;
  }
  return out;
}

}  // namespace

TEST_CASE("SNI and ALPN are read from a real ClientHello") {
  const auto hello = openssl_client_hello("alog.umeng.com", true);
  const auto r = parse_client_hello(hello);
  REQUIRE(r.status == hello_status::complete);
  CHECK(r.hello.sni == "alog.umeng.com");
  CHECK(r.hello.alpn == std::vector<std::string>{"h2", "http/1.1"});
}

TEST_CASE("a ClientHello without SNI") {
  const auto r = parse_client_hello(openssl_client_hello(nullptr, false));
  REQUIRE(r.status == hello_status::complete);
  CHECK(r.hello.sni.empty());
  CHECK(r.hello.alpn.empty());
}

TEST_CASE("every prefix of a ClientHello asks for more, split into records or not") {
  const auto hello = openssl_client_hello("example.com", true);
  for (const auto& bytes : {hello, split_records(hello, 7), split_records(hello, 100)}) {
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      CAPTURE(n);
      REQUIRE(parse_client_hello(std::string_view(bytes).substr(0, n)).status == hello_status::need_more);
    }
    const auto r = parse_client_hello(bytes + "trailing");
    REQUIRE(r.status == hello_status::complete);
    CHECK(r.hello.sni == "example.com");
  }
}

TEST_CASE("non-TLS and hostile input") {
  CHECK(parse_client_hello("GET / HTTP/1.1\r\n").status == hello_status::not_tls);
  const auto hello = openssl_client_hello("example.com", false);
  CHECK(parse_client_hello(hello, 100).status == hello_status::malformed);  // over the cap
  std::string bad_type = hello;
  bad_type[5] = 2;  // ServerHello
  CHECK(parse_client_hello(bad_type).status == hello_status::malformed);
  CHECK(parse_client_hello(std::string("\x16\x03\x01\x00\x00", 5)).status == hello_status::malformed);
  std::string overrun = hello;
  overrun[5 + 4 + 2 + 32] = '\x7f';  // session id length past the end
  CHECK(parse_client_hello(overrun).status == hello_status::malformed);
}

TEST_CASE("transparent connections are told apart by their first bytes, at every prefix") {
  const struct {
    std::string bytes;
    first_bytes_kind kind;
    const char* protocol;
    std::uint16_t port;
  } cases[] = {
      {openssl_client_hello("api.example.test", false), first_bytes_kind::tls, "tls", 443},
      {"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n", first_bytes_kind::http, "http", 80},
      {"OPTIONS * HTTP/1.1\r\n", first_bytes_kind::http, "http", 8080},
      {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", first_bytes_kind::other, "http2", 80},
      {"SSH-2.0-OpenSSH_9.2\r\n", first_bytes_kind::other, "ssh", 22},
      {"<?xml version='1.0'?><stream:stream to='push.example'>", first_bytes_kind::other, "xmpp", 5222},
      {std::string("\x10\x16\x00\x04MQTT\x04\x02\x00\x3c", 12), first_bytes_kind::other, "mqtt", 1883},
      {std::string("\x00\x00\x00\x0c\x01\x02imei", 10), first_bytes_kind::other, "unknown", 9000},
      {"GETAWAYWITHTHISLONGWORD", first_bytes_kind::other, "unknown", 80},
  };
  for (const auto& c : cases) {
    CAPTURE(c.bytes);
    const auto whole = classify_first_bytes(c.bytes, c.port);
    CHECK(whole.kind == c.kind);
    CHECK(whole.protocol == c.protocol);
    // A prefix never gets a different verdict, only "need more".
    for (std::size_t n = 1; n < c.bytes.size(); ++n) {
      const auto part = classify_first_bytes(std::string_view(c.bytes).substr(0, n), c.port);
      if (part.kind != first_bytes_kind::need_more) {
        CHECK(part.kind == c.kind);
      }
    }
  }
  CHECK(classify_first_bytes("", 80).kind == first_bytes_kind::need_more);
  CHECK(classify_first_bytes("POS", 80).kind == first_bytes_kind::need_more);
}
