#include "proxy/websocket.hpp"

#include <doctest/doctest.h>
#include <zlib.h>

using namespace leakscope::proxy;
using websocket::message;
using websocket::options;
using websocket::reader;

namespace {

// One client frame: masked, as RFC 6455 §5.3 requires of clients.
std::string frame(int opcode, std::string_view payload, bool fin = true, bool rsv1 = false, bool mask = true) {
  std::string f;
  f += static_cast<char>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode);
  const char mask_bit = mask ? static_cast<char>(0x80) : 0;
  if (payload.size() < 126) {
    f += static_cast<char>(mask_bit | static_cast<char>(payload.size()));
  } else if (payload.size() < 65536) {
    f += static_cast<char>(mask_bit | 126);
    f += static_cast<char>(payload.size() >> 8);
    f += static_cast<char>(payload.size() & 0xff);
  } else {
    f += static_cast<char>(mask_bit | 127);
    for (int i = 7; i >= 0; --i) {
      f += static_cast<char>((static_cast<std::uint64_t>(payload.size()) >> (8 * i)) & 0xff);
    }
  }
  const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (mask) {
    f.append(reinterpret_cast<const char*>(key), 4);
  }
  for (std::size_t i = 0; i < payload.size(); ++i) {
    f += mask ? static_cast<char>(payload[i] ^ key[i & 3]) : payload[i];
  }
  return f;
}

// permessage-deflate: raw deflate with one sync flush per message, the 00 00 ff ff tail dropped
// (RFC 7692 §7.2.1). One stream across messages: context takeover.
struct deflater {
  z_stream z{};
  deflater() { deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY); }
  ~deflater() { deflateEnd(&z); }
  std::string message(std::string_view text) {
    std::string out(deflateBound(&z, text.size()) + 16, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    z.avail_in = static_cast<uInt>(text.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    deflate(&z, Z_SYNC_FLUSH);
    out.resize(out.size() - z.avail_out);
    REQUIRE(out.substr(out.size() - 4) == std::string("\x00\x00\xff\xff", 4));
    out.resize(out.size() - 4);
    return out;
  }
};

// Feeds `bytes` split at `cut` (and whole when cut is 0).
std::vector<message> read(const options& o, const std::string& bytes, std::size_t cut, std::string* error = nullptr) {
  reader r(o);
  std::vector<message> out;
  if (cut == 0) {
    r.feed(bytes, out);
  } else {
    r.feed(std::string_view(bytes).substr(0, cut), out);
    r.feed(std::string_view(bytes).substr(cut), out);
  }
  if (error != nullptr) {
    *error = r.error();
  }
  return out;
}

http1::message_head head(std::initializer_list<http1::header_field> headers, int status = 0) {
  http1::message_head h;
  h.status = status;
  h.headers = headers;
  return h;
}

}  // namespace

TEST_CASE("masked, fragmented messages with a ping between fragments, split at every byte") {
  const std::string bytes = frame(0x1, R"({"imei":"8654)", false) + frame(0x9, "ping") +
                            frame(0x0, R"(32101234564"})", true) + frame(0x2, std::string("\x08\x96\x01", 3)) +
                            frame(0x8, "\x03\xe8");
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    CAPTURE(cut);
    std::string error;
    const auto messages = read({}, bytes, cut, &error);
    CHECK(error.empty());
    REQUIRE(messages.size() == 2);
    CHECK(messages[0].text);
    CHECK(messages[0].data == R"({"imei":"865432101234564"})");
    CHECK_FALSE(messages[1].text);
    CHECK(messages[1].data == std::string("\x08\x96\x01", 3));
  }
}

TEST_CASE("16- and 64-bit lengths") {
  const std::string medium(300, 'a'), large(70000, 'b');
  const auto messages = read({}, frame(0x1, medium) + frame(0x2, large), 0);
  REQUIRE(messages.size() == 2);
  CHECK(messages[0].data == medium);
  CHECK(messages[1].data == large);
}

TEST_CASE("permessage-deflate with context takeover across messages, split at every byte") {
  deflater d;
  const std::string first = R"({"event":"start","imei":"865432101234564"})";
  const std::string second = R"({"event":"start","imei":"865432101234564","again":true})";  // refers back
  const std::string c1 = d.message(first), c2 = d.message(second);
  const std::string bytes = frame(0x1, c1, true, true) + frame(0x1, c2.substr(0, 5), false, true) +
                            frame(0x0, c2.substr(5), true, false);
  options o;
  o.deflate = true;
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    CAPTURE(cut);
    const auto messages = read(o, bytes, cut);
    REQUIRE(messages.size() == 2);
    CHECK(messages[0].compressed);
    CHECK(messages[0].data == first);
    CHECK(messages[1].data == second);
    CHECK_FALSE(messages[1].decode_error);
  }
}

TEST_CASE("a compressed bomb stops at the cap and says so; an uncompressed message too") {
  deflater d;
  const std::string zeros(8u << 20, '\0');
  const std::string bomb = d.message(zeros);
  CHECK(bomb.size() < 20000);
  options o;
  o.deflate = true;
  o.max_decoded = 1u << 20;
  auto messages = read(o, frame(0x2, bomb, true, true), 0);
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].truncated);
  CHECK(messages[0].data.size() == (1u << 20));
  o.max_message = 1000;
  messages = read(o, frame(0x1, std::string(5000, 'x')), 0);
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].truncated);
  CHECK(messages[0].data == std::string(1000, 'x'));
}

TEST_CASE("protocol errors stop the reader with a reason") {
  const struct {
    std::string bytes;
    const char* reason;
  } cases[] = {
      {frame(0x1, "x", true, false, false), "without a mask"},
      {frame(0x1, "x", true, true), "reserved bits"},
      {frame(0x0, "x"), "continuation frame outside"},
      {frame(0x1, "a", false) + frame(0x1, "b"), "new message inside"},
      {frame(0x3, "x"), "reserved data opcode"},
      {frame(0xb, "x"), "reserved control opcode"},
      {frame(0x9, "x", false), "fragmented, compressed or long control"},
      {frame(0x9, std::string(126, 'x')), "fragmented, compressed or long control"},
  };
  for (const auto& c : cases) {
    std::string error;
    read({}, c.bytes, 0, &error);
    CHECK_MESSAGE(error.find(c.reason) != std::string::npos, error);
  }
}

TEST_CASE("the session is a websocket only when both sides agree, with the server's extensions") {
  const auto request = head({{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                             {"Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"}});
  auto o = websocket::negotiated(request, head({{"Upgrade", "WebSocket"}, {"Connection", "upgrade"}}, 101));
  REQUIRE(o);
  CHECK_FALSE(o->deflate);
  o = websocket::negotiated(request, head({{"Upgrade", "websocket"},
                                           {"Sec-WebSocket-Extensions", "permessage-deflate; client_no_context_takeover"}}, 101));
  REQUIRE(o);
  CHECK(o->deflate);
  CHECK(o->no_context_takeover);
  CHECK_FALSE(websocket::negotiated(request, head({{"Upgrade", "websocket"}}, 200)));
  CHECK_FALSE(websocket::negotiated(head({{"Upgrade", "h2c"}}), head({{"Upgrade", "h2c"}}, 101)));
}
