#include "captures/tap.hpp"

namespace leakscope::captures {

leg_tap::leg_tap(recorder& rec, std::uint32_t interface, const std::string& client_ip, std::uint16_t client_port,
                 const std::string& server_ip, std::uint16_t server_port)
    : recorder_(rec), interface_(interface) {
  auto client = pcapng::make_endpoint(client_ip, client_port);
  auto server = pcapng::make_endpoint(server_ip, server_port);
  if (client && server && client->v6 == server->v6) {
    connection_.emplace(*client, *server);
    emit(connection_->open());
  }
}

leg_tap::~leg_tap() { close(); }

void leg_tap::emit(const std::vector<std::string>& frames) {
  const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  for (const auto& f : frames) {
    auto block = pcapng::enhanced_packet(interface_, static_cast<std::uint64_t>(now), f);
    if (holding_) {
      held_.push_back(std::move(block));  // keeps its observation time
    } else {
      recorder_.write_traffic(std::move(block));
    }
  }
}

void leg_tap::release() {
  holding_ = false;
  for (auto& block : held_) {
    recorder_.write_traffic(std::move(block));
  }
  held_.clear();
}

void leg_tap::data(bool from_client, std::string_view bytes) {
  if (connection_ && !closed_ && !bytes.empty()) {
    emit(connection_->send(from_client, bytes));
  }
}

void leg_tap::close() {
  release();
  if (connection_ && !closed_) {
    closed_ = true;
    emit(connection_->close());
  }
}

}  // namespace leakscope::captures
