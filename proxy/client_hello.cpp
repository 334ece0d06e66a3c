#include "proxy/client_hello.hpp"

#include <optional>

namespace leakscope::proxy {

namespace {

constexpr std::uint8_t record_handshake = 22;
constexpr std::uint8_t handshake_client_hello = 1;
constexpr std::uint16_t ext_server_name = 0;
constexpr std::uint16_t ext_alpn = 16;
constexpr std::size_t max_record = (1u << 14) + 2048;  // RFC 8446 §5.2 upper bound

// Bounds-checked big-endian reader over the handshake message.
class cursor {
 public:
  explicit cursor(std::string_view d) : d_(d) {}
  bool ok() const { return ok_; }
  std::size_t left() const { return d_.size() - pos_; }
  std::uint32_t u(int bytes) {
    if (!ok_ || left() < static_cast<std::size_t>(bytes)) {
      ok_ = false;
      return 0;
    }
    std::uint32_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      v = (v << 8) | static_cast<std::uint8_t>(d_[pos_++]);
    }
    return v;
  }
  std::string_view take(std::size_t n) {
    if (!ok_ || left() < n) {
      ok_ = false;
      return {};
    }
    auto s = d_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  // A vector with a `bytes`-wide length prefix, as its own cursor.
  cursor vec(int bytes) { return cursor(take(u(bytes)), ok_); }

 private:
  cursor(std::string_view d, bool ok) : d_(d), ok_(ok) {}
  std::string_view d_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

hello_result malformed(std::string reason) {
  hello_result r;
  r.status = hello_status::malformed;
  r.reason = std::move(reason);
  return r;
}

}  // namespace

hello_result parse_client_hello(std::string_view bytes, std::size_t cap) {
  if (bytes.empty()) {
    return {};
  }
  if (static_cast<std::uint8_t>(bytes[0]) != record_handshake) {
    hello_result r;
    r.status = hello_status::not_tls;
    return r;
  }
  // Gather the handshake fragments of consecutive records (RFC 8446 §5.1 allows a ClientHello
  // to be split across records).
  std::string handshake;
  std::size_t pos = 0;
  std::optional<std::size_t> needed;  // 4 + handshake length, once known
  while (!needed || handshake.size() < *needed) {
    if (bytes.size() - pos < 5) {
      return {};
    }
    const auto type = static_cast<std::uint8_t>(bytes[pos]);
    const auto major = static_cast<std::uint8_t>(bytes[pos + 1]);
    const std::size_t len = (static_cast<std::uint8_t>(bytes[pos + 3]) << 8) | static_cast<std::uint8_t>(bytes[pos + 4]);
    if (type != record_handshake) {
      return malformed("record of type " + std::to_string(type) + " inside the ClientHello");
    }
    if (major != 3) {
      return malformed("record version " + std::to_string(major) + ".x is not TLS");
    }
    if (len == 0 || len > max_record) {
      return malformed("record length " + std::to_string(len) + " out of range");
    }
    if (pos + 5 + len > cap) {
      return malformed("ClientHello larger than " + std::to_string(cap) + " bytes");
    }
    if (bytes.size() - pos - 5 < len) {
      return {};
    }
    handshake.append(bytes.substr(pos + 5, len));
    pos += 5 + len;
    if (!needed && handshake.size() >= 4) {
      if (static_cast<std::uint8_t>(handshake[0]) != handshake_client_hello) {
        return malformed("first handshake message is not a ClientHello");
      }
      needed = 4 + ((static_cast<std::size_t>(static_cast<std::uint8_t>(handshake[1])) << 16) |
                    (static_cast<std::size_t>(static_cast<std::uint8_t>(handshake[2])) << 8) |
                    static_cast<std::uint8_t>(handshake[3]));
      if (*needed > cap) {
        return malformed("ClientHello larger than " + std::to_string(cap) + " bytes");
      }
    }
  }

  hello_result r;
  cursor c(std::string_view(handshake).substr(4, *needed - 4));
  r.hello.legacy_version = static_cast<std::uint16_t>(c.u(2));
  c.take(32);  // random
  c.vec(1);    // legacy session id
  c.vec(2);    // cipher suites
  c.vec(1);    // compression methods
  if (!c.ok()) {
    return malformed("ClientHello shorter than its fixed fields");
  }
  if (c.left() == 0) {
    r.status = hello_status::complete;  // no extensions at all (pre-TLS 1.2 style)
    return r;
  }
  cursor exts = c.vec(2);
  while (exts.ok() && exts.left() > 0) {
    const auto type = exts.u(2);
    const auto data = exts.take(exts.u(2));
    if (!exts.ok()) {
      break;
    }
    if (type == ext_server_name) {
      cursor list = cursor(data).vec(2);
      while (list.ok() && list.left() > 0) {
        const auto name_type = list.u(1);
        const auto name = list.take(list.u(2));
        if (list.ok() && name_type == 0) {  // host_name, RFC 6066 §3
          r.hello.sni = std::string(name);
          break;
        }
      }
    } else if (type == ext_alpn) {
      cursor list = cursor(data).vec(2);
      while (list.ok() && list.left() > 0) {
        const auto proto = list.take(list.u(1));
        if (list.ok()) {
          r.hello.alpn.emplace_back(proto);
        }
      }
    }
  }
  if (!exts.ok()) {
    return malformed("extension block overruns the ClientHello");
  }
  r.status = hello_status::complete;
  return r;
}

first_bytes classify_first_bytes(std::string_view bytes, std::uint16_t port) {
  if (bytes.empty()) {
    return {};
  }
  if (bytes[0] == 0x16) {
    return {first_bytes_kind::tls, "tls"};
  }
  // HTTP/2 with prior knowledge starts with a request line of its own (RFC 9113 §3.4).
  static constexpr std::string_view h2_preface = "PRI * HTTP/2.0\r\n";
  if (bytes.substr(0, h2_preface.size()) == h2_preface.substr(0, bytes.size())) {
    return bytes.size() >= h2_preface.size() ? first_bytes{first_bytes_kind::other, "http2"} : first_bytes{};
  }
  // An HTTP/1 request line: a method token of capitals, then a space (RFC 9112 §3).
  std::size_t i = 0;
  while (i < bytes.size() && i < 16 && bytes[i] >= 'A' && bytes[i] <= 'Z') {
    ++i;
  }
  if (i == bytes.size() && i < 16) {
    return {};  // capitals so far: a method may still follow
  }
  if (i >= 3 && i < 16 && i < bytes.size() && bytes[i] == ' ') {
    return {first_bytes_kind::http, "http"};
  }
  std::string protocol = "unknown";
  const auto first = static_cast<unsigned char>(bytes[0]);
  if (bytes.substr(0, 4) == "SSH-") {
    protocol = "ssh";
  } else if (bytes[0] == '<') {
    protocol = "xmpp";  // <?xml …><stream:stream …>
  } else if ((first == 0x10 && (port == 1883 || port == 8883 || bytes.find("MQTT") != std::string_view::npos))) {
    protocol = "mqtt";  // CONNECT packet, with its "MQTT" protocol name
  }
  return {first_bytes_kind::other, protocol};
}

}  // namespace leakscope::proxy
