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

 private:
  void emit(const std::vector<std::string>& frames);
  recorder& recorder_;
  std::uint32_t interface_;
  std::optional<pcapng::tcp_connection> connection_;
  bool holding_ = true;
  std::vector<std::string> held_;
  bool closed_ = false;
};

}  // namespace leakscope::captures
