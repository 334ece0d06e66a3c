#include "proxy/control.hpp"

#include "proxy/ca_page.hpp"
#include "proxy/http1_codec.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <nlohmann/json.hpp>

#include <iostream>

namespace leakscope::proxy {

namespace net = boost::asio;
namespace beast = boost::beast;
using nlohmann::json;

bool token_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < b.size(); ++i) {
    diff |= static_cast<unsigned char>(b[i] ^ (i < a.size() ? a[i] : 0));
  }
  return diff == 0;
}

namespace {

constexpr std::size_t max_control_body = 64 * 1024;

std::string reply(int status, const char* reason, const json& body) {
  const auto text = body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: " +
         std::to_string(text.size()) + "\r\n\r\n" + text;
}

json mark_json(const captures::mark_record& m) { return json::parse(captures::to_json_line(m)); }

std::string handle(control_context& ctx, const http1::parser& req) {
  const auto& head = req.head();
  // The CA page needs no token: the certificate is public, and the phone has none.
  if (head.method == "GET" && head.target.rfind("/ca", 0) == 0) {
    const auto path = head.target.substr(3);
    if (const auto page = ca_page(ctx.ca, path.empty() ? "/" : path, "/ca/")) {
      return http_response(*page);
    }
  }
  std::string auth(head.header("authorization"));
  const std::string bearer = "Bearer ";
  const std::string given = auth.rfind(bearer, 0) == 0 ? auth.substr(bearer.size()) : std::string(head.header("x-leakscope-token"));
  if (given.empty() || !token_equal(given, ctx.token)) {
    return reply(401, "Unauthorized",
                 {{"error", "a token is required: Authorization: Bearer <the token in the session folder's control.token>"}});
  }
  const auto path = head.target.substr(0, head.target.find('?'));
  if (path == "/marks" && head.method == "GET") {
    json list = json::array();
    for (const auto& m : ctx.timeline.marks()) {
      list.push_back(mark_json(m));
    }
    return reply(200, "OK", {{"marks", list}});
  }
  if (path == "/marks" && head.method == "POST") {
    const json body = json::parse(req.body(), nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("kind") || !body["kind"].is_string()) {
      return reply(400, "Bad Request", {{"error", "send a JSON object such as {\"kind\": \"consent\"}"}});
    }
    const std::string kind = body["kind"];
    const std::string text = body.contains("text") && body["text"].is_string() ? body["text"].get<std::string>() : "";
    if (!captures::is_mark_kind(kind)) {
      return reply(400, "Bad Request", {{"error", "kind must be consent, refuse, background, foreground or note"}});
    }
    if (kind == "note" && text.empty()) {
      return reply(400, "Bad Request", {{"error", "a note needs a text"}});
    }
    const auto m = ctx.timeline.add(kind, text, "http");
    std::cout << "mark " << m.kind << (m.text.empty() ? "" : " \"" + m.text + "\"") << " at "
              << static_cast<double>(m.t_session_ms) / 1000.0 << " s (control endpoint)\n"
              << std::flush;
    return reply(201, "Created", {{"mark", mark_json(m)}});
  }
  return reply(404, "Not Found", {{"error", "the control endpoint serves GET and POST /marks"}});
}

}  // namespace

net::awaitable<void> serve_control(control_context& ctx, net::ip::tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  http1::parser req(http1::message_kind::request, {8 * 1024, 50});
  req.set_body_cap(max_control_body);
  std::string buf;
  std::string out;
  bool after_head = false;  // a message without a body completes on the feed after its head
  while (true) {
    if (!buf.empty() || after_head) {
      after_head = false;
      const auto r = req.feed(buf);
      buf.erase(0, r.consumed);
      if (r.error != http1::codec_error::none) {
        out = reply(400, "Bad Request", {{"error", req.error_name()}});
        break;
      }
      if (r.message_complete) {
        out = req.body_truncated() ? reply(413, "Payload Too Large", {{"error", "body over 64 KiB"}}) : handle(ctx, req);
        break;
      }
      if (r.head_complete) {
        after_head = true;
        continue;
      }
      if (r.consumed > 0) {
        continue;
      }
    }
    stream.expires_after(ctx.cfg.limits.timeouts.headers);
    const std::size_t old = buf.size();
    buf.resize(old + 4096);
    boost::system::error_code ec;
    const auto n = co_await stream.async_read_some(net::buffer(buf.data() + old, 4096), net::redirect_error(net::use_awaitable, ec));
    buf.resize(old + n);
    if (ec) {
      co_return;
    }
  }
  boost::system::error_code ec;
  stream.expires_after(ctx.cfg.limits.timeouts.idle);
  co_await net::async_write(stream, net::buffer(out), net::redirect_error(net::use_awaitable, ec));
  stream.socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
}

}  // namespace leakscope::proxy
