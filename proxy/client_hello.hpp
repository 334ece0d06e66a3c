#pragma once
// Reads the TLS ClientHello the phone sends first, without consuming it: the SNI says which
// leaf to mint and which host to dial, ALPN what the client speaks. Sans-io; the handshake
// later replays the same bytes into OpenSSL.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace leakscope::proxy {

struct client_hello {
  std::string sni;  // empty when the client sent none (IP-literal connections)
  std::vector<std::string> alpn;
  std::uint16_t legacy_version = 0;
};

enum class hello_status {
  need_more,  // a prefix of a ClientHello: read more bytes
  complete,
  not_tls,    // first byte is not a TLS handshake record: plain text inside the tunnel
  malformed,  // a TLS record that is not a sane ClientHello; see reason
};

struct hello_result {
  hello_status status = hello_status::need_more;
  client_hello hello;
  std::string reason;
};

// Parses the ClientHello at the start of `bytes`, reassembled across TLS records. A hello that
// would need more than `cap` bytes is malformed rather than buffered without bound.
hello_result parse_client_hello(std::string_view bytes, std::size_t cap = 64 * 1024);

// What a transparently redirected connection carries, judged from its first bytes (transparent
// mode has no CONNECT to say so). `other` carries a guess at the protocol for the flow record.
enum class first_bytes_kind { need_more, tls, http, other };
struct first_bytes {
  first_bytes_kind kind = first_bytes_kind::need_more;
  std::string protocol;  // "tls", "http", or for `other`: "mqtt", "xmpp", "ssh", "http2", "unknown"
};
first_bytes classify_first_bytes(std::string_view bytes, std::uint16_t port);

}  // namespace leakscope::proxy
