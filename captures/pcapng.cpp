#include "captures/pcapng.hpp"

#include <arpa/inet.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <bit>
#include <cstring>

namespace leakscope::captures::pcapng {

namespace {

// pcapng's fields are in the writer's byte order, here little-endian (the section header's
// magic says which); the frames' headers are in network order. Headers are stored into a
// local array and appended once: a byte at a time, each packet's 80 bytes of headers took
// more instructions than anything else the recorder does for a small exchange.
static_assert(std::endian::native == std::endian::little);

void store_le32(char* p, std::uint32_t v) { std::memcpy(p, &v, 4); }
void store_be16(char* p, std::uint16_t v) {
  p[0] = static_cast<char>(v >> 8);
  p[1] = static_cast<char>(v & 0xff);
}
void store_be32(char* p, std::uint32_t v) {
  store_be16(p, static_cast<std::uint16_t>(v >> 16));
  store_be16(p + 2, static_cast<std::uint16_t>(v & 0xffff));
}

void put16(std::string& out, std::uint16_t v) { out.append(reinterpret_cast<const char*>(&v), 2); }
void put32(std::string& out, std::uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }

void pad4(std::string& out) { out.append((4 - out.size() % 4) % 4, '\0'); }

// An option: code, length, value padded to 32 bits.
void option(std::string& out, std::uint16_t code, std::string_view value) {
  put16(out, code);
  put16(out, static_cast<std::uint16_t>(value.size()));
  out.append(value);
  pad4(out);
}

void end_of_options(std::string& out) {
  put16(out, 0);
  put16(out, 0);
}

// type, total length, body, total length again (pcapng §3.1).
std::string wrap(std::uint32_t type, const std::string& body) {
  std::string out;
  const auto total = static_cast<std::uint32_t>(12 + body.size());
  put32(out, type);
  put32(out, total);
  out += body;
  put32(out, total);
  return out;
}

std::uint32_t get32(std::string_view s, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) {
    v = (v << 8) | static_cast<std::uint8_t>(s[at + static_cast<std::size_t>(i)]);
  }
  return v;
}

// RFC 1071 ones' complement sum of big-endian 16-bit words, added to `sum`. Every captured
// segment is summed, so it is done 8 bytes at a time in host order: the ones' complement sum
// does not depend on byte order except for a final swap (RFC 1071 §2(B)).
// The ones' complement sum of RFC 1071 over `data` as big-endian 16-bit words, added to `sum`.
// Summed in host order and swapped once at the end (RFC 1071 §2(B)). Every payload byte
// captured passes through here, so 16 bytes at a time where SSE2 is there.
#if defined(__x86_64__)
// 32 bytes a step where the CPU has AVX2 (chosen at run time): the sum of a download's three
// copies of every byte was 4 % of the proxy's time. Returns how many bytes it summed into `acc`.
[[gnu::target("avx2")]] std::size_t sum16_avx2(std::string_view data, std::uint64_t& acc) {
  std::size_t i = 0;
  const __m256i zero = _mm256_setzero_si256();
  while (i + 32 <= data.size()) {
    // Each 32-bit lane gains at most 2 x 65535 a step: emptied every 16,384 steps.
    const std::size_t block_end = i + std::min<std::size_t>((data.size() - i) / 32, 16384) * 32;
    __m256i lanes = zero;
    for (; i < block_end; i += 32) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data.data() + i));
      lanes = _mm256_add_epi32(lanes, _mm256_unpacklo_epi16(v, zero));
      lanes = _mm256_add_epi32(lanes, _mm256_unpackhi_epi16(v, zero));
    }
    alignas(32) std::uint32_t parts[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(parts), lanes);
    for (const std::uint32_t part : parts) {
      acc += part;
    }
  }
  return i;
}

bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

std::uint32_t sum16(std::string_view data, std::uint32_t sum = 0) {
  static_assert(std::endian::native == std::endian::little);
  std::uint64_t acc = 0;
  std::size_t i = 0;
#if defined(__x86_64__)
  if (data.size() >= 64 && has_avx2()) {
    i = sum16_avx2(data, acc);
  }
#endif
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  while (i + 16 <= data.size()) {
    // Each 32-bit lane gains at most 2 x 65535 a step: emptied every 16,384 steps, long before
    // it could overflow.
    const std::size_t block_end = i + std::min<std::size_t>((data.size() - i) / 16, 16384) * 16;
    __m128i lanes = zero;
    for (; i < block_end; i += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data.data() + i));
      lanes = _mm_add_epi32(lanes, _mm_unpacklo_epi16(v, zero));
      lanes = _mm_add_epi32(lanes, _mm_unpackhi_epi16(v, zero));
    }
    alignas(16) std::uint32_t parts[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(parts), lanes);
    acc += std::uint64_t{parts[0]} + parts[1] + parts[2] + parts[3];
  }
#endif
  for (; i + 8 <= data.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, data.data() + i, 8);
    acc += (w & 0xffffffffu) + (w >> 32);  // each term < 2^33: no overflow below 2^31 words
  }
  for (; i + 2 <= data.size(); i += 2) {
    std::uint16_t w;
    std::memcpy(&w, data.data() + i, 2);
    acc += w;
  }
  if (i < data.size()) {
    acc += static_cast<std::uint8_t>(data[i]);  // the odd byte, zero-padded, in host order
  }
  while (acc >> 16) {
    acc = (acc & 0xffff) + (acc >> 16);
  }
  return sum + static_cast<std::uint32_t>(((acc & 0xff) << 8) | (acc >> 8));
}

std::uint16_t fold(std::uint32_t sum) {
  while (sum >> 16) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<std::uint16_t>(~sum);
}

constexpr std::uint8_t tcp_fin = 0x01, tcp_syn = 0x02, tcp_psh = 0x08, tcp_ack = 0x10;

}  // namespace

std::string section_header(std::string_view application) {
  std::string body;
  put32(body, 0x1A2B3C4D);  // byte-order magic
  put16(body, 1);           // version 1.0
  put16(body, 0);
  put32(body, 0xffffffff);  // section length unknown
  put32(body, 0xffffffff);
  option(body, 4, application);  // shb_userappl
  end_of_options(body);
  return wrap(block_shb, body);
}

std::string interface_description(std::uint16_t linktype, std::string_view name) {
  std::string body;
  put16(body, linktype);
  put16(body, 0);
  put32(body, 0);  // no snap length limit
  option(body, 2, name);                     // if_name
  option(body, 9, std::string_view("\x06", 1));  // if_tsresol: 10^-6 s
  end_of_options(body);
  return wrap(block_idb, body);
}

std::string enhanced_packet(std::uint32_t interface, std::uint64_t timestamp_us, std::string_view frame,
                            std::string_view comment) {
  std::string body;
  put32(body, interface);
  put32(body, static_cast<std::uint32_t>(timestamp_us >> 32));
  put32(body, static_cast<std::uint32_t>(timestamp_us & 0xffffffff));
  put32(body, static_cast<std::uint32_t>(frame.size()));  // captured
  put32(body, static_cast<std::uint32_t>(frame.size()));  // on the wire
  body.append(frame);
  pad4(body);
  if (!comment.empty()) {
    option(body, 1, comment);  // opt_comment
    end_of_options(body);
  }
  return wrap(block_epb, body);
}

void add_comment(std::string& epb, std::string_view comment) {
  if (comment.empty() || epb.size() < 32) {
    return;
  }
  epb.resize(epb.size() - 4);  // the trailing total length
  option(epb, 1, comment);     // opt_comment
  end_of_options(epb);
  const auto total = static_cast<std::uint32_t>(epb.size() + 4);
  put32(epb, total);
  store_le32(epb.data() + 4, total);
}

std::string decryption_secrets(std::string_view tls_key_log) {
  std::string body;
  put32(body, secrets_tls_key_log);
  put32(body, static_cast<std::uint32_t>(tls_key_log.size()));
  body.append(tls_key_log);
  pad4(body);
  return wrap(block_dsb, body);
}

std::optional<endpoint> make_endpoint(const std::string& address, std::uint16_t port) {
  endpoint e;
  e.port = port;
  if (inet_pton(AF_INET, address.c_str(), e.address.data()) == 1) {
    return e;
  }
  if (inet_pton(AF_INET6, address.c_str(), e.address.data()) == 1) {
    e.v6 = true;
    return e;
  }
  return std::nullopt;
}

tcp_connection::tcp_connection(endpoint client, endpoint server, std::uint32_t client_isn, std::uint32_t server_isn)
    : client_(client), server_(server), client_seq_(client_isn), server_seq_(server_isn) {}

void tcp_connection::append_frame(std::string& out, bool from_client, std::uint8_t flags, std::string_view payload) {
  const endpoint& src = from_client ? client_ : server_;
  const endpoint& dst = from_client ? server_ : client_;
  std::uint32_t& seq = from_client ? client_seq_ : server_seq_;
  const std::uint32_t ack = from_client ? server_seq_ : client_seq_;
  const std::size_t tcp_size = 20 + payload.size();
  const std::size_t addr_len = src.v6 ? 16 : 4;
  char h[14 + 40 + 20];

  // Ethernet: locally administered MACs, one per side, so Wireshark's conversations pair up.
  const char client_mac[] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
  const char server_mac[] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
  std::memcpy(h, from_client ? server_mac : client_mac, 6);
  std::memcpy(h + 6, from_client ? client_mac : server_mac, 6);
  store_be16(h + 12, src.v6 ? 0x86DD : 0x0800);

  char* const ip = h + 14;
  char* tcp = nullptr;
  if (src.v6) {
    store_be32(ip, 0x60000000);  // version 6
    store_be16(ip + 4, static_cast<std::uint16_t>(tcp_size));
    ip[6] = 6;   // next header: TCP
    ip[7] = 64;  // hop limit
    std::memcpy(ip + 8, src.address.data(), 16);
    std::memcpy(ip + 24, dst.address.data(), 16);
    tcp = ip + 40;
  } else {
    ip[0] = 0x45;
    ip[1] = 0;
    store_be16(ip + 2, static_cast<std::uint16_t>(20 + tcp_size));
    store_be16(ip + 4, 0);       // identification
    store_be16(ip + 6, 0x4000);  // don't fragment
    ip[8] = 64;
    ip[9] = 6;
    store_be16(ip + 10, 0);  // checksum, filled next
    std::memcpy(ip + 12, src.address.data(), 4);
    std::memcpy(ip + 16, dst.address.data(), 4);
    store_be16(ip + 10, fold(sum16(std::string_view(ip, 20))));
    tcp = ip + 20;
  }

  store_be16(tcp, src.port);
  store_be16(tcp + 2, dst.port);
  store_be32(tcp + 4, seq);
  store_be32(tcp + 8, (flags & tcp_ack) ? ack : 0);
  tcp[12] = static_cast<char>(5 << 4);  // data offset: 20 bytes, no options
  tcp[13] = static_cast<char>(flags);
  store_be16(tcp + 14, 65535);  // window
  store_be16(tcp + 16, 0);      // checksum, filled next
  store_be16(tcp + 18, 0);      // urgent pointer

  // The pseudo header of RFC 793 §3.1 / RFC 8200 §8.1 for the TCP checksum. The sums of the
  // header and the payload chain: the header's 20 bytes end on a 16-bit word.
  char pseudo[40];
  std::memcpy(pseudo, src.address.data(), addr_len);
  std::memcpy(pseudo + addr_len, dst.address.data(), addr_len);
  std::size_t pseudo_size = 2 * addr_len;
  if (src.v6) {
    store_be32(pseudo + pseudo_size, static_cast<std::uint32_t>(tcp_size));
    store_be32(pseudo + pseudo_size + 4, 6);
    pseudo_size += 8;
  } else {
    pseudo[pseudo_size] = 0;
    pseudo[pseudo_size + 1] = 6;
    store_be16(pseudo + pseudo_size + 2, static_cast<std::uint16_t>(tcp_size));
    pseudo_size += 4;
  }
  const std::uint32_t header_sum = sum16(std::string_view(tcp, 20), sum16(std::string_view(pseudo, pseudo_size)));
  store_be16(tcp + 16, fold(sum16(payload, header_sum)));

  out.append(h, static_cast<std::size_t>(tcp + 20 - h));
  out.append(payload);
  seq += static_cast<std::uint32_t>(payload.size()) + ((flags & (tcp_syn | tcp_fin)) ? 1 : 0);
}

std::string tcp_connection::frame(bool from_client, std::uint8_t flags, std::string_view payload) {
  std::string out;
  out.reserve(14 + 40 + 20 + payload.size());
  append_frame(out, from_client, flags, payload);
  return out;
}

std::string tcp_connection::packet(std::uint32_t interface, std::uint64_t timestamp_us, bool from_client,
                                   std::uint8_t flags, std::string_view payload, std::string_view comment) {
  // enhanced_packet(frame(…)) in one buffer: one allocation and one copy of the bytes, where
  // the two steps took seven and four. Every captured read goes through here.
  const std::size_t frame_size = 14 + (client_.v6 ? 40 : 20) + 20 + payload.size();
  const std::size_t options = comment.empty() ? 0 : 4 + (comment.size() + 3) / 4 * 4 + 4;
  const auto total = static_cast<std::uint32_t>(12 + 20 + (frame_size + 3) / 4 * 4 + options);
  char head[28];
  store_le32(head, block_epb);
  store_le32(head + 4, total);
  store_le32(head + 8, interface);
  store_le32(head + 12, static_cast<std::uint32_t>(timestamp_us >> 32));
  store_le32(head + 16, static_cast<std::uint32_t>(timestamp_us & 0xffffffff));
  store_le32(head + 20, static_cast<std::uint32_t>(frame_size));  // captured
  store_le32(head + 24, static_cast<std::uint32_t>(frame_size));  // on the wire
  std::string block;
  block.reserve(total);
  block.append(head, sizeof head);
  append_frame(block, from_client, flags, payload);
  pad4(block);
  if (options != 0) {
    option(block, 1, comment);  // opt_comment
    end_of_options(block);
  }
  put32(block, total);
  return block;
}

std::vector<std::string> tcp_connection::send_packets(std::uint32_t interface, std::uint64_t timestamp_us,
                                                      bool from_client, std::string_view bytes, std::size_t mss,
                                                      std::string_view comment) {
  std::vector<std::string> out;
  for (std::size_t at = 0; at < bytes.size(); at += mss) {
    const bool last = at + mss >= bytes.size();
    out.push_back(packet(interface, timestamp_us, from_client, tcp_psh | tcp_ack, bytes.substr(at, mss),
                         last ? comment : std::string_view()));
  }
  return out;
}

std::vector<std::string> tcp_connection::open_packets(std::uint32_t interface, std::uint64_t timestamp_us) {
  return {packet(interface, timestamp_us, true, tcp_syn, {}, {}),
          packet(interface, timestamp_us, false, tcp_syn | tcp_ack, {}, {}),
          packet(interface, timestamp_us, true, tcp_ack, {}, {})};
}

std::vector<std::string> tcp_connection::close_packets(std::uint32_t interface, std::uint64_t timestamp_us) {
  return {packet(interface, timestamp_us, true, tcp_fin | tcp_ack, {}, {}),
          packet(interface, timestamp_us, false, tcp_fin | tcp_ack, {}, {}),
          packet(interface, timestamp_us, true, tcp_ack, {}, {})};
}

std::vector<std::string> tcp_connection::open() {
  return {frame(true, tcp_syn, {}), frame(false, tcp_syn | tcp_ack, {}), frame(true, tcp_ack, {})};
}

std::vector<std::string> tcp_connection::send(bool from_client, std::string_view bytes, std::size_t mss) {
  std::vector<std::string> out;
  for (std::size_t at = 0; at < bytes.size(); at += mss) {
    out.push_back(frame(from_client, tcp_psh | tcp_ack, bytes.substr(at, mss)));
  }
  return out;
}

std::vector<std::string> tcp_connection::close() {
  std::vector<std::string> out;
  out.push_back(frame(true, tcp_fin | tcp_ack, {}));
  out.push_back(frame(false, tcp_fin | tcp_ack, {}));
  out.push_back(frame(true, tcp_ack, {}));
  return out;
}

std::vector<block> read_blocks(std::string_view file, std::size_t* valid_bytes) {
  std::vector<block> out;
  std::size_t at = 0;
  while (file.size() - at >= 12) {
    const auto type = get32(file, at);
    const auto length = get32(file, at + 4);
    if (length < 12 || length % 4 != 0 || length > file.size() - at || get32(file, at + length - 4) != length) {
      break;  // truncated or malformed: everything before it is still readable
    }
    out.push_back({type, std::string(file.substr(at + 8, length - 12))});
    at += length;
  }
  if (valid_bytes != nullptr) {
    *valid_bytes = at;
  }
  return out;
}

block_walk walk_blocks(std::istream& in) {
  block_walk w;
  in.seekg(0, std::ios::end);
  w.size = static_cast<std::uint64_t>(std::max<std::streamoff>(in.tellg(), 0));
  std::uint64_t at = 0;
  char head[8];
  char tail[4];
  while (w.size - at >= 12) {
    in.seekg(static_cast<std::streamoff>(at));
    if (!in.read(head, sizeof head)) {
      break;
    }
    const auto length = get32(std::string_view(head, sizeof head), 4);
    if (length < 12 || length % 4 != 0 || length > w.size - at) {
      break;
    }
    in.seekg(static_cast<std::streamoff>(at + length - 4));
    if (!in.read(tail, sizeof tail) || get32(std::string_view(tail, sizeof tail), 0) != length) {
      break;
    }
    at += length;
    ++w.blocks;
  }
  in.clear();
  w.valid_bytes = at;
  return w;
}

}  // namespace leakscope::captures::pcapng
