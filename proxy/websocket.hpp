#pragma once
// WebSocket (RFC 6455) as the phone sends it, for inspection: the proxy relays the bytes
// untouched and feeds a copy to a reader that reassembles the phone's messages. Sans-io.
//
//   [header] ──2..14 bytes──► [payload] ──frame done──► FIN data frame? ──► message out
//       ▲                         │ unmask, append                 │ (permessage-deflate:
//       └─────────────────────────┴────────────────────────────────┘  inflate, RFC 7692)
//   Control frames (ping, pong, close) may sit between the fragments of a message; they are
//   read past. A protocol error stops the reader for good; relaying goes on regardless.

#include "proxy/http1_codec.hpp"

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace leakscope::proxy::websocket {

struct options {
  bool deflate = false;              // permessage-deflate was agreed
  bool no_context_takeover = false;  // client_no_context_takeover: each message stands alone
  std::size_t max_message = 16u << 20;  // per message kept for inspection (capture.max_inspect_body)
  std::size_t max_decoded = 64u << 20;  // inflated size per message (limits.max_decoded_body)
};

// The session's options from the Upgrade request and its 101 answer; nullopt unless both say
// websocket (an Upgrade answered with anything but 101 stays HTTP and never gets here).
std::optional<options> negotiated(const http1::message_head& request, const http1::message_head& response);

struct message {
  bool text = false;
  bool compressed = false;
  std::string data;        // unmasked and inflated, up to the caps
  bool truncated = false;  // over max_message (kept part) or max_decoded (inflated part)
  bool decode_error = false;
};

class reader {
 public:
  explicit reader(options o);
  ~reader();
  reader(const reader&) = delete;
  reader& operator=(const reader&) = delete;

  // Consumes all of `bytes` (client-to-server frames, any split) and appends every message it
  // completes to `out`.
  void feed(std::string_view bytes, std::vector<message>& out);

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  void start_frame();
  void end_frame(std::vector<message>& out);
  void finish_message(std::vector<message>& out);
  void fail(std::string why) { error_ = std::move(why); }

  options options_;
  std::string header_;  // the frame header so far (at most 14 bytes)
  bool in_payload_ = false;
  std::uint64_t remaining_ = 0;
  unsigned char mask_[4] = {};
  std::size_t mask_pos_ = 0;
  bool masked_ = false;
  int opcode_ = 0;
  bool fin_ = false;
  bool data_frame_ = false;  // the current frame belongs to a data message
  // The message being reassembled.
  bool in_message_ = false;
  message current_;
  struct inflater;
  std::unique_ptr<inflater> inflater_;
  std::string error_;
};

}  // namespace leakscope::proxy::websocket
