#include "proxy/http1_codec.hpp"

#include <algorithm>
#include <strings.h>

namespace leakscope::proxy::http1 {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::string_view message_head::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (iequals(h.name, name)) {
      return h.value;
    }
  }
  return {};
}

bool message_head::has_header(std::string_view name) const {
  return std::any_of(headers.begin(), headers.end(), [&](const header_field& h) { return iequals(h.name, name); });
}

parser::parser(message_kind kind, codec_limits limits) : kind_(kind), limits_(limits) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &parser::on_message_begin;
  settings_.on_url = &parser::on_url;
  settings_.on_status = &parser::on_status;
  settings_.on_header_field = &parser::on_header_field;
  settings_.on_header_value = &parser::on_header_value;
  settings_.on_header_value_complete = &parser::on_header_value_complete;
  settings_.on_headers_complete = &parser::on_headers_complete;
  settings_.on_body = &parser::on_body;
  settings_.on_message_complete = &parser::on_message_complete;
  llhttp_init(&parser_, kind == message_kind::request ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
}

bool parser::chunked() const { return (parser_.flags & F_CHUNKED) != 0; }

void parser::release_memory() {
  if (!in_message_) {
    std::string().swap(body_);
    std::string().swap(head_.raw);
  }
}

int parser::on_message_begin(llhttp_t* p) {
  auto& s = self(p);
  s.head_ = {};
  s.field_.clear();
  s.value_.clear();
  s.body_.clear();
  s.body_size_ = 0;
  s.in_message_ = true;
  return 0;
}

int parser::on_url(llhttp_t* p, const char* at, std::size_t n) {
  self(p).head_.target.append(at, n);
  return 0;
}

int parser::on_status(llhttp_t* p, const char* at, std::size_t n) {
  self(p).head_.reason.append(at, n);
  return 0;
}

int parser::on_header_field(llhttp_t* p, const char* at, std::size_t n) {
  self(p).field_.append(at, n);
  return 0;
}

int parser::on_header_value(llhttp_t* p, const char* at, std::size_t n) {
  self(p).value_.append(at, n);
  return 0;
}

int parser::on_header_value_complete(llhttp_t* p) {
  auto& s = self(p);
  if (s.head_.headers.size() >= s.limits_.max_headers) {
    s.error_ = codec_error::too_many_headers;
    return -1;
  }
  s.head_.headers.push_back({std::move(s.field_), std::move(s.value_)});
  s.field_.clear();
  s.value_.clear();
  return 0;
}

int parser::on_headers_complete(llhttp_t* p) {
  auto& s = self(p);

  s.head_.version_major = p->http_major;
  s.head_.version_minor = p->http_minor;
  if (s.kind_ == message_kind::request) {
    s.head_.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  } else {
    s.head_.status = p->status_code;
  }
  s.in_head_ = false;
  s.head_event_ = true;
  const int status = s.head_.status;
  if (s.kind_ == message_kind::response &&
      (s.head_request_ || (status >= 100 && status < 200 && status != 101) || status == 204 || status == 304)) {
    // RFC 9112 §6.3: responses to HEAD, 1xx, 204 and 304 have no body whatever their
    // Content-Length says. Returning 1 tells llhttp so; the pause then comes at completion.
    return 1;
  }
  return HPE_PAUSED;
}

int parser::on_body(llhttp_t* p, const char* at, std::size_t n) {
  auto& s = self(p);
  s.body_size_ += n;
  if (s.body_.size() < s.body_cap_) {
    const std::size_t take = std::min(n, s.body_cap_ - s.body_.size());
    if (s.body_.empty() && (p->flags & F_CONTENT_LENGTH) != 0 && (p->flags & F_CHUNKED) == 0) {
      // The declared length (llhttp counts down what is left of it) at once, up to the cap:
      // grown by doubling, a 1 MiB upload's body was copied once more and its pages were
      // faulted in twice. Pages a lying length reserves and nobody writes cost no memory.
      const std::uint64_t declared = s.body_size_ + p->content_length;
      s.body_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(declared, s.body_cap_)));
    }
    if (s.body_.size() + take > s.body_.capacity()) {
      // Doubling, but never past the cap: plain doubling would reserve up to twice the cap
      // (31 MiB for a 16 MiB body).
      s.body_.reserve(std::min(std::max(2 * s.body_.capacity(), s.body_.size() + take), s.body_cap_));
    }
    s.body_.append(at, take);
  }
  return 0;
}

int parser::on_message_complete(llhttp_t* p) {
  auto& s = self(p);
  s.keep_alive_ = llhttp_should_keep_alive(p) != 0;
  s.complete_event_ = true;
  s.in_message_ = false;
  s.in_head_ = true;
  return HPE_PAUSED;
}

feed_result parser::feed(std::string_view data) {
  feed_result r;
  if (error_ != codec_error::none) {
    r.error = error_;
    return r;
  }
  if (upgraded_) {
    // Only reached when an Upgrade request was answered without 101: the connection stays HTTP.
    llhttp_resume_after_upgrade(&parser_);
    upgraded_ = false;
  } else if (paused_) {
    llhttp_resume(&parser_);
    paused_ = false;
  }
  head_event_ = false;
  complete_event_ = false;

  const bool head_phase = in_head_;
  std::size_t n = data.size();
  if (head_phase) {
    if (head_.raw.size() >= limits_.max_header_bytes) {
      error_ = r.error = codec_error::header_too_large;
      return r;
    }
    n = std::min(n, limits_.max_header_bytes - head_.raw.size());
  }

  llhttp_errno_t err = llhttp_execute(&parser_, data.data(), n);
  if (err == HPE_PAUSED_UPGRADE && kind_ == message_kind::request && head_.method != "CONNECT") {
    // llhttp stops after any request carrying Upgrade, but only the server's 101 switches
    // protocols, and that is the response parser's to see: until then the bytes are HTTP.
    const char* at = llhttp_get_error_pos(&parser_);
    llhttp_resume_after_upgrade(&parser_);
    err = llhttp_execute(&parser_, at, n - static_cast<std::size_t>(at - data.data()));
  }
  std::size_t consumed = n;
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    consumed = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data.data());
    paused_ = err == HPE_PAUSED;
    upgraded_ = err == HPE_PAUSED_UPGRADE;
  } else if (err != HPE_OK) {
    consumed = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data.data());
    if (error_ == codec_error::none) {
      error_ = codec_error::malformed;
    }
  }
  // A CONNECT request or a 101 response ends HTTP on this connection once its head is read.
  const bool upgrade_now = parser_.upgrade != 0 && head_event_ &&
                           (kind_ == message_kind::request ? head_.method == "CONNECT" : head_.status == 101);
  if (head_phase && consumed > 0) {
    head_.raw.append(data.data(), consumed);
  }
  if (head_phase && !head_event_ && error_ == codec_error::none &&
      head_.raw.size() >= limits_.max_header_bytes) {
    error_ = codec_error::header_too_large;
  }
  // llhttp accepts obs-fold even in strict mode, joining the lines; a header that two parsers
  // read differently is how requests get smuggled, so the fold is refused (RFC 9112 §5.2).
  if (head_event_ && error_ == codec_error::none &&
      (head_.raw.find("\r\n ") != std::string::npos || head_.raw.find("\r\n\t") != std::string::npos)) {
    error_ = codec_error::obs_fold;
    head_event_ = false;
    complete_event_ = false;
  }
  // llhttp finds a bad request Transfer-Encoding only after the head (and accepts HTTP/0.9):
  // by then the session would have forwarded the head. Both are refused here instead.
  if (head_event_ && error_ == codec_error::none && kind_ == message_kind::request) {
    const auto te = list_elements(head_.header("transfer-encoding"));
    const bool te_bad = head_.has_header("transfer-encoding") && (te.empty() || !list_has(te.back(), "chunked"));
    if (head_.version_major == 0 || te_bad) {
      error_ = codec_error::bad_framing;
      head_event_ = false;
      complete_event_ = false;
    }
  }
  r.consumed = consumed;
  r.head_complete = head_event_;
  r.message_complete = complete_event_;
  r.upgrade = upgrade_now && error_ == codec_error::none;
  r.error = error_;
  return r;
}

feed_result parser::finish() {
  feed_result r;
  if (error_ != codec_error::none) {
    r.error = error_;
    return r;
  }
  if (!in_message_) {
    return r;
  }
  if (paused_) {
    llhttp_resume(&parser_);
    paused_ = false;
  }
  complete_event_ = false;
  const llhttp_errno_t err = llhttp_finish(&parser_);
  if ((err == HPE_OK || err == HPE_PAUSED) && complete_event_) {
    r.message_complete = true;
    return r;
  }
  error_ = r.error = codec_error::truncated;
  return r;
}

std::string parser::error_name() const {
  switch (error_) {
    case codec_error::none:
      return "";
    case codec_error::malformed:
      return llhttp_errno_name(llhttp_get_errno(&parser_));
    case codec_error::header_too_large:
      return "header_too_large";
    case codec_error::too_many_headers:
      return "too_many_headers";
    case codec_error::truncated:
      return "truncated";
    case codec_error::obs_fold:
      return "obs_fold";
    case codec_error::bad_framing:
      return "bad_framing";
  }
  return "";
}

std::string parser::error_reason() const {
  switch (error_) {
    case codec_error::malformed: {
      const char* reason = llhttp_get_error_reason(&parser_);
      return reason != nullptr ? reason : "malformed HTTP";
    }
    case codec_error::header_too_large:
      return "request or response head larger than limits.max_header_bytes";
    case codec_error::too_many_headers:
      return "more header fields than limits.max_headers";
    case codec_error::truncated:
      return "connection closed in the middle of a message";
    case codec_error::obs_fold:
      return "a header value continued on the next line (obs-fold), refused as RFC 9112 §5.2 allows";
    case codec_error::bad_framing:
      return head_.version_major == 0 ? "an HTTP/0.9 request (no version, no headers) is not relayed"
                                      : "Transfer-Encoding must end in chunked in a request (RFC 9112 §6.3)";
    case codec_error::none:
      break;
  }
  return "";
}

std::vector<std::string_view> list_elements(std::string_view value) {
  std::vector<std::string_view> out;
  while (true) {
    const auto comma = value.find(',');
    auto item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) {
      item.remove_prefix(1);
    }
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) {
      item.remove_suffix(1);
    }
    if (!item.empty()) {
      out.push_back(item);
    }
    if (comma == std::string_view::npos) {
      return out;
    }
    value.remove_prefix(comma + 1);
  }
}

bool list_has(std::string_view value, std::string_view token) {
  for (const auto item : list_elements(value)) {
    if (item.size() == token.size() &&
        std::equal(item.begin(), item.end(), token.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        })) {
      return true;
    }
  }
  return false;
}

}  // namespace leakscope::proxy::http1
