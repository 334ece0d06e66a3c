// The codec is pinned by golden event logs, and every fixture is also fed split at every byte
// boundary (as Beast's "parsegrind" does): the log must not change with the segmentation.
#include "proxy/http1_codec.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace leakscope::proxy::http1;

namespace {

struct fixture {
  const char* name;
  message_kind kind;
  std::string input;
  std::string expected;
  const char* request_method = "GET";  // responses: the method being answered
  bool eof = false;                    // the peer closes after the input
};

// Feeds `input` in the given pieces the way a session does: unconsumed bytes wait for the next
// read, the parser is re-fed after each head and message event.
std::string run(const fixture& f, const std::vector<std::size_t>& cuts) {
  parser p(f.kind, codec_limits{256, 8});
  p.set_body_cap(16);
  p.expect_response_to(f.request_method);
  std::string log, pending;
  std::size_t from = 0;
  auto on_result = [&](const feed_result& r) {
    if (r.head_complete) {
      const auto& h = p.head();
      log += f.kind == message_kind::request ? "head " + h.method + " " + h.target
                                             : "head " + std::to_string(h.status) + " " + h.reason;
      for (const auto& field : h.headers) {
        log += " [" + field.name + ": " + field.value + "]";
      }
      log += " raw=" + std::to_string(h.raw.size()) + "\n";
    }
    if (r.upgrade) {
      log += "upgrade\n";
    }
    if (r.message_complete) {
      log += "complete body=" + p.body() + " size=" + std::to_string(p.body_size()) +
             (p.body_truncated() ? " truncated" : "") + (p.keep_alive() ? " keep-alive" : " close") + "\n";
    }
    if (r.error != codec_error::none) {
      log += "error " + p.error_name() + "\n";
    }
  };
  bool stopped = false;
  for (std::size_t i = 0; i <= cuts.size() && !stopped; ++i) {
    const std::size_t to = i < cuts.size() ? cuts[i] : f.input.size();
    pending += f.input.substr(from, to - from);
    from = to;
    while (true) {
      const auto r = p.feed(pending);
      pending.erase(0, r.consumed);
      on_result(r);
      if (r.error != codec_error::none || r.upgrade) {
        stopped = true;
        break;
      }
      if (!r.head_complete && !r.message_complete) {
        break;  // need more bytes
      }
    }
  }
  if (!stopped && f.eof) {
    on_result(p.finish());
  }
  const std::string rest = pending + f.input.substr(from);
  if (stopped && !rest.empty() && p.error() == codec_error::none) {
    log += "tunnel " + rest + "\n";
  }
  return log;
}

const std::vector<fixture>& fixtures() {
  static const std::vector<fixture> all = {
      {"GET keep-alive", message_kind::request, "GET /a?imei=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n",
       "head GET /a?imei=1 [Host: x] [User-Agent: t] raw=50\ncomplete body= size=0 keep-alive\n"},
      {"POST Content-Length", message_kind::request,
       "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
       "head POST /p [Host: x] [Content-Length: 5] raw=48\ncomplete body=hello size=5 keep-alive\n"},
      {"POST chunked", message_kind::request,
       "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
       "head POST /c [Host: x] [Transfer-Encoding: chunked] raw=57\ncomplete body=abcdefg size=7 keep-alive\n"},
      {"body over the inspection cap", message_kind::request,
       "POST /big HTTP/1.1\r\nContent-Length: 20\r\n\r\n0123456789abcdefghij",
       "head POST /big [Content-Length: 20] raw=42\ncomplete body=0123456789abcdef size=20 truncated keep-alive\n"},
      {"pipelined requests", message_kind::request,
       "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
       "head GET /1 [Host: x] raw=28\ncomplete body= size=0 keep-alive\n"
       "head GET /2 [Host: x] [Connection: close] raw=47\ncomplete body= size=0 close\n"},
      {"Upgrade requests stay HTTP until a 101 says otherwise", message_kind::request,
       "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
       "GET /2 HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nokGET /3 HTTP/1.1\r\n\r\n",
       "head GET /ws [Connection: Upgrade] [Upgrade: websocket] raw=61\ncomplete body= size=0 keep-alive\n"
       "head GET /2 [Connection: Upgrade] [Upgrade: h2c] [Content-Length: 2] raw=73\ncomplete body=ok size=2 keep-alive\n"
       "head GET /3 raw=19\ncomplete body= size=0 keep-alive\n"},
      {"HTTP/1.0 closes", message_kind::request, "GET http://x/ HTTP/1.0\r\n\r\n",
       "head GET http://x/ raw=26\ncomplete body= size=0 close\n"},
      {"CONNECT keeps the bytes after it", message_kind::request,
       "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n\x16\x03\x01hello",
       "head CONNECT a.example:443 [Host: a.example:443] raw=55\nupgrade\ntunnel \x16\x03\x01hello\n"},
      {"Content-Length with Transfer-Encoding is refused", message_kind::request,
       "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       "error HPE_UNEXPECTED_CONTENT_LENGTH\n"},
      {"HTTP/0.9 requests are refused", message_kind::request, "GET /\r\n\r\n", "error bad_framing\n"},
      {"a request Transfer-Encoding must end in chunked", message_kind::request,
       "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "error HPE_INVALID_TRANSFER_ENCODING\n"},
      {"a request Transfer-Encoding without chunked", message_kind::request,
       "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc", "error bad_framing\n"},
      {"bare LF is refused", message_kind::request, "GET / HTTP/1.1\nHost: x\n\n",
       "error HPE_INVALID_HEADER_TOKEN\n"},
      {"obs-fold in a request is refused", message_kind::request, "GET / HTTP/1.1\r\nHost: x\r\n y\r\n\r\n",
       "error obs_fold\n"},
      {"obs-fold in a response is refused", message_kind::response,
       "HTTP/1.1 200 OK\r\nX-A: 1\r\n\t2\r\nContent-Length: 0\r\n\r\n", "error obs_fold\n"},
      {"head over the byte limit", message_kind::request,
       "GET / HTTP/1.1\r\nX: " + std::string(300, 'a') + "\r\n\r\n", "error header_too_large\n"},
      {"too many headers", message_kind::request,
       "GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\nI: 1\r\n\r\n",
       "error too_many_headers\n"},
      {"response with Content-Length", message_kind::response,
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
       "head 200 OK [Content-Length: 2] raw=38\ncomplete body=ok size=2 keep-alive\n"},
      {"chunked response", message_kind::response,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
       "head 200 OK [Transfer-Encoding: chunked] raw=47\ncomplete body=ok size=2 keep-alive\n"},
      {"100 Continue then the final response", message_kind::response,
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
       "head 100 Continue raw=25\ncomplete body= size=0 keep-alive\n"
       "head 201 Created [Content-Length: 0] raw=43\ncomplete body= size=0 keep-alive\n"},
      {"204 has no body", message_kind::response, "HTTP/1.1 204 No Content\r\n\r\n",
       "head 204 No Content raw=27\ncomplete body= size=0 keep-alive\n"},
      {"304 ignores Content-Length", message_kind::response,
       "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
       "head 304 Not Modified [Content-Length: 10] raw=49\ncomplete body= size=0 keep-alive\n"},
      {"HEAD response ignores Content-Length", message_kind::response,
       "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
       "head 200 OK [Content-Length: 10] raw=39\ncomplete body= size=0 keep-alive\n", "HEAD"},
      {"close-delimited response", message_kind::response, "HTTP/1.1 200 OK\r\n\r\nuntil eof",
       "head 200 OK raw=19\ncomplete body=until eof size=9 close\n", "GET", true},
      {"response cut short", message_kind::response, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
       "head 200 OK [Content-Length: 10] raw=39\nerror truncated\n", "GET", true},
      {"101 switches protocols", message_kind::response,
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
       "head 101 Switching Protocols [Upgrade: websocket] [Connection: Upgrade] raw=77\nupgrade\ntunnel \x81\x05hello\n"},
      {"HTTP/0.9 style response is refused", message_kind::response, "<html>hi</html>\r\n",
       "error HPE_INVALID_CONSTANT\n"},
  };
  return all;
}

}  // namespace

TEST_CASE("codec golden event logs") {
  for (const auto& f : fixtures()) {
    CAPTURE(f.name);
    CHECK(run(f, {}) == f.expected);
  }
}

TEST_CASE("codec event logs do not depend on how the bytes are split") {
  for (const auto& f : fixtures()) {
    CAPTURE(f.name);
    for (std::size_t cut = 1; cut < f.input.size(); ++cut) {
      CAPTURE(cut);
      CHECK(run(f, {cut}) == f.expected);
    }
    std::vector<std::size_t> every_byte;
    for (std::size_t i = 1; i < f.input.size(); ++i) {
      every_byte.push_back(i);
    }
    CHECK(run(f, every_byte) == f.expected);
  }
}

TEST_CASE("the parser is strict: no llhttp lenient flag is set") {
  parser req(message_kind::request, {});
  parser res(message_kind::response, {});
  CHECK(req.lenient_flags() == 0);
  CHECK(res.lenient_flags() == 0);
}

TEST_CASE("the head is kept byte for byte") {
  parser p(message_kind::request, {});
  const std::string head = "GET /x HTTP/1.1\r\nHost:   spaced  \r\nX-A: b\r\n\r\n";
  const auto r = p.feed(head + "GET /y HTTP/1.1\r\n");
  CHECK(r.head_complete);
  CHECK(r.consumed == head.size());
  CHECK(p.head().raw == head);
  CHECK(p.head().header("host") == "spaced  ");
  CHECK(p.head().has_header("x-a"));
  CHECK_FALSE(p.head().has_header("x-b"));
}

TEST_CASE("a body of declared length is kept in one buffer from its first byte, up to the cap") {
  for (const std::size_t cap : {std::size_t{1} << 20, std::size_t{50'000}}) {
    CAPTURE(cap);
    parser p(message_kind::request, {});
    p.set_body_cap(cap);
    std::string body(300'000, 'x');
    for (std::size_t i = 0; i < body.size(); i += 97) {
      body[i] = static_cast<char>('a' + i % 26);
    }
    const auto head = "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    REQUIRE(p.feed(head).head_complete);
    const char* first = nullptr;
    for (std::size_t at = 0; at < body.size(); at += 1000) {
      const std::string_view chunk = std::string_view(body).substr(at, 1000);
      REQUIRE(p.feed(chunk).consumed == chunk.size());
      if (first == nullptr) {
        first = p.body().data();
      }
      CHECK(p.body().data() == first);  // never moved, so never copied again
    }
    CHECK(p.body() == body.substr(0, cap));
    CHECK(p.body_size() == body.size());
  }
}
