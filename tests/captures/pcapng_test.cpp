#include "captures/pcapng.hpp"
#include "certs/leaf.hpp"

#include <doctest/doctest.h>

#include <sstream>
#include <openssl/ssl.h>

#include <cstdio>
#include <fstream>

using namespace leakscope::captures;

namespace {

std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (const char c : s) {
    out += d[static_cast<unsigned char>(c) >> 4];
    out += d[static_cast<unsigned char>(c) & 15];
  }
  return out;
}

struct temp_file {
  std::string path;
  temp_file() {
    char tmpl[] = "/tmp/leakscope-pcapng-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    ::close(fd);
    path = tmpl;
  }
  ~temp_file() { std::remove(path.c_str()); }
};

std::string tshark(const std::string& file, const std::string& args) {
  const std::string cmd = "tshark -r " + file + " " + args + " 2>/dev/null";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) {
      out.append(buf, n);
    }
    ::pclose(p);
  }
  return out;
}

// One capture: header, one interface, optional secrets, then the connection's frames.
std::string capture(pcapng::tcp_connection& c, const std::vector<std::pair<bool, std::string>>& exchange,
                    const std::string& secrets = {}, const std::string& comment_on_first = {}) {
  std::string file = pcapng::section_header("leakscope test") + pcapng::interface_description(pcapng::linktype_ethernet, "phone");
  if (!secrets.empty()) {
    file += pcapng::decryption_secrets(secrets);
  }
  std::uint64_t t = 1'795'441'512'000'000;
  for (const auto& f : c.open()) {
    file += pcapng::enhanced_packet(0, t++, f);
  }
  bool first = true;
  for (const auto& [from_client, bytes] : exchange) {
    const auto frames = c.send(from_client, bytes);
    for (std::size_t i = 0; i < frames.size(); ++i) {
      // Wireshark shows a reassembled message on its last segment: that is where a comment goes.
      const bool last = i + 1 == frames.size();
      file += pcapng::enhanced_packet(0, t++, frames[i], from_client && first && last ? comment_on_first : std::string());
    }
    first = first && !from_client;
  }
  for (const auto& f : c.close()) {
    file += pcapng::enhanced_packet(0, t++, f);
  }
  return file;
}

}  // namespace

TEST_CASE("section header block (golden)") {
  CHECK(hex(pcapng::section_header("leakscope")) ==
        "0a0d0d0a"           // block type
        "30000000"           // total length 48
        "4d3c2b1a"           // byte-order magic
        "01000000"           // version 1.0
        "ffffffffffffffff"   // section length unknown
        "0400" "0900" "6c65616b73636f7065000000"  // shb_userappl "leakscope", padded
        "00000000"           // end of options
        "30000000");
}

TEST_CASE("blocks read back, and a truncated file is readable up to its last whole block") {
  const auto a = pcapng::section_header("x");
  const auto b = pcapng::interface_description(pcapng::linktype_ethernet, "phone");
  const auto c = pcapng::enhanced_packet(0, 42, "frame bytes", "a comment");
  const std::string file = a + b + c;
  std::size_t valid = 0;
  auto blocks = pcapng::read_blocks(file, &valid);
  REQUIRE(blocks.size() == 3);
  CHECK(blocks[2].type == pcapng::block_epb);
  CHECK(valid == file.size());
  blocks = pcapng::read_blocks(std::string_view(file).substr(0, file.size() - 5), &valid);
  CHECK(blocks.size() == 2);
  CHECK(valid == a.size() + b.size());

  // Walking a stream agrees with reading the whole file, cut at every byte and corrupted.
  std::string damaged = file;
  damaged[a.size() + b.size() - 1] ^= 1;  // b's trailing length no longer matches
  for (const auto& whole : {file, damaged}) {
    for (std::size_t cut = 0; cut <= whole.size(); ++cut) {
      CAPTURE(cut);
      const auto part = whole.substr(0, cut);
      std::istringstream in(part);
      const auto walk = pcapng::walk_blocks(in);
      std::size_t read_valid = 0;
      CHECK(walk.blocks == pcapng::read_blocks(part, &read_valid).size());
      CHECK(walk.valid_bytes == read_valid);
      CHECK(walk.size == cut);
    }
  }
}

TEST_CASE("a synthetic TCP stream reads as HTTP in tshark, with the packet comment") {
  pcapng::tcp_connection conn(*pcapng::make_endpoint("192.168.1.23", 53211), *pcapng::make_endpoint("203.0.113.7", 80));
  const std::string request = "POST /app_logs?imei=1 HTTP/1.1\r\nHost: alog.umeng.com\r\nContent-Length: 2000\r\n\r\n" +
                              std::string(2000, 'x');  // longer than one MSS: two segments
  const auto file = capture(conn, {{true, request}, {false, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok!"}}, {},  // odd length: the checksum pads
                            "leak 1: imei → Umeng (third party)");
  temp_file f;
  std::ofstream(f.path, std::ios::binary) << file;
  CHECK(tshark(f.path, "-Y http.request -T fields -e http.host -e http.request.uri -e frame.comment") ==
        "alog.umeng.com\t/app_logs?imei=1\tleak 1: imei → Umeng (third party)\n");
  CHECK(tshark(f.path, "-Y http.response -T fields -e http.response.code") == "200\n");
  CHECK(tshark(f.path, "-Y tcp.analysis.flags -T fields -e frame.number").empty());  // no retransmissions or gaps
  CHECK(tshark(f.path, "-o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE -Y \"tcp.checksum.status == 0 || ip.checksum.status == 0\" -T fields -e frame.number").empty());
}

// RFC 1071 one 16-bit word at a time: what the frames' checksums are held to.
std::uint32_t naive_sum(std::string_view bytes, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i < bytes.size(); i += 2) {
    const unsigned high = static_cast<unsigned char>(bytes[i]);
    const unsigned low = i + 1 < bytes.size() ? static_cast<unsigned char>(bytes[i + 1]) : 0;
    sum += high << 8 | low;
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return sum;
}

TEST_CASE("TCP and IPv4 checksums verify for every payload length and byte value") {
  pcapng::tcp_connection conn(*pcapng::make_endpoint("192.168.1.23", 53211), *pcapng::make_endpoint("203.0.113.7", 443));
  std::vector<std::size_t> sizes;
  for (std::size_t n = 0; n <= 300; ++n) {
    sizes.push_back(n);
  }
  sizes.insert(sizes.end(), {4095, 4096, 4097, 65000});
  for (const char fill : {'\x00', '\xff', '\x7f', '\x80'}) {
    for (const std::size_t n : sizes) {
      CAPTURE(n);
      CAPTURE(static_cast<int>(fill));
      std::string payload(n, fill);
      for (std::size_t i = 0; i < n; i += 7) {
        payload[i] = static_cast<char>(i * 131);  // some variety among the fill, carries included
      }
      const auto frames = conn.send(true, payload, 65535);
      const auto frame = frames.empty() ? conn.close().front() : frames.front();  // a FIN carries no payload
      const std::string_view ip = std::string_view(frame).substr(14, 20);
      CHECK(naive_sum(ip) == 0xffff);
      const std::string_view tcp = std::string_view(frame).substr(34);
      REQUIRE(tcp.size() == 20 + n);
      std::string pseudo(ip.substr(12, 8));  // source and destination addresses
      pseudo += '\0';
      pseudo += '\x06';
      pseudo += static_cast<char>(tcp.size() >> 8);
      pseudo += static_cast<char>(tcp.size() & 0xff);
      CHECK(naive_sum(tcp, naive_sum(pseudo)) == 0xffff);
    }
  }
}

TEST_CASE("IPv6 endpoints") {
  pcapng::tcp_connection conn(*pcapng::make_endpoint("2001:db8::23", 40000), *pcapng::make_endpoint("2001:db8::7", 80));
  const auto file = capture(conn, {{true, "GET /v6 HTTP/1.1\r\nHost: six.example\r\n\r\n"}});
  temp_file f;
  std::ofstream(f.path, std::ios::binary) << file;
  CHECK(tshark(f.path, "-Y http.request -T fields -e ipv6.src -e http.request.uri") == "2001:db8::23\t/v6\n");
  // The TCP checksum over the IPv6 pseudo header (RFC 8200 §8.1), for odd and even payloads.
  for (const std::string& payload : std::vector<std::string>{"", "x", "GET / HTTP/1.1\r\n\r\n", std::string(1001, '\xff')}) {
    CAPTURE(payload.size());
    const auto frames = conn.send(false, payload, 65535);
    const auto frame = frames.empty() ? conn.close().front() : frames.front();
    const std::string_view ip = std::string_view(frame).substr(14, 40);
    const std::string_view tcp = std::string_view(frame).substr(54);
    REQUIRE(tcp.size() == 20 + payload.size());
    std::string pseudo(ip.substr(8, 32));  // source and destination addresses
    pseudo += std::string("\0\0", 2);
    pseudo += static_cast<char>(tcp.size() >> 8);
    pseudo += static_cast<char>(tcp.size() & 0xff);
    pseudo += std::string("\0\0\0\x06", 4);
    CHECK(naive_sum(tcp, naive_sum(pseudo)) == 0xffff);
  }
}

TEST_CASE("TLS bytes with a Decryption Secrets Block are decrypted by stock tshark") {
  char tmpl[] = "/tmp/leakscope-pcapng-ca-XXXXXX";
  const std::filesystem::path dir = ::mkdtemp(tmpl);
  const auto ca = leakscope::certs::certificate_authority::load_or_create(dir);
  const auto leaf = leakscope::certs::mint_leaf(ca, "alog.umeng.com", std::chrono::system_clock::now(),
                                                leakscope::certs::random_serial());
  SSL_CTX* sctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  static std::string keys;
  keys.clear();
  SSL_CTX_set_keylog_callback(cctx, [](const SSL*, const char* line) { keys += std::string(line) + "\n"; });
  SSL_CTX_use_certificate(sctx, leaf->cert.get());
  SSL_CTX_use_PrivateKey(sctx, leaf->key.get());
  SSL* server = SSL_new(sctx);
  SSL* client = SSL_new(cctx);
  BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem()), *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
  SSL_set_bio(client, c_in, c_out);
  SSL_set_bio(server, s_in, s_out);
  SSL_set_tlsext_host_name(client, "alog.umeng.com");
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  std::vector<std::pair<bool, std::string>> wire;  // what crossed the network, in order
  auto pump = [&](BIO* from, BIO* to, bool from_client) {
    char buf[16384];
    std::string chunk;
    for (int n; (n = BIO_read(from, buf, sizeof buf)) > 0;) {
      chunk.append(buf, static_cast<std::size_t>(n));
    }
    if (!chunk.empty()) {
      BIO_write(to, chunk.data(), static_cast<int>(chunk.size()));
      wire.emplace_back(from_client, chunk);
    }
  };
  for (int i = 0; i < 10 && !(SSL_is_init_finished(client) && SSL_is_init_finished(server)); ++i) {
    SSL_do_handshake(client);
    pump(c_out, s_in, true);
    SSL_do_handshake(server);
    pump(s_out, c_in, false);
  }
  REQUIRE(SSL_is_init_finished(client));
  const std::string request = "GET /secret?imei=865432101234564 HTTP/1.1\r\nHost: alog.umeng.com\r\n\r\n";
  SSL_write(client, request.data(), static_cast<int>(request.size()));
  pump(c_out, s_in, true);
  char got[512];
  CHECK(SSL_read(server, got, sizeof got) == static_cast<int>(request.size()));

  pcapng::tcp_connection conn(*pcapng::make_endpoint("192.168.1.23", 53211), *pcapng::make_endpoint("203.0.113.7", 443));
  const auto file = capture(conn, wire, keys);
  temp_file f;
  std::ofstream(f.path, std::ios::binary) << file;
  CHECK(tshark(f.path, "-Y http.request -T fields -e tls.handshake.extensions_server_name -e http.request.uri")
            .find("/secret?imei=865432101234564") != std::string::npos);
  // Without the secrets block the same bytes stay opaque.
  pcapng::tcp_connection conn2(*pcapng::make_endpoint("192.168.1.23", 53211), *pcapng::make_endpoint("203.0.113.7", 443));
  const auto opaque = capture(conn2, wire);
  std::ofstream(f.path, std::ios::binary | std::ios::trunc) << opaque;
  CHECK(tshark(f.path, "-Y http.request -T fields -e http.request.uri").empty());

  SSL_free(client);
  SSL_free(server);
  SSL_CTX_free(cctx);
  SSL_CTX_free(sctx);
  std::filesystem::remove_all(dir);
}

// The taps build each block in one buffer; it must be the block the two pure steps build.
TEST_CASE("send_packets, open_packets and close_packets are enhanced_packet of what send, open and close frame") {
  for (const auto& [client, server] : {std::pair{"192.168.1.23", "203.0.113.7"}, std::pair{"2001:db8::23", "2001:db8::7"}}) {
    CAPTURE(client);
    pcapng::tcp_connection a(*pcapng::make_endpoint(client, 53211), *pcapng::make_endpoint(server, 443));
    pcapng::tcp_connection b = a;
    for (const std::size_t size : {1u, 2u, 3u, 5u, 1460u, 1461u, 4001u}) {
      CAPTURE(size);
      std::string bytes(size, '\0');
      for (std::size_t i = 0; i < size; ++i) {
        bytes[i] = static_cast<char>(i * 7 + size);
      }
      for (const bool from_client : {true, false}) {
        const std::string comment = size % 2 ? "leak 3: imei" : "";
        const auto frames = a.send(from_client, bytes, 1460);
        const auto blocks = b.send_packets(1, 1'795'441'512'000'123, from_client, bytes, 1460, comment);
        REQUIRE(blocks.size() == frames.size());
        for (std::size_t i = 0; i < frames.size(); ++i) {
          const bool last = i + 1 == frames.size();
          CHECK(hex(blocks[i]) == hex(pcapng::enhanced_packet(1, 1'795'441'512'000'123, frames[i], last ? comment : "")));
        }
      }
    }
    const auto wrapped = [](const std::vector<std::string>& frames) {
      std::vector<std::string> out;
      for (const auto& f : frames) {
        out.push_back(hex(pcapng::enhanced_packet(0, 42, f)));
      }
      return out;
    };
    const auto hexed = [](const std::vector<std::string>& blocks) {
      std::vector<std::string> out;
      for (const auto& b : blocks) {
        out.push_back(hex(b));
      }
      return out;
    };
    CHECK(hexed(b.close_packets(0, 42)) == wrapped(a.close()));
    pcapng::tcp_connection c(*pcapng::make_endpoint(client, 1), *pcapng::make_endpoint(server, 2));
    pcapng::tcp_connection d = c;
    CHECK(hexed(d.open_packets(0, 42)) == wrapped(c.open()));
  }
}

TEST_CASE("a comment added to a built packet gives the block built with it") {
  for (const std::size_t frame_size : {0u, 1u, 2u, 3u, 4u, 54u, 1001u}) {
    const std::string frame(frame_size, '\x5a');
    for (const std::string comment : {"leak 1: imei -> Umeng (third party)", "x", "abcd", "leak 12: 张三"}) {
      CAPTURE(frame_size);
      CAPTURE(comment);
      std::string block = pcapng::enhanced_packet(0, 1'795'441'512'123'456, frame);
      pcapng::add_comment(block, comment);
      CHECK(block == pcapng::enhanced_packet(0, 1'795'441'512'123'456, frame, comment));
    }
    std::string block = pcapng::enhanced_packet(1, 7, frame);
    const std::string before = block;
    pcapng::add_comment(block, "");
    CHECK(block == before);
  }
}
