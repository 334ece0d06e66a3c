#include "captures/tap.hpp"

namespace leakscope::captures {

namespace {

// Each read becomes one segment of up to this size, as captures taken with segmentation offload
// show them (IPv4's 16-bit length bounds it): a 1,460-byte MSS would mean 45 times the packets,
// and the writer's time goes per packet.
constexpr std::size_t capture_segment = 65'000;

std::uint64_t now_us() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

}  // namespace

leg_tap::leg_tap(recorder& rec, std::uint32_t interface, const std::string& client_ip, std::uint16_t client_port,
                 const std::string& server_ip, std::uint16_t server_port)
    : recorder_(rec), interface_(interface) {
  auto client = pcapng::make_endpoint(client_ip, client_port);
  auto server = pcapng::make_endpoint(server_ip, server_port);
  if (client && server && client->v6 == server->v6) {
    connection_.emplace(*client, *server);
    push(connection_->open_packets(interface_, now_us()), false);
  }
}

leg_tap::~leg_tap() { close(); }

void leg_tap::push(std::vector<std::string>&& blocks, bool client_data) {
  for (auto& block : blocks) {
    if (holding_) {
      held_.emplace_back(std::move(block), client_data);  // keeps its observation time
    } else {
      const auto frame = recorder_.write_traffic(std::move(block));
      if (client_data) {
        last_client_frame_ = frame;
      }
    }
  }
}

void leg_tap::release() {
  holding_ = false;
  for (auto& [block, client_data] : held_) {
    const auto frame = recorder_.write_traffic(std::move(block));
    if (client_data) {
      last_client_frame_ = frame;
    }
  }
  held_.clear();
}

void leg_tap::data(bool from_client, std::string_view bytes) {
  if (connection_ && !closed_ && !bytes.empty()) {
    push(connection_->send_packets(interface_, now_us(), from_client, bytes, capture_segment), from_client);
  }
}

void leg_tap::close() {
  release();
  if (connection_ && !closed_) {
    closed_ = true;
    push(connection_->close_packets(interface_, now_us()), false);
  }
}

http_tap::http_tap(recorder& rec, const std::string& client_ip, std::uint16_t client_port, const std::string& server_ip,
                   std::uint16_t server_port)
    : recorder_(rec) {
  auto client = pcapng::make_endpoint(client_ip, client_port);
  auto server = pcapng::make_endpoint(server_ip, server_port);
  if (client && server && client->v6 == server->v6) {
    connection_.emplace(*client, *server);
    for (auto& block : connection_->open_packets(0, now_us())) {
      recorder_.write_decrypted(std::move(block));
    }
  }
}

http_tap::~http_tap() {
  if (connection_ && !closed_) {
    end_request({});
    closed_ = true;
    for (auto& block : connection_->close_packets(0, now_us())) {
      recorder_.write_decrypted(std::move(block));
    }
  }
}

void http_tap::request(std::string_view bytes) {
  if (!connection_ || bytes.empty()) {
    return;
  }
  // Only the newest chunk's packets wait, built already: memory stays one read whatever the
  // body's size, and its bytes are copied once, into the packet.
  send_pending();
  pending_ = connection_->send_packets(0, now_us(), true, bytes, capture_segment);
}

std::uint64_t http_tap::send_pending() {
  std::uint64_t last = 0;
  for (auto& block : pending_) {
    last = recorder_.write_decrypted(std::move(block));
  }
  pending_.clear();
  return last;
}

std::uint64_t http_tap::end_request(const std::string& comment) {
  if (!connection_ || pending_.empty()) {
    return 0;
  }
  pcapng::add_comment(pending_.back(), comment);
  return send_pending();
}

void http_tap::response(std::string_view bytes) {
  if (!connection_ || bytes.empty()) {
    return;
  }
  end_request({});  // an interim 100 Continue can come before the body is complete
  for (auto& block : connection_->send_packets(0, now_us(), false, bytes, capture_segment)) {
    recorder_.write_decrypted(std::move(block));
  }
}

}  // namespace leakscope::captures
