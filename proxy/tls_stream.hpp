#pragma once
// TLS over a TCP socket, OpenSSL reading and writing the socket itself.
//
// Asio's ssl::stream runs OpenSSL against a BIO pair and copies every byte through two 17 KiB
// vectors and the pair's two 17 KiB buffers, allocated for the connection's whole life: 69 KiB
// per stream, 138 KiB per intercepted tunnel, most of what 1,000 idle tunnels cost. Here the
// SSL object's BIO is the non-blocking socket (with SSL_MODE_RELEASE_BUFFERS an idle stream
// holds no record buffers), and a would-block becomes a wait for readiness.
//
// The interface is the part of beast::ssl_stream<beast::tcp_stream> the session uses, so the
// session's templates serve it unchanged: async_read_some/async_write_some (an AsyncStream for
// net::async_write), async_handshake (with bytes already read, such as a peeked ClientHello),
// async_shutdown, and, as its own lowest layer, socket() and beast-style expiry.
// Errors are those Asio's stream gives: beast::error::timeout, net::error::eof after
// close_notify, ssl::error::stream_truncated for a TCP close without one, errno values for
// the socket, and the OpenSSL error in net::error::get_ssl_category() for protocol failures.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string>

namespace leakscope::proxy {

class tls_stream {
 public:
  using executor_type = boost::asio::any_io_executor;
  using error_code = boost::system::error_code;
  using tcp = boost::asio::ip::tcp;

  // Takes over the stream's socket; `ctx` configures the SSL object (SNI, certificates and
  // verification are set on native_handle() before the handshake).
  tls_stream(boost::beast::tcp_stream&& next, SSL_CTX* ctx);
  ~tls_stream();
  tls_stream(const tls_stream&) = delete;
  tls_stream& operator=(const tls_stream&) = delete;

  SSL* native_handle() { return ssl_.get(); }
  // `fn(arg, read, bytes)` sees every byte OpenSSL reads from the socket (read) or hands to it
  // to send, as it does: the evidence taps. Called from the BIO itself: a BIO callback would
  // also run around each of the thirty-odd BIO_ctrl calls OpenSSL makes per exchange.
  using observer_fn = void (*)(void* arg, bool read, std::string_view bytes);
  void observe(observer_fn fn, void* arg) {
    bio_.observer = fn;
    bio_.observer_arg = arg;
  }
  // Bytes already read from the socket and not yet delivered (read-ahead, or a prefix): a
  // wait for the socket to be readable would not see them.
  bool has_buffered() const { return SSL_has_pending(ssl_.get()) == 1 || bio_.prefix_at < bio_.prefix.size(); }
  // Between exchanges with nothing in flight: nothing received and undelivered, nothing
  // unsent, no failure or close_notify seen. Whether the peer has closed since is for the
  // socket to say.
  bool quiet() const {
    return !has_buffered() && bio_.pending() == 0 && !bio_.eof && bio_.error == 0 && !deferred_ &&
           SSL_get_shutdown(ssl_.get()) == 0;
  }
  // Whether the peer has sent application data or closed (or the connection failed) that no
  // read has taken yet. What else it sent (TLS 1.3 session tickets, a KeyUpdate) is processed
  // on the way, without waiting and without taking any data.
  bool has_spoken();
  // As has_spoken(), for what has already been taken from the socket only: a wait for the
  // socket to be readable, which also sees what is in it already, covers the rest without a
  // recv(2) that finds nothing.
  bool has_spoken_from_buffers() { return has_buffered() || !quiet() ? has_spoken() : false; }
  executor_type get_executor() { return state_->socket.get_executor(); }
  tcp::socket& socket() { return state_->socket; }

  // As beast::basic_stream: a deadline for the operations started from now on.
  void expires_after(std::chrono::steady_clock::duration d) { deadline_ = std::chrono::steady_clock::now() + d; }
  void expires_never() { deadline_ = std::chrono::steady_clock::time_point::max(); }

  template <class Token>
  auto async_handshake(boost::asio::ssl::stream_base::handshake_type type, Token&& token) {
    prepare_handshake(type, {});
    return run<Token, handshake_action>(handshake_action{}, std::forward<Token>(token));
  }
  // `already_read`: bytes taken from the socket before the handshake began, given to OpenSSL
  // ahead of the socket's.
  template <class ConstBuffer, class Token>
  auto async_handshake(boost::asio::ssl::stream_base::handshake_type type, const ConstBuffer& already_read,
                       Token&& token) {
    prepare_handshake(type, std::string_view(static_cast<const char*>(already_read.data()), already_read.size()));
    return run<Token, handshake_action>(handshake_action{}, std::forward<Token>(token));
  }
  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    const auto b = first_buffer<boost::asio::mutable_buffer>(buffers);
    return run<Token, read_action>(read_action{static_cast<char*>(b.data()), b.size()}, std::forward<Token>(token));
  }
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    const auto b = first_buffer<boost::asio::const_buffer>(buffers);
    return run<Token, write_action>(write_action{static_cast<const char*>(b.data()), b.size()}, std::forward<Token>(token));
  }
  template <class Token>
  auto async_shutdown(Token&& token) {
    return run<Token, shutdown_action>(shutdown_action{}, std::forward<Token>(token));
  }

 private:
  // One step of OpenSSL work; > 0 (and `done` set) when it succeeded.
  // `sends_its_output`: the step is not over until the records it wrote are sent. Every step
  // but a read: a read may find records of a write still waiting for a peer that is not
  // reading, and a read held back by them would leave both sides waiting on each other. What a
  // read itself writes (an alert, a KeyUpdate reply) goes out with the next step's records.
  struct handshake_action {
    static constexpr bool sends_its_output = true;
    int operator()(tls_stream& s, std::size_t& done) const;
  };
  // Reads and writes move as many records as the socket allows, not one per operation.
  struct read_action {
    static constexpr bool sends_its_output = false;
    char* data;
    std::size_t size;
    int operator()(tls_stream& s, std::size_t& done) const;
  };
  struct write_action {
    static constexpr bool sends_its_output = true;
    const char* data;
    std::size_t size;
    int operator()(tls_stream& s, std::size_t& done) const;
  };
  struct shutdown_action {
    static constexpr bool sends_its_output = true;
    int operator()(tls_stream& s, std::size_t& done) const;
  };

  // Shared with the expiry handler, which may run after the stream is gone.
  struct state {
    explicit state(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}
    tcp::socket socket;
    boost::asio::steady_timer timer;
    std::uint64_t tick = 0;  // bumped per wait: a late expiry of an earlier wait is ignored
    bool expired = false;
  };

  // What the BIO saw of the socket, for telling OpenSSL's errors apart.
  struct bio_state {
    int fd = -1;
    std::string prefix;  // bytes read before the handshake, handed out first
    std::size_t prefix_at = 0;
    bool eof = false;
    int error = 0;  // errno of the last failed recv/send
    bool drained = false;  // the last recv took less than it asked for: the socket was empty
    // A read that ended on an emptied socket: the next read waits for readiness at once
    // instead of asking recv(2) for an EAGAIN first (one system call per kept-alive read;
    // the wait's epoll_ctl reports data that came in between).
    bool ended_drained = false;
    bool skip_recv = false;  // set for the first BIO read of such a read
    // Records OpenSSL has written and the socket has not taken yet. One send(2) per record was
    // 64 system calls per MiB relayed; records gather here and go out together at the end of
    // each step, or as soon as they make a burst (tls_stream.cpp).
    std::string out;
    std::size_t out_at = 0;  // how much of `out` is sent
    std::size_t pending() const { return out.size() - out_at; }
    observer_fn observer = nullptr;
    void* observer_arg = nullptr;
  };
  enum class flush_result { sent, blocked, failed };
  static flush_result flush(bio_state& b);

  // The result of one step: done, or wait for the socket to be readable or writable.
  enum class step { done, want_read, want_write };
  // `finished`: the action has run to its result, which waits for the output it wrote to be
  // sent (a step that sends_its_output never ends with records unsent: the peer may be
  // waiting for them).
  template <class Action>
  step attempt(Action& action, std::size_t& done, error_code& ec, bool& finished) {
    if (!finished) {
      if (deferred_) {
        // A failure that came after data already delivered: reported now.
        ec = deferred_;
        deferred_ = {};
        done = 0;
        return step::done;
      }
      clear_errors();
      bio_.error = 0;
      const int r = action(*this, done);
      const step next = classify(r, ec);
      if (next != step::done) {
        // What OpenSSL wrote before it needs the socket again (a handshake flight before the
        // reply it waits for) goes out first.
        switch (flush(bio_)) {
          case flush_result::sent:
            return next;
          case flush_result::blocked:
            return Action::sends_its_output ? step::want_write : next;
          case flush_result::failed:
            if (!Action::sends_its_output) {
              return next;  // the socket's failure comes back from the next read or write
            }
            ec = error_code(bio_.error, boost::system::system_category());
            return step::done;
        }
      }
      finished = true;
    }
    const auto sent = flush(bio_);
    if (sent == flush_result::sent || !Action::sends_its_output) {
      return step::done;
    }
    if (sent == flush_result::blocked) {
      return step::want_write;
    }
    if (!ec) {
      ec = error_code(bio_.error, boost::system::system_category());
    }
    return step::done;
  }
  step classify(int result, error_code& ec);
  // OpenSSL's error queue must be empty before a call whose failure SSL_get_error() reads (it
  // looks only at the queue's first entry). It nearly always is: looking costs a tenth of
  // clearing, which was 2 % of a small exchange's instructions.
  static void clear_errors() {
    if (ERR_peek_error() != 0) {
      ERR_clear_error();
    }
  }
  void prepare_handshake(boost::asio::ssl::stream_base::handshake_type type, std::string_view already_read);
  void arm();
  error_code disarm(error_code wait_error);

  template <class Buffer, class Buffers>
  static Buffer first_buffer(const Buffers& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      if (Buffer(*it).size() > 0) {
        return Buffer(*it);
      }
    }
    return Buffer();
  }

  // The composed operation: retries `action` after each readiness wait. A result available
  // at once is delivered through post(), never from inside the initiating call.
  template <class Action>
  struct op {
    op(tls_stream& s, Action a) : stream(s), action(a) {}
    tls_stream& stream;
    Action action;
    enum { starting, posted, waiting } phase = starting;
    error_code result;
    std::size_t done = 0;
    bool finished = false;

    template <class Self>
    void operator()(Self& self, error_code wait_error = {}) {
      if (phase == posted) {
        return self.complete(result, done);
      }
      if (phase == waiting) {
        if (const auto ec = stream.disarm(wait_error)) {
          return self.complete(ec, 0);
        }
      }
      const auto next = stream.attempt(action, done, result, finished);
      if (next == step::done) {
        if (phase == starting) {
          phase = posted;
          return boost::asio::post(stream.get_executor(), std::move(self));
        }
        return self.complete(result, done);
      }
      phase = waiting;
      stream.arm();
      stream.state_->socket.async_wait(next == step::want_read ? tcp::socket::wait_read : tcp::socket::wait_write,
                                       std::move(self));
    }
  };

  template <class Token, class Action>
  auto run(Action action, Token&& token) {
    return boost::asio::async_compose<Token, void(error_code, std::size_t)>(op<Action>(*this, action),
                                                                            token, state_->socket);
  }

  std::shared_ptr<state> state_;
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl_{nullptr, SSL_free};
  bio_state bio_;
  error_code deferred_;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
};

}  // namespace leakscope::proxy
