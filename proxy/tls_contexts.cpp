#include "proxy/tls_contexts.hpp"

#include "certs/openssl_ptr.hpp"

#include <openssl/ssl.h>

#include <cstring>

namespace leakscope::proxy {

namespace ssl = boost::asio::ssl;

namespace {

constexpr unsigned char http11[] = "\x08http/1.1";

// RFC 7301 §3.2: with no protocol in common the server may go on without ALPN; the client
// then speaks HTTP/1.1, which is what we want rather than a fatal alert.
int select_http11(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                  unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  unsigned char selected_len = 0;
  if (SSL_select_next_proto(&selected, &selected_len, http11, sizeof http11 - 1, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    *outlen = selected_len;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// Our own ex-data slot: Asio keeps its verify callback in the app-data slot and deletes
// whatever it finds there when the context is destroyed.
int sink_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

void keylog(const SSL* ssl, const char* line) {
  auto* sink = static_cast<std::function<void(const char*)>*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sink_index()));
  if (sink != nullptr && *sink) {
    (*sink)(line);
  }
}

// Without read-ahead OpenSSL reads each record in two recv(2) calls, its 5-byte header and then
// its body: two system calls per request, per response and per 16 KiB of a download. With it,
// one call takes whatever the socket holds. Records may then wait inside the SSL object with
// the socket empty: tls_stream tries OpenSSL before it waits for the socket, and
// tls_stream::has_buffered() tells a raw readiness wait that it need not wait.
void read_whole_segments(SSL_CTX* native) {
  SSL_CTX_set_read_ahead(native, 1);
  // Room for a loopback segment's worth of records per call; with SSL_MODE_RELEASE_BUFFERS the
  // buffer exists only while it holds bytes, so idle connections do not pay for it.
  SSL_CTX_set_default_read_buffer_len(native, 64 * 1024);
}

}  // namespace

void log_tls_secrets(ssl::context& ctx, std::function<void(const char* line)>* sink) {
  SSL_CTX_set_ex_data(ctx.native_handle(), sink_index(), sink);
  SSL_CTX_set_keylog_callback(ctx.native_handle(), keylog);
}

ssl::context make_client_facing_context() {
  ssl::context ctx(ssl::context::tls_server);
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Idle connections (an app keeps dozens open) give their record buffers back.
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  read_whole_segments(native);
  SSL_CTX_set_alpn_select_cb(native, select_http11, nullptr);
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_SERVER);
  // One TLS 1.3 ticket per handshake, not OpenSSL's two: a phone resumes from the newest
  // ticket it holds, and each ticket costs an encryption and a record on every new connection.
  SSL_CTX_set_num_tickets(native, 1);
  return ctx;
}

ssl::context make_upstream_context(const config::upstream_config& upstream) {
  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  read_whole_segments(native);
  SSL_CTX_set_alpn_protos(native, http11, sizeof http11 - 1);
  if (!upstream.verify) {
    ctx.set_verify_mode(ssl::verify_none);
    return ctx;
  }
  ctx.set_verify_mode(ssl::verify_peer);
  ctx.set_default_verify_paths();
  for (const auto& file : upstream.extra_ca) {
    if (SSL_CTX_load_verify_locations(native, file.c_str(), nullptr) != 1) {
      throw config::config_error(file.string() + ": upstream.extra_ca is not a readable PEM file (" +
                                 certs::last_openssl_error() + ")");
    }
  }
  return ctx;
}

namespace {

// The cache a context feeds, and the key of each connection (owned by the SSL object: tickets
// arrive after the handshake, for as long as the connection lives).
int cache_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

void free_key(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<std::string*>(ptr); }

int key_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_key);
  return index;
}

}  // namespace

void upstream_sessions::attach(ssl::context& ctx) {
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_ex_data(native, cache_index(), this);
  // The context's own store is keyed by session id, useless to a client: sessions live here.
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(native, on_new_session);
}

void upstream_sessions::prepare(SSL* ssl, const std::string& key) {
  SSL_set_ex_data(ssl, key_index(), new std::string(key));
  std::lock_guard lock(mutex_);
  const auto it = sessions_.find(key);
  if (it != sessions_.end()) {
    // A copy again, or this connection's end would spoil the cached one for the next.
    if (SSL_SESSION* offer = SSL_SESSION_dup(it->second.get())) {
      SSL_set_session(ssl, offer);
      SSL_SESSION_free(offer);
    }
  }
}

int upstream_sessions::on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* self = static_cast<upstream_sessions*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), cache_index()));
  const auto* key = static_cast<const std::string*>(SSL_get_ex_data(ssl, key_index()));
  if (self == nullptr || key == nullptr) {
    return 0;
  }
  // A copy: OpenSSL marks the connection's own session unresumable when the connection ends
  // without close_notify, which is how most upstream connections end (TLS 1.1 and later allow
  // resuming those, RFC 4346 §7.2.1).
  SSL_SESSION* copy = SSL_SESSION_dup(session);
  if (copy == nullptr) {
    return 0;
  }
  std::lock_guard lock(self->mutex_);
  if (self->sessions_.size() >= self->capacity_ && self->sessions_.count(*key) == 0) {
    self->sessions_.erase(self->sessions_.begin());  // bounded; which one goes matters little
  }
  self->sessions_[*key].reset(copy);
  return 0;  // OpenSSL keeps its reference to the original
}

}  // namespace leakscope::proxy
