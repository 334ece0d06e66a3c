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
