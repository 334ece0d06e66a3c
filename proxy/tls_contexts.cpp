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
  SSL_CTX_set_alpn_select_cb(native, select_http11, nullptr);
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_SERVER);
  return ctx;
}

ssl::context make_upstream_context(const config::upstream_config& upstream) {
  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
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

}  // namespace leakscope::proxy
