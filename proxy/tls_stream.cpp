#include "proxy/tls_stream.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <sys/socket.h>
#include <utility>

namespace leakscope::proxy {

namespace net = boost::asio;

namespace {

// The BIO between OpenSSL and the socket. Its data is the stream's bio_state.
template <class State>
void observed(State& s, bool read, const char* data, std::size_t n) {
  if (s.observer != nullptr) {
    s.observer(s.observer_arg, read, std::string_view(data, n));
  }
}

template <class State>
int socket_read(BIO* bio, char* out, int size) {
  auto* s = static_cast<State*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (s->prefix_at < s->prefix.size()) {
    const auto n = std::min(static_cast<std::size_t>(size), s->prefix.size() - s->prefix_at);
    std::memcpy(out, s->prefix.data() + s->prefix_at, n);
    s->prefix_at += n;
    if (s->prefix_at == s->prefix.size()) {
      std::string().swap(s->prefix);
      s->prefix_at = 0;
    }
    observed(*s, true, out, n);
    return static_cast<int>(n);
  }
  if (s->skip_recv) {
    s->skip_recv = false;
    BIO_set_retry_read(bio);
    return -1;
  }
  while (true) {
    const ssize_t n = ::recv(s->fd, out, static_cast<std::size_t>(size), 0);
    if (n > 0) {
      s->drained = n < size;
      observed(*s, true, out, static_cast<std::size_t>(n));
      return static_cast<int>(n);
    }
    if (n == 0) {
      s->eof = true;
      return 0;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BIO_set_retry_read(bio);
    } else {
      s->error = errno;
    }
    return -1;
  }
}

// A burst of records is sent once it holds this much (a loopback segment). While the socket
// is full, the BIO takes nothing more (OpenSSL retries once it drains): a slow phone costs a
// stream at most one burst and a record here, on top of the kernel's own send buffer.
constexpr std::size_t burst = 64 * 1024;
// A burst ends with the record that reached `burst`: at most a TLS record's ciphertext past it
// (RFC 8446 §5.2: 2^14 + 256 bytes, with its header).
constexpr std::size_t burst_overrun = (1u << 14) + 256 + 5;

template <class State, class Flush>
int socket_write(BIO* bio, const char* data, int size, Flush flush) {
  auto* s = static_cast<State*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (s->error != 0) {
    return -1;
  }
  if (s->pending() >= burst && flush(*s) != decltype(flush(*s))::sent && s->pending() >= burst) {
    if (s->error == 0) {
      BIO_set_retry_write(bio);
    }
    return -1;
  }
  if (s->out.capacity() < s->out.size() + static_cast<std::size_t>(size)) {
    // Room for a whole burst at once: grown a record at a time, the string copied what it held
    // at 32 and 64 KiB, 1.7 times the bytes of each burst (3 % of the CPU of a download).
    s->out.reserve(std::max(burst + burst_overrun, s->out.size() + static_cast<std::size_t>(size)));
  }
  s->out.append(data, static_cast<std::size_t>(size));
  observed(*s, false, data, static_cast<std::size_t>(size));
  if (s->pending() >= burst) {
    flush(*s);  // a failure is kept in s->error and reported at the end of the step
  }
  return size;
}

long socket_ctrl(BIO*, int cmd, long, void*) {
  // OpenSSL flushes its handshake buffer through here; the socket itself has nothing buffered.
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int socket_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

template <class State, auto Flush>
BIO_METHOD* socket_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "leakscope socket");
    const auto write = [](BIO* bio, const char* data, int size) {
      return socket_write<State>(bio, data, size, [](State& s) { return Flush(s); });
    };
    if (m == nullptr || BIO_meth_set_read(m, socket_read<State>) != 1 || BIO_meth_set_write(m, +write) != 1 ||
        BIO_meth_set_ctrl(m, socket_ctrl) != 1 || BIO_meth_set_create(m, socket_create) != 1) {
      throw std::runtime_error("OpenSSL: cannot create the socket BIO method");
    }
    return m;
  }();
  return method;
}

}  // namespace

tls_stream::flush_result tls_stream::flush(bio_state& b) {
  while (b.pending() > 0) {
    // MSG_NOSIGNAL: a peer that hung up is an EPIPE error for this connection, not a signal.
    const ssize_t n = ::send(b.fd, b.out.data() + b.out_at, b.pending(), MSG_NOSIGNAL);
    if (n >= 0) {
      b.out_at += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return flush_result::blocked;
    }
    b.error = errno;
    b.out.clear();
    b.out_at = 0;
    return flush_result::failed;
  }
  if (b.error != 0) {
    return flush_result::failed;
  }
  b.out_at = 0;
  // An idle stream holds no buffer (as SSL_MODE_RELEASE_BUFFERS does for OpenSSL's own): a
  // lab's phone keeps hundreds of connections open, most of them quiet.
  std::string().swap(b.out);
  return flush_result::sent;
}

tls_stream::tls_stream(boost::beast::tcp_stream&& next, SSL_CTX* ctx)
    : state_(std::make_shared<state>(next.release_socket())), ssl_(SSL_new(ctx), SSL_free) {
  if (!ssl_) {
    throw std::runtime_error("OpenSSL: SSL_new failed");
  }
  // As Asio's stream: writes return after each whole record (async_write continues them), and
  // an idle connection holds no record buffers.
  SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  state_->socket.non_blocking(true);
  bio_.fd = state_->socket.native_handle();
  BIO* bio = BIO_new(socket_method<bio_state, &tls_stream::flush>());
  if (bio == nullptr) {
    throw std::runtime_error("OpenSSL: cannot create a socket BIO");
  }
  BIO_set_data(bio, &bio_);
  SSL_set_bio(ssl_.get(), bio, bio);  // one BIO both ways: the session's taps see both directions
}

tls_stream::~tls_stream() = default;

void tls_stream::prepare_handshake(net::ssl::stream_base::handshake_type type, std::string_view already_read) {
  bio_.prefix.assign(already_read);
  bio_.prefix_at = 0;
  if (type == net::ssl::stream_base::client) {
    SSL_set_connect_state(ssl_.get());
  } else {
    SSL_set_accept_state(ssl_.get());
  }
}

int tls_stream::handshake_action::operator()(tls_stream& s, std::size_t& done) const {
  done = 0;
  return SSL_do_handshake(s.ssl_.get());
}

bool tls_stream::has_spoken() {
  if (deferred_ || bio_.eof || bio_.error != 0 || SSL_get_shutdown(ssl_.get()) != 0 || SSL_pending(ssl_.get()) > 0) {
    return true;
  }
  clear_errors();
  char byte;
  std::size_t n = 0;
  const int r = SSL_peek_ex(ssl_.get(), &byte, 1, &n);
  if (r > 0) {
    return true;
  }
  const int e = SSL_get_error(ssl_.get(), r);
  clear_errors();
  if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
    return true;
  }
  return flush(bio_) == flush_result::failed;  // what the records asked for (a KeyUpdate's reply) goes out
}

int tls_stream::read_action::operator()(tls_stream& s, std::size_t& done) const {
  done = 0;
  s.bio_.skip_recv = std::exchange(s.bio_.ended_drained, false);
  while (done < size) {
    std::size_t n = 0;
    const int r = SSL_read_ex(s.ssl_.get(), data + done, size - done, &n);
    s.bio_.skip_recv = false;
    if (r > 0) {
      done += n;
      // With read-ahead, a socket read short of its buffer left nothing behind: another read
      // now would be a recv(2) that fails with EAGAIN (two per kept-alive request).
      if (s.bio_.drained && SSL_has_pending(s.ssl_.get()) == 0) {
        s.bio_.ended_drained = true;
        break;
      }
      continue;
    }
    if (done == 0) {
      return r;
    }
    // Data first; a failure behind it (close_notify, a reset) is the next read's result.
    error_code ec;
    if (s.classify(r, ec) == step::done) {
      s.deferred_ = ec;
    }
    ERR_clear_error();
    break;
  }
  return 1;
}

int tls_stream::write_action::operator()(tls_stream& s, std::size_t& done) const {
  done = 0;
  while (done < size) {
    std::size_t n = 0;
    const int r = SSL_write_ex(s.ssl_.get(), data + done, size - done, &n);
    if (r > 0) {
      done += n;
      continue;
    }
    if (done == 0) {
      return r;
    }
    // What was written is reported; the would-block or failure recurs on the next write.
    ERR_clear_error();
    break;
  }
  return 1;
}

int tls_stream::shutdown_action::operator()(tls_stream& s, std::size_t& done) const {
  done = 0;
  // 0: our close_notify is sent and the peer's is not awaited (Asio's stream waits for it,
  // which a phone that simply closes never sends).
  const int r = SSL_shutdown(s.ssl_.get());
  return r >= 0 ? 1 : r;
}

tls_stream::step tls_stream::classify(int result, error_code& ec) {
  if (result > 0) {
    ec = {};
    return step::done;
  }
  switch (SSL_get_error(ssl_.get(), result)) {
    case SSL_ERROR_WANT_READ:
      return step::want_read;
    case SSL_ERROR_WANT_WRITE:
      return step::want_write;
    case SSL_ERROR_ZERO_RETURN:
      ec = net::error::eof;  // the peer's close_notify
      return step::done;
    default:
      break;
  }
  // The socket's own failure (reset, broken pipe) is the error, as with Asio's stream.
  if (bio_.error != 0) {
    ec = error_code(bio_.error, boost::system::system_category());
    return step::done;
  }
  const unsigned long err = ERR_peek_error();
  // A TCP close without close_notify: OpenSSL 3 reports SSL_R_UNEXPECTED_EOF_WHILE_READING.
  if (bio_.eof && (err == 0 || ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
    ERR_clear_error();
    ec = net::ssl::error::stream_truncated;
    return step::done;
  }
  ec = err != 0 ? error_code(static_cast<int>(ERR_get_error()), net::error::get_ssl_category())
                : error_code(net::error::eof);
  ERR_clear_error();
  return step::done;
}

void tls_stream::arm() {
  auto& s = *state_;
  ++s.tick;
  s.expired = false;
  if (deadline_ == std::chrono::steady_clock::time_point::max()) {
    return;
  }
  s.timer.expires_at(deadline_);
  s.timer.async_wait([weak = std::weak_ptr<state>(state_), tick = s.tick](const error_code& ec) {
    const auto s = weak.lock();
    if (!s || ec || s->tick != tick) {
      return;  // cancelled, or a wait that has finished since
    }
    s->expired = true;
    error_code ignored;
    s->socket.cancel(ignored);
  });
}

tls_stream::error_code tls_stream::disarm(error_code wait_error) {
  auto& s = *state_;
  ++s.tick;
  if (deadline_ != std::chrono::steady_clock::time_point::max()) {
    s.timer.cancel();
  }
  if (s.expired && wait_error == net::error::operation_aborted) {
    return boost::beast::error::timeout;
  }
  return wait_error;
}

}  // namespace leakscope::proxy
