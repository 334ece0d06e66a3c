#pragma once
// One leg of a connection as it is written to traffic.pcapng: the bytes each side sent, framed
// as a TCP stream between the leg's real endpoints, timestamped when leakscope saw them.

#include "captures/pcapng.hpp"
#include "captures/recorder.hpp"

#include <chrono>
#include <mutex>
#include <optional>

namespace leakscope::captures {

class leg_tap {
 public:
  // `interface`: 0 for the phone's leg, 1 for the origin's. Without valid endpoints it records nothing.
  leg_tap(recorder& rec, std::uint32_t interface, const std::string& client_ip, std::uint16_t client_port,
          const std::string& server_ip, std::uint16_t server_port);
  ~leg_tap();
  leg_tap(const leg_tap&) = delete;
  leg_tap& operator=(const leg_tap&) = delete;

  void data(bool from_client, std::string_view bytes);
  // Packets are held from construction until release(): the TLS secrets logged during the
  // handshake (a TLS 1.3 server logs the client's traffic secret only after the client's
  // Finished) must reach the file before the packets, or Wireshark cannot decrypt the leg.
  void release();
  void close();
  // The frame number, in traffic.pcapng, of the last packet with bytes from the client.
  std::uint64_t last_client_frame() const { return last_client_frame_; }

 private:
  void push(std::vector<std::string>&& blocks, bool client_data);
  recorder& recorder_;
  std::uint32_t interface_;
  std::optional<pcapng::tcp_connection> connection_;
  bool holding_ = true;
  std::vector<std::pair<std::string, bool>> held_;  // block, carries client data
  std::uint64_t last_client_frame_ = 0;
  bool closed_ = false;
};

// The decrypted exchanges of one connection, as plain HTTP in decrypted.pcapng. The request's
// last chunk is held back until the request has been inspected, so the packet that completes
// it can name the leaks it carried ("leak 12: imei -> Umeng (third party)").
class http_tap {
 public:
  http_tap(recorder& rec, const std::string& client_ip, std::uint16_t client_port, const std::string& server_ip,
           std::uint16_t server_port);
  ~http_tap();
  http_tap(const http_tap&) = delete;
  http_tap& operator=(const http_tap&) = delete;

  void request(std::string_view bytes);
  // Emits the held chunk, its last segment with `comment`; returns that frame's number (0 if none).
  std::uint64_t end_request(const std::string& comment);
  void response(std::string_view bytes);

 private:
  std::uint64_t send_pending();  // the last frame's number, 0 if none
  recorder& recorder_;
  std::optional<pcapng::tcp_connection> connection_;
  std::vector<std::string> pending_;  // the request's newest chunk, as blocks
  bool closed_ = false;
};

}  // namespace leakscope::captures
