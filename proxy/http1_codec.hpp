#pragma once
// HTTP/1.1 push parser on llhttp, strict (no lenient flags). Sans-io: bytes in, a consumed count
// and events out; it never touches a socket.
//
//            feed()                      feed()                       feed()
//   [head] ─────────► head_complete ─────────► [body] ───────────► message_complete
//     │  (bytes kept in head().raw,          (decoded body kept up     │ (paused: the next
//     │   not consumed past the head)         to the body cap)         │  feed() resumes)
//     └────────────────────────── error (typed) ◄──────────────────────┘
//
// The parser stops right after the head and right after each message, so the session decides
// what to do before any byte of the body or of a pipelined request is consumed.

#include <llhttp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace leakscope::proxy::http1 {

struct header_field {
  std::string name;
  std::string value;
};

struct message_head {
  std::string method;  // requests
  std::string target;  // requests: as sent (origin-, absolute- or authority-form)
  int status = 0;      // responses
  std::string reason;  // responses
  int version_major = 1;
  int version_minor = 1;
  std::vector<header_field> headers;
  std::string raw;  // the head exactly as received, request line to the blank line

  // First value of a header, case-insensitive; empty when absent.
  std::string_view header(std::string_view name) const;
  bool has_header(std::string_view name) const;
};

// The elements of a comma-separated header list (RFC 9110 §5.6.1), trimmed, as written:
// "Upgrade, HTTP2-Settings" -> {"Upgrade", "HTTP2-Settings"}. Empty elements are dropped.
std::vector<std::string_view> list_elements(std::string_view value);
// Whether such a list holds `token`, compared case-insensitively.
bool list_has(std::string_view value, std::string_view token);

enum class message_kind { request, response };

enum class codec_error {
  none,
  malformed,         // llhttp rejected the bytes; see error_name()/error_reason()
  header_too_large,  // head over limits.max_header_bytes (answer 431)
  too_many_headers,  // over limits.max_headers (answer 431)
  truncated,         // the peer closed in the middle of a message
  obs_fold,          // a header line continued on the next (RFC 9112 §5.2): 400 for requests, 502 for responses
  bad_framing,       // a request whose length a server could read otherwise: HTTP/0.9, or a Transfer-Encoding
                     // that does not end in chunked (RFC 9112 §6.3); refused at the head, before it is forwarded
};

struct codec_limits {
  std::size_t max_header_bytes = 64 * 1024;
  std::size_t max_headers = 100;
};

struct feed_result {
  std::size_t consumed = 0;
  bool head_complete = false;
  bool message_complete = false;
  bool upgrade = false;  // CONNECT or 101: the bytes after `consumed` are not HTTP
  codec_error error = codec_error::none;
};

class parser {
 public:
  parser(message_kind kind, codec_limits limits);
  parser(const parser&) = delete;
  parser& operator=(const parser&) = delete;

  // Consumes what it can of `data`, stopping after a head, after a message, or on error.
  feed_result feed(std::string_view data);
  // The peer closed: completes a close-delimited response, or reports a truncated message.
  feed_result finish();

  // Responses: the method of the request being answered (HEAD answers have no body).
  void expect_response_to(std::string_view method) { head_request_ = method == "HEAD"; }
  // Up to `cap` bytes of each body are kept (decoded from chunked framing) for inspection.
  void set_body_cap(std::size_t cap) { body_cap_ = cap; }

  const message_head& head() const { return head_; }
  // Between messages: gives back the previous message's body and head storage (an idle
  // connection should not hold the last upload's megabytes).
  void release_memory();
  const std::string& body() const { return body_; }
  // The kept body handed over without a copy (it may be the inspection cap, 16 MiB); the parser
  // keeps none afterwards, while body_size() still counts what passed.
  std::string take_body() { return std::move(body_); }
  void put_back_body(std::string body) { body_ = std::move(body); }
  std::uint64_t body_size() const { return body_size_; }
  bool body_truncated() const { return body_size_ > body_.size(); }
  bool keep_alive() const { return keep_alive_; }
  bool chunked() const;
  // True between the first byte of a message and its completion.
  bool in_message() const { return in_message_; }

  codec_error error() const { return error_; }
  std::string error_name() const;
  std::string error_reason() const;
  // llhttp's lenient flags; always 0 (strict), asserted by a test.
  unsigned lenient_flags() const { return parser_.lenient_flags; }

 private:
  static int on_message_begin(llhttp_t*);
  static int on_url(llhttp_t*, const char*, std::size_t);
  static int on_status(llhttp_t*, const char*, std::size_t);
  static int on_method(llhttp_t*, const char*, std::size_t);
  static int on_header_field(llhttp_t*, const char*, std::size_t);
  static int on_header_value(llhttp_t*, const char*, std::size_t);
  static int on_header_value_complete(llhttp_t*);
  static int on_headers_complete(llhttp_t*);
  static int on_body(llhttp_t*, const char*, std::size_t);
  static int on_message_complete(llhttp_t*);
  static parser& self(llhttp_t* p) { return *static_cast<parser*>(p->data); }

  message_kind kind_;
  codec_limits limits_;
  llhttp_settings_t settings_{};
  llhttp_t parser_{};
  message_head head_;
  std::string field_, value_;
  bool in_head_ = true;
  bool in_message_ = false;
  bool head_event_ = false;
  bool complete_event_ = false;
  bool paused_ = false;
  bool upgraded_ = false;
  bool head_request_ = false;
  bool keep_alive_ = false;
  std::string body_;
  std::uint64_t body_size_ = 0;
  std::size_t body_cap_ = 0;
  codec_error error_ = codec_error::none;
  std::string error_reason_;
};

}  // namespace leakscope::proxy::http1
