#include "proxy/origin_pool.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace leakscope::proxy {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace {

std::string key_of(const std::string& client, const std::string& host, std::uint16_t port) {
  return client + " " + host + ":" + std::to_string(port);
}

// Whether the origin may still take a request on `c`: HTTP/1.1 gives a server nothing to say
// between exchanges, so any data (an early 408), a close_notify or a FIN means it is done.
bool still_open(origin_connection& c) { return !c.stream.has_spoken() && c.stream.quiet(); }

}  // namespace

bool has_input(tcp::socket& socket) {
  char byte;
  while (true) {
    const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
  }
}

void attach_tap(tls_stream& stream, tls_tap* tap) {
  stream.observe(
      [](void* arg, bool read, std::string_view bytes) {
        const auto* tap = static_cast<const tls_tap*>(arg);
        if (tap->leg != nullptr) {
          // What the SSL object reads came from its peer; what it writes goes to its peer.
          tap->leg->data(read != tap->ssl_is_client, bytes);
        }
      },
      tap);
}

origin_pool::~origin_pool() { close(); }

std::optional<tcp::endpoint> origin_pool::peek(const std::string& client, const std::string& host,
                                               std::uint16_t port) const {
  const auto it = idle_.find(key_of(client, host, port));
  if (it == idle_.end() || it->second.empty()) {
    return std::nullopt;
  }
  return it->second.back().connection->remote;
}

std::shared_ptr<origin_connection> origin_pool::take(const std::string& client, const std::string& host,
                                                     std::uint16_t port, const std::string& name) {
  const auto it = idle_.find(key_of(client, host, port));
  if (it == idle_.end()) {
    return nullptr;
  }
  auto& entries = it->second;
  std::shared_ptr<origin_connection> found;
  // The newest first: the least likely to be closed by the origin. One the origin has closed
  // is dropped on the way.
  for (auto i = entries.size(); i-- > 0 && !found;) {
    if (entries[i].name != name) {
      continue;
    }
    auto c = std::move(entries[i].connection);
    entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(i));
    --count_;
    error_code ignored;
    c->stream.socket().cancel(ignored);  // the pool's wait for the origin's close
    if (still_open(*c)) {
      found = std::move(c);
    }
  }
  if (entries.empty()) {
    idle_.erase(it);
  }
  return found;
}

void origin_pool::put(const std::string& client, const std::string& host, std::uint16_t port,
                      const std::string& name, std::shared_ptr<origin_connection> c) {
  const auto key = key_of(client, host, port);
  auto& entries = idle_[key];
  const auto idle_for = std::chrono::steady_clock::now() - c->idle_since;
  if (closed_ || idle_for >= idle_limit || count_ >= max_idle || entries.size() >= max_per_origin || !still_open(*c)) {
    if (entries.empty()) {
      idle_.erase(key);
    }
    return;
  }
  entry e;
  e.id = next_id_++;
  e.name = name;
  e.connection = std::move(c);
  e.expiry = std::make_unique<net::steady_timer>(io_, idle_limit - idle_for);
  const auto id = e.id;
  e.expiry->async_wait([this, key, id](const error_code& ec) {
    if (!ec) {
      drop(key, id);
    }
  });
  auto& kept = *e.connection;
  entries.push_back(std::move(e));
  ++count_;
  watch(key, id, kept);
}

void origin_pool::watch(const std::string& key, std::uint64_t id, origin_connection& c) {
  c.stream.socket().async_wait(tcp::socket::wait_read, [this, key, id](const error_code& ec) {
    if (ec == net::error::operation_aborted) {
      return;
    }
    // Found only while still in the pool: a connection taken after the origin wrote is the
    // taker's to read.
    if (auto* e = find(key, id)) {
      if (!ec && !e->connection->stream.has_spoken() && e->connection->stream.quiet()) {
        watch(key, id, *e->connection);
      } else {
        drop(key, id);
      }
    }
  });
}

origin_pool::entry* origin_pool::find(const std::string& key, std::uint64_t id) {
  const auto it = idle_.find(key);
  if (it == idle_.end()) {
    return nullptr;
  }
  for (auto& e : it->second) {
    if (e.id == id) {
      return &e;
    }
  }
  return nullptr;
}

void origin_pool::drop(const std::string& key, std::uint64_t id) {
  const auto it = idle_.find(key);
  if (it == idle_.end()) {
    return;
  }
  auto& entries = it->second;
  for (auto e = entries.begin(); e != entries.end(); ++e) {
    if (e->id == id) {
      entries.erase(e);  // closes the socket; the leg's FIN goes to traffic.pcapng
      --count_;
      break;
    }
  }
  if (entries.empty()) {
    idle_.erase(it);
  }
}

std::uint64_t origin_pool::hold(std::function<void()> hand_over) {
  const auto number = next_holder_++;
  held_.emplace(number, std::move(hand_over));
  if (held_.size() > max_held) {
    auto oldest = held_.extract(held_.begin());
    oldest.mapped()();
  }
  return number;
}

void origin_pool::close() {
  closed_ = true;
  idle_.clear();
  count_ = 0;
}

}  // namespace leakscope::proxy
