#pragma once
// pcapng encoding (draft-ietf-opsawg-pcapng): the blocks leakscope writes, and synthetic
// Ethernet/IP/TCP frames that carry observed bytes as a TCP stream Wireshark can follow. Pure:
// bytes out, no files. Little-endian, as written by the capturing host.

#include <array>
#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace leakscope::captures::pcapng {

constexpr std::uint32_t block_shb = 0x0A0D0D0A;
constexpr std::uint32_t block_idb = 0x00000001;
constexpr std::uint32_t block_epb = 0x00000006;
constexpr std::uint32_t block_dsb = 0x0000000A;
constexpr std::uint32_t secrets_tls_key_log = 0x544c534b;  // "TLSK": SSLKEYLOGFILE lines
constexpr std::uint16_t linktype_ethernet = 1;

// Section Header Block, naming the writing application (shb_userappl).
std::string section_header(std::string_view application);
// Interface Description Block with if_name and microsecond timestamps.
std::string interface_description(std::uint16_t linktype, std::string_view name);
// Enhanced Packet Block; `comment` becomes opt_comment (shown by Wireshark as a packet comment).
// Wireshark shows a message spread over segments on its last segment: comment that one.
std::string enhanced_packet(std::uint32_t interface, std::uint64_t timestamp_us, std::string_view frame,
                            std::string_view comment = {});
// Gives an Enhanced Packet Block that has no options the opt_comment `comment`, as if
// enhanced_packet() had been called with it: a packet can be built as its bytes arrive and
// named by a leak once the request they complete has been inspected.
void add_comment(std::string& epb, std::string_view comment);
// Decryption Secrets Block with TLS key log lines; must precede the packets it decrypts.
std::string decryption_secrets(std::string_view tls_key_log);

struct endpoint {
  std::array<std::uint8_t, 16> address{};  // IPv4 in the first 4 bytes
  bool v6 = false;
  std::uint16_t port = 0;
};
// "192.168.1.23" / "2001:db8::1" with a port; nullopt when the address is not a literal.
std::optional<endpoint> make_endpoint(const std::string& address, std::uint16_t port);

// One TCP connection's frames, with sequence and acknowledgement numbers that follow the bytes.
class tcp_connection {
 public:
  tcp_connection(endpoint client, endpoint server, std::uint32_t client_isn = 1000, std::uint32_t server_isn = 5000);

  std::vector<std::string> open();  // SYN, SYN-ACK, ACK
  // Data from one side, cut into segments of at most `mss` bytes, each PSH-ACK.
  std::vector<std::string> send(bool from_client, std::string_view bytes, std::size_t mss = 1460);
  std::vector<std::string> close();  // FIN-ACK each way and the last ACK
  // send(), each segment already in its Enhanced Packet Block: the same bytes as
  // enhanced_packet(interface, timestamp_us, segment), the last segment with `comment`.
  std::vector<std::string> send_packets(std::uint32_t interface, std::uint64_t timestamp_us, bool from_client,
                                        std::string_view bytes, std::size_t mss, std::string_view comment = {});
  // open() and close() in their Enhanced Packet Blocks, likewise.
  std::vector<std::string> open_packets(std::uint32_t interface, std::uint64_t timestamp_us);
  std::vector<std::string> close_packets(std::uint32_t interface, std::uint64_t timestamp_us);

 private:
  std::string frame(bool from_client, std::uint8_t flags, std::string_view payload);
  void append_frame(std::string& out, bool from_client, std::uint8_t flags, std::string_view payload);
  std::string packet(std::uint32_t interface, std::uint64_t timestamp_us, bool from_client, std::uint8_t flags,
                     std::string_view payload, std::string_view comment);
  endpoint client_, server_;
  std::uint32_t client_seq_, server_seq_;
};

// A block as read back: type and body (without the length fields).
struct block {
  std::uint32_t type = 0;
  std::string body;
};
// Reads whole blocks; stops at the first truncated or malformed one and reports where.
std::vector<block> read_blocks(std::string_view file, std::size_t* valid_bytes = nullptr);

// The same check as read_blocks over a stream, holding one block header at a time: a capture
// of a 10 GiB transfer is verified without reading it into memory.
struct block_walk {
  std::uint64_t blocks = 0;
  std::uint64_t valid_bytes = 0;  // whole blocks end here
  std::uint64_t size = 0;         // the stream's length
};
block_walk walk_blocks(std::istream& in);

}  // namespace leakscope::captures::pcapng
