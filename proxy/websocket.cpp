#include "proxy/websocket.hpp"

#include <zlib.h>

#include <algorithm>
#include <cctype>

namespace leakscope::proxy::websocket {

namespace {

constexpr int op_continuation = 0x0, op_text = 0x1, op_binary = 0x2, op_close = 0x8;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

}  // namespace

std::optional<options> negotiated(const http1::message_head& request, const http1::message_head& response) {
  if (response.status != 101 || !http1::list_has(request.header("upgrade"), "websocket") ||
      !http1::list_has(response.header("upgrade"), "websocket")) {
    return std::nullopt;
  }
  options o;
  // The server's answer is what holds (RFC 7692 §5): "permessage-deflate; client_no_context_takeover".
  const auto extensions = lower(response.header("sec-websocket-extensions"));
  if (extensions.find("permessage-deflate") != std::string::npos) {
    o.deflate = true;
    o.no_context_takeover = extensions.find("client_no_context_takeover") != std::string::npos;
  }
  return o;
}

// Raw inflate with the sliding window kept across messages (context takeover). Inflating with
// the largest window is correct whatever client_max_window_bits the client compressed with.
struct reader::inflater {
  z_stream z{};
  bool ok = false;
  bool broken = false;  // an error mid-stream: later messages depend on the lost window
  inflater() { ok = inflateInit2(&z, -15) == Z_OK; }
  ~inflater() {
    if (ok) {
      inflateEnd(&z);
    }
  }
  // Inflates `in`, keeping output while `out` is under `cap`; false on a deflate error.
  bool run(std::string_view in, std::string& out, std::size_t cap, bool& truncated) {
    if (!ok || broken) {
      return false;
    }
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    char buf[16384];
    while (true) {
      z.next_out = reinterpret_cast<Bytef*>(buf);
      z.avail_out = sizeof buf;
      const int rc = inflate(&z, Z_SYNC_FLUSH);
      const std::size_t produced = sizeof buf - z.avail_out;
      if (produced > 0) {
        const std::size_t room = out.size() < cap ? cap - out.size() : 0;
        out.append(buf, std::min(room, produced));
        truncated = truncated || produced > room;
      }
      if (rc == Z_BUF_ERROR || (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0)) {
        return true;  // all input used
      }
      if (rc == Z_STREAM_END) {
        // A final block ends the stream; a client may start a new one with the next message.
        inflateReset(&z);
        if (z.avail_in == 0) {
          return true;
        }
        continue;
      }
      if (rc != Z_OK) {
        broken = true;
        return false;
      }
    }
  }
};

reader::reader(options o) : options_(o) {}
reader::~reader() = default;

void reader::feed(std::string_view bytes, std::vector<message>& out) {
  while (!bytes.empty() && !failed()) {
    if (!in_payload_) {
      // Header: 2 bytes, then 2 or 8 of extended length, then 4 of mask key.
      while (!bytes.empty() && header_.size() < 2) {
        header_ += bytes.front();
        bytes.remove_prefix(1);
      }
      if (header_.size() < 2) {
        return;
      }
      const auto b1 = static_cast<unsigned char>(header_[1]);
      const std::size_t len7 = b1 & 0x7f;
      const std::size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
      while (!bytes.empty() && header_.size() < need) {
        header_ += bytes.front();
        bytes.remove_prefix(1);
      }
      if (header_.size() < need) {
        return;
      }
      start_frame();
      if (failed()) {
        return;
      }
      if (remaining_ == 0) {
        end_frame(out);
      }
      continue;
    }
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, bytes.size()));
    if (data_frame_) {
      std::string chunk(bytes.substr(0, n));
      if (masked_) {
        for (auto& c : chunk) {
          c = static_cast<char>(c ^ mask_[mask_pos_++ & 3]);
        }
      }
      if (current_.compressed) {
        const std::size_t cap = std::min(options_.max_message, options_.max_decoded);
        if (!inflater_->run(chunk, current_.data, cap, current_.truncated)) {
          current_.decode_error = true;
        }
      } else {
        const std::size_t room = current_.data.size() < options_.max_message ? options_.max_message - current_.data.size() : 0;
        current_.data.append(chunk, 0, std::min(room, chunk.size()));
        current_.truncated = current_.truncated || chunk.size() > room;
      }
    } else {
      mask_pos_ += n;  // control frame payload: not inspected
    }
    remaining_ -= n;
    bytes.remove_prefix(n);
    if (remaining_ == 0) {
      end_frame(out);
    }
  }
}

void reader::start_frame() {
  const auto b0 = static_cast<unsigned char>(header_[0]);
  const auto b1 = static_cast<unsigned char>(header_[1]);
  fin_ = (b0 & 0x80) != 0;
  const bool rsv1 = (b0 & 0x40) != 0;
  opcode_ = b0 & 0x0f;
  masked_ = (b1 & 0x80) != 0;
  std::size_t pos = 2;
  std::uint64_t len = b1 & 0x7f;
  if (len >= 126) {
    const int width = len == 126 ? 2 : 8;
    len = 0;
    for (int i = 0; i < width; ++i) {
      len = (len << 8) | static_cast<unsigned char>(header_[pos++]);
    }
  }
  if (masked_) {
    for (auto& m : mask_) {
      m = static_cast<unsigned char>(header_[pos++]);
    }
  }
  header_.clear();
  mask_pos_ = 0;
  remaining_ = len;
  in_payload_ = true;
  // RFC 6455 §5.2, §5.5: reserved bits, opcodes and control frame rules.
  if ((b0 & 0x30) != 0 || (rsv1 && !options_.deflate)) {
    return fail("reserved bits set without an extension that defines them");
  }
  if (!masked_) {
    return fail("a client frame without a mask (RFC 6455 §5.3)");
  }
  if (opcode_ >= op_close) {
    if (opcode_ > 0xa) {
      return fail("reserved control opcode " + std::to_string(opcode_));
    }
    if (!fin_ || len > 125 || rsv1) {
      return fail("a fragmented, compressed or long control frame");
    }
    data_frame_ = false;
    return;
  }
  if (opcode_ == op_continuation) {
    if (!in_message_) {
      return fail("a continuation frame outside a message");
    }
    if (rsv1) {
      return fail("RSV1 on a continuation frame (RFC 7692 §6.1)");
    }
  } else if (opcode_ == op_text || opcode_ == op_binary) {
    if (in_message_) {
      return fail("a new message inside a fragmented one");
    }
    in_message_ = true;
    current_ = message{};
    current_.text = opcode_ == op_text;
    current_.compressed = rsv1;
    if (rsv1) {
      if (!inflater_ || options_.no_context_takeover) {
        inflater_ = std::make_unique<inflater>();
      }
    }
  } else {
    return fail("reserved data opcode " + std::to_string(opcode_));
  }
  data_frame_ = true;
}

void reader::end_frame(std::vector<message>& out) {
  in_payload_ = false;
  if (data_frame_ && fin_) {
    finish_message(out);
  }
}

void reader::finish_message(std::vector<message>& out) {
  if (current_.compressed) {
    // The sender removed the empty block's tail; it is put back to flush the block (RFC 7692 §7.2.2).
    static constexpr char tail[] = {'\x00', '\x00', '\xff', '\xff'};
    const std::size_t cap = std::min(options_.max_message, options_.max_decoded);
    if (!inflater_->run(std::string_view(tail, 4), current_.data, cap, current_.truncated)) {
      current_.decode_error = true;
    }
  }
  in_message_ = false;
  out.push_back(std::move(current_));
  current_ = message{};
}

}  // namespace leakscope::proxy::websocket
