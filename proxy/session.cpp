#include "proxy/session.hpp"

#include "captures/leak_builder.hpp"
#include "captures/tap.hpp"
#include "detectors/attribution.hpp"
#include "proxy/ca_page.hpp"
#include "proxy/client_hello.hpp"
#include "proxy/http1_codec.hpp"
#include "proxy/origin_pool.hpp"
#include "proxy/upstream.hpp"
#include "proxy/websocket.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <set>

namespace leakscope::proxy {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using net::awaitable;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;

namespace {

constexpr std::size_t read_chunk = 64 * 1024;
constexpr std::size_t idle_read_chunk = 2 * 1024;
// How long a transparently redirected connection may stay silent before it is taken for a
// protocol where the server speaks first.
constexpr std::chrono::milliseconds first_bytes_wait{2'000};
inline auto use_ec(error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }

// What is left of a budget that started at `since`, at least 1 ms so a spent budget still
// produces a timeout rather than an unbounded wait.
std::chrono::milliseconds remaining(steady::time_point since, std::chrono::milliseconds budget) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(since + budget - steady::now());
  return std::max(left, std::chrono::milliseconds(1));
}

double ms_since(steady::time_point t) {
  return std::chrono::duration<double, std::milli>(steady::now() - t).count();
}

// An IPv4 client of a dual-stack listener ("::") shows as ::ffff:a.b.c.d: records use a.b.c.d.
net::ip::address unmapped(net::ip::address a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6());
  }
  return a;
}

std::string endpoint_text(const tcp::endpoint& e) {
  const auto a = unmapped(e.address());
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(e.port());
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Appends what the peer sends next to `buf`, under `timeout`, reading up to `chunk` bytes.
template <class Stream>
awaitable<error_code> read_more(Stream& s, std::string& buf, std::chrono::milliseconds timeout,
                                std::size_t chunk = read_chunk) {
  beast::get_lowest_layer(s).expires_after(timeout);
  const std::size_t old = buf.size();
  // Room for the read without zero-filling it first; what the read does not fill is cut off below.
  // (The size is captured: GCC 12's library passes the grown capacity as the second argument.)
  buf.resize_and_overwrite(old + chunk, [size = old + chunk](char*, std::size_t) { return size; });
  error_code ec;
  const std::size_t n = co_await s.async_read_some(net::buffer(buf.data() + old, chunk), use_ec(ec));
  buf.resize(old + n);
  if (!ec && n == 0) {
    ec = net::error::eof;
  }
  co_return ec;
}

template <class Stream>
awaitable<error_code> write_all(Stream& s, std::string_view data, std::chrono::milliseconds timeout) {
  beast::get_lowest_layer(s).expires_after(timeout);
  error_code ec;
  co_await net::async_write(s, net::buffer(data.data(), data.size()), use_ec(ec));
  co_return ec;
}

std::string error_response(int status, const captures::typed_error& error) {
  static const std::map<int, const char*> reasons = {{400, "Bad Request"},         {403, "Forbidden"},
                                                     {431, "Request Header Fields Too Large"},
                                                     {502, "Bad Gateway"},         {504, "Gateway Timeout"}};
  const auto it = reasons.find(status);
  const std::string body = "leakscope: " + error.detail + "\n";
  return "HTTP/1.1 " + std::to_string(status) + " " + (it != reasons.end() ? it->second : "Error") +
         "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\nX-Leakscope-Error: " + error.type + "\r\n\r\n" + body;
}

// What a session knows about its connection, copied into each flow record.
struct connection {
  tcp::endpoint phone;  // as its socket gave it, once: the captures draw their streams from it
  std::string client;
  std::string client_ip;  // the phone, without its port: whose origin connections it may reuse
  captures::destination dest;
  std::string sni;
  std::string kind;  // "https" or "http" (inside a tunnel or absolute-form)
  std::optional<double> handshake_ms;
  unsigned exchanges = 0;
  captures::leg_tap* phone_leg = nullptr;  // traffic.pcapng, when intercepted over TLS
  captures::http_tap* plain = nullptr;     // decrypted.pcapng
  // traffic.pcapng for plain-HTTP connections, where the observed bytes are the plaintext.
  captures::leg_tap* plain_phone = nullptr;
  captures::leg_tap* plain_origin = nullptr;
  // Transparent mode: dest.host starts as the address the phone dialled and becomes the name
  // the SNI or each request's Host header gives, which attribution needs.
  bool transparent = false;
  // Where the origin is dialled: the CONNECT host, or the address a redirected connection was
  // bound for. With the port and the verified name, the key of the connection pool.
  std::string origin_host;
};

// The pcapng taps of a plain-HTTP connection (explicit absolute-form, or HTTP inside a tunnel).
struct plain_capture {
  std::optional<captures::http_tap> decrypted;
  std::optional<captures::leg_tap> phone, origin;

  void open(services& sv, connection& conn, const tcp::socket& upstream) {
    reset(conn);
    if (!sv.cfg.capture.pcapng) {
      return;
    }
    error_code ignored;
    const auto& p = conn.phone;
    const auto local = upstream.local_endpoint(ignored);
    const auto o = upstream.remote_endpoint(ignored);
    phone.emplace(sv.recorder, 0, p.address().to_string(), p.port(), o.address().to_string(), o.port());
    origin.emplace(sv.recorder, 1, local.address().to_string(), local.port(), o.address().to_string(), o.port());
    phone->release();  // no TLS secrets to wait for
    origin->release();
    decrypted.emplace(sv.recorder, p.address().to_string(), p.port(), o.address().to_string(), o.port());
    conn.phone_leg = &*phone;
    conn.plain = &*decrypted;
    conn.plain_phone = &*phone;
    conn.plain_origin = &*origin;
  }

  void reset(connection& conn) {
    conn.phone_leg = nullptr;
    conn.plain = nullptr;
    conn.plain_phone = nullptr;
    conn.plain_origin = nullptr;
    decrypted.reset();
    phone.reset();
    origin.reset();
  }
};

captures::flow_record new_flow(services& sv, const connection& conn) {
  captures::flow_record f;
  f.id = sv.next_flow++;
  f.client = conn.client;
  f.dest = conn.dest;
  f.sni = conn.sni;
  f.kind = conn.kind;
  f.start = std::chrono::system_clock::now();
  return f;
}

void record_connection_error(services& sv, const connection& conn, steady::time_point started,
                             captures::typed_error error, const std::string& kind = "connection") {
  auto f = new_flow(sv, conn);
  f.kind = kind;
  f.tls_handshake_ms = conn.handshake_ms;
  f.total_ms = ms_since(started);
  f.error = std::move(error);
  sv.recorder.write(f);
}

// Origin-form target of an absolute-form request: "http://h:8080/a?b" -> "/a?b".
struct absolute_url {
  std::string scheme, host, origin_form;
  std::uint16_t port = 80;
};

std::optional<std::uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return std::nullopt;
  }
  const unsigned long v = std::stoul(std::string(s));
  if (v == 0 || v > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(v);
}

// "host:port", "[v6]:port"; host names limited to the characters DNS and IP literals use.
std::optional<std::pair<std::string, std::uint16_t>> parse_authority(std::string_view a, std::uint16_t default_port) {
  std::string host;
  std::optional<std::uint16_t> port = default_port;
  if (!a.empty() && a.front() == '[') {
    const auto close = a.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    host = std::string(a.substr(1, close - 1));
    const auto rest = a.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return std::nullopt;
      }
      port = parse_port(rest.substr(1));
    }
    if (!is_ip_literal(host)) {
      return std::nullopt;
    }
  } else {
    const auto colon = a.rfind(':');
    host = std::string(a.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = parse_port(a.substr(colon + 1));
    }
    if (host.empty() || host.size() > 253 ||
        !std::all_of(host.begin(), host.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '.' || c == '_'; })) {
      return std::nullopt;
    }
  }
  if (!port) {
    return std::nullopt;
  }
  if (host.size() > 1 && host.back() == '.') {
    host.pop_back();  // "example.com." is example.com
  }
  return std::make_pair(lower(host), *port);
}

std::optional<absolute_url> parse_absolute(const std::string& target) {
  const auto sep = target.find("://");
  if (sep == std::string::npos) {
    return std::nullopt;
  }
  absolute_url u;
  u.scheme = lower(target.substr(0, sep));
  if (u.scheme != "http") {
    return std::nullopt;
  }
  const auto path_start = target.find_first_of("/?", sep + 3);
  const auto authority = std::string_view(target).substr(sep + 3, path_start == std::string::npos ? std::string::npos : path_start - sep - 3);
  if (authority.find('@') != std::string_view::npos) {
    return std::nullopt;  // userinfo in a proxy request is a classic confusion vector
  }
  const auto hp = parse_authority(authority, 80);
  if (!hp) {
    return std::nullopt;
  }
  u.host = hp->first;
  u.port = hp->second;
  u.origin_form = path_start == std::string::npos ? "/" : target.substr(path_start);
  if (u.origin_form.front() == '?') {
    u.origin_form = "/" + u.origin_form;
  }
  return u;
}

// The head sent upstream for an absolute-form request: origin-form target, hop-by-hop proxy
// headers dropped (RFC 9112 §3.2.2; Proxy-Connection is a pre-standard relic).
// Whether a request asks to switch to cleartext HTTP/2 (RFC 7540 §3.2; removed in RFC 9113).
bool asks_for_h2c(const http1::message_head& head) { return http1::list_has(head.header("upgrade"), "h2c"); }

// NTLM and Negotiate authenticate the connection, not the request (RFC 4559 §4): an origin
// connection that carried them belongs to the tunnel that authenticated it and is not kept.
bool authenticates_connection(const http1::message_head& head) {
  const auto scheme = lower(std::string(head.header("authorization").substr(0, 10)));
  return scheme.rfind("ntlm", 0) == 0 || scheme.rfind("negotiate", 0) == 0;
}

// Whether an HTTP/1.1 request asks to close its connection after the response.
bool asks_to_close(const http1::message_head& head) {
  return head.version_major == 1 && head.version_minor == 1 && http1::list_has(head.header("connection"), "close");
}

// The head as forwarded: origin-form, without the hop-by-hop headers meant for the proxy, and
// without an Upgrade to h2c, which would turn the connection into HTTP/2 that leakscope does not
// inspect; the server then answers in HTTP/1.1 as if no upgrade had been offered.
// `keep_open`: without the phone's `Connection: close`, which is about the phone's connection
// only (RFC 9110 §7.6.1): the origin's stays open for the next tunnel (proxy/origin_pool.hpp).
std::string origin_form_head(const http1::message_head& head, const std::string& origin_form, bool keep_open) {
  const bool h2c = asks_for_h2c(head);
  std::string out = head.method + " " + origin_form + " HTTP/" + std::to_string(head.version_major) + "." +
                    std::to_string(head.version_minor) + "\r\n";
  for (const auto& h : head.headers) {
    const auto name = lower(h.name);
    if (name == "proxy-connection" || name == "proxy-authorization" ||
        (h2c && (name == "upgrade" || name == "http2-settings"))) {
      continue;
    }
    if ((h2c || keep_open) && name == "connection") {
      std::string kept;
      for (const auto token : http1::list_elements(h.value)) {
        const auto t = lower(std::string(token));
        if (!(h2c && (t == "upgrade" || t == "http2-settings")) && !(keep_open && t == "close")) {
          kept += (kept.empty() ? "" : ", ") + std::string(token);
        }
      }
      if (!kept.empty()) {
        out += h.name + ": " + kept + "\r\n";
      }
      continue;
    }
    out += h.name + ": " + h.value + "\r\n";
  }
  out += "\r\n";
  return out;
}

// Writes one leak record per finding of a request (or of a raw stream: empty method and path).
void write_leaks(services& sv, const connection& conn, captures::flow_record& flow, const detectors::inspect_result& result,
                 const std::string& method, const std::string& path) {
  // Leak ids first, so the packet that completes the request in decrypted.pcapng can name them.
  const std::uint64_t first_id = sv.next_leak.fetch_add(result.findings.size());
  const auto who = sv.attribution.attribute(conn.dest.host);
  std::string comment;
  for (std::size_t i = 0; i < result.findings.size(); ++i) {
    comment += (comment.empty() ? "" : "; ") + std::string("leak ") + std::to_string(first_id + i) + ": " +
               result.findings[i].category + " → " + (who.sdk ? who.sdk->sdk : who.domain) + " (" + who.party + " party)";
  }
  const std::uint64_t decrypted_frame = conn.plain != nullptr ? conn.plain->end_request(comment) : 0;
  const std::uint64_t traffic_frame = conn.phone_leg != nullptr ? conn.phone_leg->last_client_frame() : 0;
  captures::leak_context context;
  context.flow = flow.id;
  context.ts = std::chrono::system_clock::now();
  context.t_session_ms = sv.timeline.now_ms();
  if (const auto consent = sv.timeline.consent_ms()) {
    context.t_consent_ms = context.t_session_ms - *consent;
  }
  context.client = conn.client;
  context.dest = conn.dest;
  context.party = who.party;
  context.party_rule = who.rule;
  context.domain = who.domain;
  if (who.sdk) {
    context.sdk = captures::sdk_info{who.sdk->sdk, who.sdk->vendor, who.sdk->category};
  }
  context.method = method;
  context.path = path;
  for (std::size_t i = 0; i < result.findings.size(); ++i) {
    const auto& f = result.findings[i];
    auto leak = captures::make_leak(context, first_id + i, f, detectors::mask(f.value));
    leak.traffic_frame = traffic_frame;
    leak.decrypted_frame = decrypted_frame;
    sv.recorder.write(leak);
    ++flow.leaks;
  }
}

void record_leaks(services& sv, const connection& conn, captures::flow_record& flow, http1::parser& req,
                  const std::string& origin_form) {
  detectors::http_request request;
  const auto& head = req.head();
  request.method = head.method;
  request.scheme = conn.dest.scheme;
  request.host = conn.dest.host;
  request.target = origin_form;
  for (const auto& h : head.headers) {
    request.headers.push_back({h.name, h.value});
  }
  request.body_truncated = req.body_truncated();
  request.body = req.take_body();  // lent, not copied: the exchange record takes it afterwards
  const auto result = sv.detector.inspect(request);
  req.put_back_body(std::move(request.body));
  flow.incomplete = result.incomplete;
  flow.request_truncated = request.body_truncated;
  // Without the query: values in it would defeat masking.
  write_leaks(sv, conn, flow, result, head.method, origin_form.substr(0, origin_form.find('?')));
}

// The host a transparent plain-HTTP request names in its Host header, without the port;
// `fallback` (the address dialled) when it has none.
std::string host_header_name(const http1::message_head& head, const std::string& fallback) {
  for (const auto& h : head.headers) {
    if (lower(h.name) == "host" && !h.value.empty()) {
      if (const auto authority = parse_authority(h.value, 80)) {
        return lower(authority->first);
      }
    }
  }
  return fallback;
}

// After an exchange, before the connection waits for the next request: the buffers sized for
// its bodies go back.
void idle_between_exchanges(http1::parser& req, http1::parser& res, std::string& ubuf) {
  req.release_memory();
  res.release_memory();
  if (ubuf.empty()) {
    ubuf.shrink_to_fit();
  }
}

// `idle`: no byte of a next request came within limits.timeouts.idle, and the connection was
// closed by us, cleanly; `closed`: the client went away between requests; `origin_closed`: the
// origin closed its connection (or spoke out of turn) while the client was between requests.
enum class head_read { ok, closed, idle, timeout, invalid, origin_closed };

// The origin's connection as seen while the phone is between requests: its socket, and whether
// the origin has said anything (data or a close, not a TLS session ticket) that nobody has read.
// With `pool`, the tunnel is one of the pool's holders while it waits, and `hand_over` gives
// the connection to the pool when it is asked to (origin_pool::max_held).
struct origin_watch {
  tcp::socket* socket = nullptr;
  std::function<bool()> has_spoken;
  // Whether it has spoken in what was read from the socket already (TLS records OpenSSL holds):
  // what the socket holds, the wait's registration reports at once (EPOLL_CTL_MOD looks).
  std::function<bool()> has_spoken_from_buffers;
  origin_pool* pool = nullptr;
  std::function<void()> hand_over;
};

bool has_spoken(tls_stream& s) {
  return s.has_spoken();
}
bool has_spoken(beast::tcp_stream& s) {
  return has_input(s.socket());
}
bool has_spoken_from_buffers(tls_stream& s) {
  return s.has_spoken_from_buffers();
}
bool has_spoken_from_buffers(beast::tcp_stream&) {
  return false;
}

// Between exchanges an HTTP/1.1 origin has nothing to say: when it speaks (a FIN, a
// close_notify, a 408) it is closing. The phone's connection is then closed in turn, as the
// origin would have closed it without a proxy, so the phone's client opens a new connection
// instead of sending its next request into one that is gone and getting a 502 (RFC 9112 §9.3.1).
// Shared by a wait on the origin's socket and the read it may cancel. The wait's handler may run
// after the read is over: it is then no longer `waiting` and touches nothing.
struct origin_close_watch : std::enable_shared_from_this<origin_close_watch> {
  bool waiting = true;
  bool spoke = false;
  bool asked_to_hand_over = false;
  tcp::socket* client = nullptr;
  const origin_watch* origin = nullptr;

  void arm() {
    origin->socket->async_wait(tcp::socket::wait_read, [self = shared_from_this()](const error_code& ec) {
      if (ec || !self->waiting) {
        return;
      }
      if (!self->origin->has_spoken()) {
        self->arm();  // a session ticket: nothing the phone needs to know
        return;
      }
      self->spoke = true;
      error_code ignored;
      self->client->cancel(ignored);
    });
  }
};

// Reads as read_more does, unless the origin speaks first; then `origin_spoke` is set and the
// read is cancelled. A plain handler, not a second coroutine and a signal: this runs before
// every kept-alive request, where the coroutine pair cost 10 µs of the proxy's 33. The read is
// cancelled too, with `hand_over` set, when the pool asks for the connection.
template <class Client>
awaitable<error_code> read_unless_origin_closes(Client& client, std::string& cbuf, std::chrono::milliseconds idle,
                                                const origin_watch& origin, bool& origin_spoke, bool& hand_over) {
  // The wait sees what arrives after it starts and what the socket holds when it starts (its
  // EPOLL_CTL_MOD reports a descriptor that is readable already), not what OpenSSL read ahead.
  // Asking the socket too cost a recv(2) that failed with EAGAIN before every kept-alive request.
  if (origin.has_spoken_from_buffers()) {
    origin_spoke = true;
    co_return net::error::operation_aborted;
  }
  const auto w = std::make_shared<origin_close_watch>();
  w->client = &beast::get_lowest_layer(client).socket();
  w->origin = &origin;
  w->arm();
  std::optional<std::uint64_t> holder;
  if (origin.pool != nullptr) {
    holder = origin.pool->hold([w] {
      if (w->waiting && !w->spoke) {
        w->asked_to_hand_over = true;
        error_code ignored;
        w->client->cancel(ignored);
      }
    });
  }
  const auto ec = co_await read_more(client, cbuf, idle, idle_read_chunk);
  w->waiting = false;
  if (holder) {
    origin.pool->let(*holder);
  }
  origin_spoke = w->spoke;
  hand_over = w->asked_to_hand_over && !w->spoke;
  if (!origin_spoke) {
    error_code ignored;
    origin.socket->cancel(ignored);  // only the readiness wait is outstanding on it
  }
  co_return ec;
}

// Reads until the parser has a complete request head. `closed` means the client went away
// cleanly between requests. With `origin.socket` set, an origin that closes while no byte of
// the next request has come ends the wait (`origin_closed`).
template <class Client>
awaitable<head_read> read_request_head(services& sv, Client& client, std::string& cbuf, http1::parser& req,
                                       const origin_watch& watched) {
  const auto& t = sv.cfg.limits.timeouts;
  // limits.timeouts.headers bounds the whole head from its first byte, so a client trickling
  // one byte at a time (slowloris) cannot hold the connection.
  bool started = false;
  steady::time_point first_byte;
  const auto waiting_since = steady::now();
  origin_watch origin_after_hand_over;  // none: the wait goes on without the origin
  const origin_watch* origin = &watched;
  while (true) {
    if (!cbuf.empty()) {
      if (!started) {
        started = true;
        first_byte = steady::now();
      }
      const auto r = req.feed(cbuf);
      cbuf.erase(0, r.consumed);
      if (r.error != http1::codec_error::none) {
        co_return head_read::invalid;
      }
      if (r.head_complete) {
        co_return head_read::ok;
      }
    }
    if (!started && cbuf.empty()) {
      // Between requests a connection may idle for minutes, and apps keep many: it waits with
      // a small buffer, and the bulk-sized ones of the last exchange go back.
      cbuf.shrink_to_fit();
      bool origin_spoke = false;
      bool hand_over = false;
      error_code ec;
      const auto idle = remaining(waiting_since, t.idle);
      if (origin->socket == nullptr) {
        ec = co_await read_more(client, cbuf, idle, idle_read_chunk);
      } else {
        ec = co_await read_unless_origin_closes(client, cbuf, idle, *origin, origin_spoke, hand_over);
      }
      if (ec) {
        if (origin_spoke && cbuf.empty()) {
          co_return head_read::origin_closed;
        }
        if (hand_over && cbuf.empty() && ec == net::error::operation_aborted) {
          origin->hand_over();
          origin = &origin_after_hand_over;
          continue;
        }
        if (ec == beast::error::timeout) {
          co_return head_read::idle;
        }
        co_return cbuf.empty() ? head_read::closed : head_read::invalid;
      }
      continue;
    }
    const auto ec = co_await read_more(client, cbuf, started ? remaining(first_byte, t.headers) : t.idle);
    if (ec) {
      if (ec == beast::error::timeout) {
        co_return started ? head_read::timeout : head_read::idle;
      }
      co_return started || !cbuf.empty() ? head_read::invalid : head_read::closed;
    }
  }
}

struct exchange_outcome {
  bool reuse = false;     // both sides keep the connection open
  bool upgraded = false;  // 101: the rest of the connection was relayed raw
  bool origin_idle = false;  // the origin's side may carry another exchange, whatever the phone's does
};

// Copies bytes both ways until either side closes or goes idle. Used for passthrough tunnels
// and after 101 Switching Protocols.
template <class A, class B>
awaitable<std::pair<std::uint64_t, std::uint64_t>> relay_raw(services& sv, A& a, B& b,
                                                             const std::vector<captures::leg_tap*>& taps,
                                                             const std::function<void(std::string_view)>& from_client) {
  auto executor = co_await net::this_coro::executor;
  std::uint64_t a_to_b = 0, b_to_a = 0;
  bool other_done = false;
  net::steady_timer done(executor, steady::time_point::max());
  const auto idle = sv.cfg.limits.timeouts.idle;
  // `a` is the client side: what it sends is "from client" on every tapped leg.
  auto pump = [&idle, &taps, &from_client](auto& from, auto& to, std::uint64_t& count, bool client_side) -> awaitable<void> {
    std::string buf;
    while (true) {
      buf.clear();
      if (co_await read_more(from, buf, idle)) {
        break;
      }
      count += buf.size();
      for (auto* tap : taps) {
        tap->data(client_side, buf);
      }
      if (client_side && from_client) {
        from_client(buf);
      }
      if (co_await write_all(to, buf, idle)) {
        break;
      }
    }
    beast::get_lowest_layer(from).socket().close();
    beast::get_lowest_layer(to).socket().close();
  };
  // Both pumps run on this connection's strand; the spawned one signals through `done`.
  net::co_spawn(
      executor,
      [&]() -> awaitable<void> {
        co_await pump(b, a, b_to_a, false);
        other_done = true;
        done.cancel();
      },
      net::detached);
  co_await pump(a, b, a_to_b, true);
  while (!other_done) {
    error_code ec;
    co_await done.async_wait(use_ec(ec));
  }
  co_return std::make_pair(a_to_b, b_to_a);
}

bool expects_continue(const http1::message_head& head) {
  return lower(std::string(head.header("expect"))) == "100-continue";
}

// One exchange in flight: its flow record and what has been relayed so far.
struct exchange {
  captures::flow_record flow;
  steady::time_point started = steady::now();
  steady::time_point sent;  // request complete (or head sent, while waiting for 100)
  bool any_byte = false;    // a response byte arrived
  bool forwarded = false;   // a response head went to the client: no error page possible
  bool origin_keep_alive = false;  // the request as the origin got it leaves its connection open
  bool may_resend = false;    // the origin's connection was kept by the proxy, and the request too
  bool both_reused = false;  // the phone's connection and the origin's both carried an exchange before this one
  exchange_outcome outcome;
  // Runs the detectors over the request once; every path that ends the flow calls it first, so
  // leaks are on disk before the flow that refers to them and a cut-off request is still seen.
  std::function<void(captures::flow_record&)> inspect;
  connection* conn = nullptr;
  http1::parser* req = nullptr;  // for the exchange record (HAR): heads and the kept body, taken
  const http1::parser* res = nullptr;
  captures::http_tap* plain = nullptr;  // decrypted.pcapng
  captures::leg_tap* plain_phone = nullptr;   // traffic.pcapng, plain HTTP only
  captures::leg_tap* plain_origin = nullptr;

  // Plain-HTTP bytes as observed on each leg (TLS legs are tapped below the SSL layer instead).
  void observed(bool from_client, std::string_view phone_side, std::string_view origin_side) const {
    if (plain_phone != nullptr) {
      plain_phone->data(from_client, phone_side);
    }
    if (plain_origin != nullptr) {
      plain_origin->data(from_client, origin_side);
    }
  }
};

void inspect_once(exchange& x) {
  if (x.inspect) {
    x.inspect(x.flow);
    x.inspect = nullptr;
  }
}

void finish(services& sv, exchange& x, std::optional<captures::typed_error> error, bool complete) {
  inspect_once(x);
  x.flow.complete = complete;
  x.flow.error = std::move(error);
  x.flow.total_ms = ms_since(x.started);
  if (x.req != nullptr) {
    captures::exchange_record e;
    e.flow = x.flow.id;
    const auto& rh = x.req->head();
    e.http_version = "HTTP/" + std::to_string(rh.version_major) + "." + std::to_string(rh.version_minor);
    for (const auto& h : rh.headers) {
      e.request_headers.emplace_back(h.name, h.value);
    }
    e.request_body_size = x.req->body_size();
    e.request_body = x.req->take_body();  // the exchange is over: the record is the body's last use
    if (x.forwarded && x.res != nullptr) {
      const auto& sh = x.res->head();
      e.status = sh.status;
      e.reason = sh.reason;
      for (const auto& h : sh.headers) {
        e.response_headers.emplace_back(h.name, h.value);
      }
      e.response_body_size = x.res->body_size();
    }
    sv.recorder.write(e);
  }
  sv.recorder.write(x.flow);
}

// `origin_gone`: the origin closed before a byte of the response, and the request may be resent.
enum class response_end { final, interim, failed, upgraded, origin_gone };

// A kept origin connection can be closed by its origin as a request goes out on it: the server's
// keep-alive ran out and its FIN crossed the request (RFC 9112 §9.3.1). Nothing came back, and
// the request was most likely never read.
//
// - When the proxy chose the connection (one from the pool serving a tunnel's first request),
//   the phone knows only a fresh connection: its client would not resend, and it would get a
//   502 it never gets without the proxy. So the proxy resends an idempotent request once, on a
//   new connection, as RFC 9110 §9.2.2 allows. Only a request that fits `resend_cap` is kept
//   for that; a longer one still fails.
// - A proxy must not resend any other request (RFC 9110 §9.2.2): for those the race is avoided
//   instead. A kept connection idle for longer than `kept_fresh` is replaced by a new one before
//   such a request goes out, which leaves the race only to servers that close idle connections
//   within about a second.
// - When the phone's own connection was reused too, the phone sees what it would have seen
//   without the proxy: its connection closed with no response, and its client's own rule
//   decides whether to send again.
constexpr std::size_t resend_cap = 64 * 1024;
// gunicorn's 2 s is the shortest keep-alive among common servers.
constexpr auto kept_fresh = std::chrono::seconds(1);

// RFC 9110 §9.2.2.
bool idempotent(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" || method == "PUT" ||
         method == "DELETE";
}

template <class Upstream>
struct redialled {
  Upstream* stream = nullptr;
  std::optional<upstream_failure> failure;
};
template <class Upstream>
using redial_fn = std::function<awaitable<redialled<Upstream>>()>;

// The origin connection a tunnel gets back for its next request after handing its own to the
// pool: `kept` when it came from the pool, and since when it idled there.
template <class Upstream>
struct taken_back {
  Upstream* stream = nullptr;
  std::optional<upstream_failure> failure;
  bool kept = false;
  steady::time_point idle_since;
};

// A tunnel's origin connection taken from the pool: how to replace it, and since when it idled.
// With a pool, how the tunnel hands its connection over between exchanges when the pool asks
// (origin_pool::max_held; the end of the last exchange, if any, is when it began to idle), and
// gets one back for its next request.
template <class Upstream>
struct kept_origin {
  redial_fn<Upstream> redial;  // empty when the connection was dialled for the tunnel
  std::chrono::steady_clock::time_point idle_since;
  origin_pool* pool = nullptr;
  std::function<void(std::optional<steady::time_point>)> hand_over;
  std::function<awaitable<taken_back<Upstream>>()> take_back;
};

// The origin side of a tunnel's exchanges: the stream, and for a resend the bytes the current
// exchange sent on it and how to get a new connection.
template <class Upstream>
class origin_link {
 public:
  origin_link(Upstream* stream, redial_fn<Upstream> redial) : stream_(stream), redial_(std::move(redial)) {}

  Upstream* get() const { return stream_; }
  Upstream& stream() const { return *stream_; }
  bool can_redial() const { return redial_ != nullptr; }

  // The tunnel's next exchanges go out on `stream` (null: it has none), replaced with `redial`.
  void reset(Upstream* stream, redial_fn<Upstream> redial) {
    stream_ = stream;
    redial_ = std::move(redial);
  }

  // Starts an exchange, keeping what it sends when `resendable` and a redial is possible.
  void begin(bool resendable) {
    moved_ = replaced_;
    replaced_ = false;
    sent_.clear();
    armed_ = resendable && redial_ != nullptr;
    resent_ = false;
    failure_.reset();
  }
  bool can_resend() const { return armed_; }
  bool resent() const { return resent_; }
  // Whether the connection was replaced before this exchange sent anything.
  bool moved() const { return moved_; }
  // Why the last resend did not happen.
  const std::optional<upstream_failure>& failure() const { return failure_; }

  // Writes `out`; a write the origin's close fails is resent on a new connection when it can be.
  awaitable<error_code> send(std::string_view out, std::chrono::milliseconds timeout) {
    if (armed_) {
      if (sent_.size() + out.size() <= resend_cap) {
        sent_.append(out);
      } else {
        armed_ = false;
        std::string().swap(sent_);
      }
    }
    auto ec = co_await write_all(*stream_, out, timeout);
    if (ec && ec != beast::error::timeout && armed_ && co_await resend(timeout)) {
      ec = {};
    }
    co_return ec;
  }

  // Moves to a new connection before anything is sent on the kept one; false with failure()
  // set when dialling fails.
  awaitable<bool> replace() {
    armed_ = false;
    auto fresh = co_await redial_();
    redial_ = nullptr;
    stream_ = fresh.stream;  // the kept connection is gone either way
    if (fresh.failure) {
      failure_ = std::move(fresh.failure);
      co_return false;
    }
    replaced_ = true;
    co_return true;
  }

  // Dials a new connection and sends it everything this exchange sent so far; at most once.
  awaitable<bool> resend(std::chrono::milliseconds timeout) {
    if (!co_await replace()) {
      co_return false;
    }
    replaced_ = false;  // said by resent() instead
    const std::string sent = std::move(sent_);
    sent_.clear();
    if (co_await write_all(*stream_, sent, timeout)) {
      failure_ = upstream_failure{502, {"upstream_write_failed", "the new connection to the server closed as the "
                                                                 "request was resent on it"}};
      co_return false;
    }
    resent_ = true;
    co_return true;
  }

 private:
  Upstream* stream_;
  redial_fn<Upstream> redial_;
  std::string sent_;
  bool armed_ = false;
  bool resent_ = false;
  bool replaced_ = false;  // by replace(), since the last begin()
  bool moved_ = false;
  std::optional<upstream_failure> failure_;
};

// After a 101 to "websocket": frames are relayed untouched both ways, and a copy of the phone's
// is reassembled into messages (unmasked, defragmented, inflated) for the detectors. The
// session is its own flow ("websocket"), written when it ends, after its leaks; each leak's
// `where` starts with "ws".
template <class Client, class Upstream>
awaitable<void> relay_websocket(services& sv, connection& conn, Client& client, Upstream& upstream,
                                const websocket::options& negotiated, const exchange& upgrade) {
  auto flow = new_flow(sv, conn);
  flow.kind = "websocket";
  flow.method = upgrade.flow.method;
  flow.url = upgrade.flow.url;
  const auto started = steady::now();
  websocket::options o = negotiated;
  o.max_message = sv.cfg.capture.max_inspect_body;
  o.max_decoded = sv.cfg.limits.max_decoded_body;
  websocket::reader reader(o);
  const auto& target = upgrade.req->head().target;
  const std::string path = target.substr(0, target.find('?'));
  // Leaks point at the phone's TLS frames; decrypted.pcapng holds HTTP exchanges only.
  connection frames = conn;
  frames.plain = nullptr;
  std::size_t messages = 0;
  std::set<std::string> incomplete;
  std::vector<websocket::message> done;
  const std::function<void(std::string_view)> scan = [&](std::string_view data) {
    if (reader.failed()) {
      return;
    }
    done.clear();
    reader.feed(data, done);
    for (const auto& m : done) {
      ++messages;
      detectors::http_request request;
      request.method = flow.method;
      request.scheme = conn.dest.scheme;
      request.host = conn.dest.host;
      request.body = m.data;
      request.body_truncated = m.truncated;
      auto result = sv.detector.inspect(request);
      for (auto& f : result.findings) {
        f.where = "ws" + (f.where.rfind("body", 0) == 0 ? f.where.substr(4) : ":" + f.where);
        if (m.compressed) {
          f.encoding.insert(f.encoding.begin(), "permessage-deflate");
        }
      }
      incomplete.insert(result.incomplete.begin(), result.incomplete.end());
      if (m.decode_error) {
        incomplete.insert("decode_error");
      }
      if (!result.findings.empty()) {
        write_leaks(sv, frames, flow, result, flow.method, path);
      }
    }
  };
  const std::vector<captures::leg_tap*> no_taps;
  const auto [up, down] = co_await relay_raw(sv, client, upstream, no_taps, scan);
  flow.bytes_up = up;
  flow.bytes_down = down;
  flow.total_ms = ms_since(started);
  flow.incomplete.assign(incomplete.begin(), incomplete.end());
  flow.note = std::to_string(messages) + " messages from the client" + (o.deflate ? ", permessage-deflate" : "");
  if (reader.failed()) {
    flow.error = captures::typed_error{"ws_protocol_error", "client frames stopped making sense (" + reader.error() +
                                                                "); relayed, not inspected from there on"};
  }
  sv.recorder.write(flow);
}

// Relays response messages from the origin to the client until the final one (or, with
// `stop_at_interim`, the first 1xx) is complete. Every end but `interim` finishes the flow.
template <class Client, class Upstream>
awaitable<response_end> relay_response(services& sv, exchange& x, Client& client, Upstream& upstream,
                                       std::string& ubuf, http1::parser& res, bool request_keep_alive,
                                       bool stop_at_interim) {
  const auto& t = sv.cfg.limits.timeouts;
  bool in_head = true;
  if (!x.any_byte && !ubuf.empty()) {
    x.any_byte = true;
    x.flow.ttfb_ms = 0;
  }
  // A head whose body is already here goes out with the body's first bytes: one TLS record
  // and one send instead of two (small responses are most of an app's traffic). A head whose
  // body is not here yet goes at once, so a streamed response (SSE, long polling) is not held.
  std::string held_head;
  while (true) {
    if (!ubuf.empty()) {
      const auto r = res.feed(ubuf);
      if (r.head_complete && !r.upgrade && !r.message_complete && ubuf.size() > r.consumed &&
          res.head().status >= 200) {
        const auto& raw = res.head().raw;
        if (x.plain != nullptr) {
          x.plain->response(raw);
        }
        x.observed(false, raw, raw);
        held_head = raw;
        x.flow.status = res.head().status;
        in_head = false;
        ubuf.erase(0, r.consumed);
        continue;
      }
      if (r.head_complete) {
        const auto& raw = res.head().raw;
        if (x.plain != nullptr) {
          x.plain->response(raw);
        }
        x.observed(false, raw, raw);
        if (co_await write_all(client, raw, t.idle)) {
          finish(sv, x, captures::typed_error{"client_closed", "the client closed before the response was relayed"}, false);
          co_return response_end::failed;
        }
        x.forwarded = true;
        x.flow.bytes_down += raw.size();
        x.flow.status = res.head().status;
        in_head = false;
        if (r.upgrade) {
          ubuf.erase(0, r.consumed);
          if (!ubuf.empty() && co_await write_all(client, ubuf, t.idle)) {
            finish(sv, x, std::nullopt, false);
            co_return response_end::failed;
          }
          x.flow.bytes_down += ubuf.size();
          ubuf.clear();
          finish(sv, x, std::nullopt, true);
          if (const auto ws = websocket::negotiated(x.req->head(), res.head())) {
            const websocket::options o = *ws;
            co_await relay_websocket(sv, *x.conn, client, upstream, o, x);
            co_return response_end::upgraded;
          }
          const std::vector<captures::leg_tap*> no_taps;
          const std::function<void(std::string_view)> no_scan;
          co_await relay_raw(sv, client, upstream, no_taps, no_scan);
          co_return response_end::upgraded;
        }
      } else if (!in_head && r.consumed > 0) {
        if (x.plain != nullptr) {
          x.plain->response(std::string_view(ubuf).substr(0, r.consumed));
        }
        x.observed(false, std::string_view(ubuf).substr(0, r.consumed), std::string_view(ubuf).substr(0, r.consumed));
        std::string_view out = std::string_view(ubuf).substr(0, r.consumed);
        if (!held_head.empty()) {
          held_head.append(out);
          out = held_head;
        }
        if (co_await write_all(client, out, t.idle)) {
          finish(sv, x, captures::typed_error{"client_closed", "the client closed in the middle of the response"}, false);
          co_return response_end::failed;
        }
        x.forwarded = true;
        x.flow.bytes_down += out.size();
        held_head.clear();
      }
      if (!held_head.empty()) {
        // The bytes after the head were not body after all (an error, or nothing consumed).
        if (co_await write_all(client, held_head, t.idle)) {
          finish(sv, x, captures::typed_error{"client_closed", "the client closed before the response was relayed"}, false);
          co_return response_end::failed;
        }
        x.forwarded = true;
        x.flow.bytes_down += held_head.size();
        held_head.clear();
      }
      ubuf.erase(0, r.consumed);
      if (r.error != http1::codec_error::none) {
        captures::typed_error error{"upstream_bad_response", res.error_name() + ": " + res.error_reason()};
        if (!x.forwarded) {
          const auto reply = error_response(502, error);
          co_await write_all(client, reply, t.idle);
          x.flow.status = 502;
          x.flow.bytes_down += reply.size();
        }
        finish(sv, x, error, false);
        co_return response_end::failed;
      }
      if (r.message_complete) {
        const int status = res.head().status;
        if (status >= 100 && status < 200) {
          if (stop_at_interim) {
            co_return response_end::interim;
          }
          in_head = true;  // the final response follows
          continue;
        }
        // Bytes after a complete response that nobody asked for mean the framing is not what
        // both sides think: close rather than relay a desynchronised stream.
        x.outcome.reuse = request_keep_alive && res.keep_alive() && ubuf.empty();
        x.outcome.origin_idle = x.origin_keep_alive && res.keep_alive() && ubuf.empty();
        finish(sv, x, std::nullopt, true);
        co_return response_end::final;
      }
      if (r.consumed > 0 && !ubuf.empty()) {
        continue;
      }
    }
    const auto ec = co_await read_more(upstream, ubuf, x.any_byte ? t.idle : t.upstream_response);
    if (!x.any_byte && !ubuf.empty()) {
      x.any_byte = true;
      x.flow.ttfb_ms = ms_since(x.sent);
    }
    if (ec) {
      if (!ubuf.empty()) {
        continue;  // parse what arrived with the close first
      }
      if (ec == beast::error::timeout && !x.forwarded) {
        captures::typed_error error{"upstream_timeout", "no response within limits.timeouts.upstream_response"};
        const auto reply = error_response(504, error);
        co_await write_all(client, reply, t.idle);
        x.flow.status = 504;
        finish(sv, x, error, false);
        co_return response_end::failed;
      }
      const bool nothing_back = !x.any_byte && !x.forwarded;
      if (nothing_back && x.may_resend) {
        co_return response_end::origin_gone;
      }
      if (nothing_back && x.both_reused) {
        finish(sv, x,
               captures::typed_error{"upstream_closed",
                                     "the server closed its kept connection as the request went out, without a "
                                     "response; the client's connection was closed the same way, for its client to "
                                     "send again as it would without a proxy"},
               false);
        co_return response_end::failed;
      }
      if (res.finish().message_complete) {
        finish(sv, x, std::nullopt, true);  // a close-delimited body ends here, and so does the connection
        co_return response_end::final;
      }
      captures::typed_error error{"upstream_closed", "the server closed before the response was complete"};
      if (!x.forwarded) {
        const auto reply = error_response(502, error);
        co_await write_all(client, reply, t.idle);
        x.flow.status = 502;
      }
      finish(sv, x, error, false);
      co_return response_end::failed;
    }
  }
}

// Relays one exchange whose request head is already parsed: the head (as `head_out`), the
// request body as it arrives, then the response(s) back. Records leaks and the flow.
// Whether a stream holds received bytes that a wait on its socket would not announce.
bool has_buffered(const tls_stream& s) {
  return s.has_buffered();
}
bool has_buffered(const beast::tcp_stream&) {
  return false;
}

// The request could not be sent whole. When a resend was tried and its dial failed, the phone
// hears why, as it would for any dial; otherwise its connection just closes.
template <class Client, class Upstream>
awaitable<void> upstream_write_failed(services& sv, exchange& x, Client& client, const origin_link<Upstream>& origin,
                                      const char* detail) {
  if (const auto& failure = origin.failure()) {
    const captures::typed_error error{failure->error.type, "resending the request on a new connection, after " +
                                                               std::string(detail) + ": " + failure->error.detail};
    if (!x.forwarded) {
      const auto reply = error_response(failure->status, error);
      co_await write_all(client, reply, sv.cfg.limits.timeouts.idle);
      x.flow.status = failure->status;
      x.flow.bytes_down += reply.size();
    }
    finish(sv, x, error, false);
    co_return;
  }
  finish(sv, x, captures::typed_error{"upstream_write_failed", detail}, false);
}

void note_resent(exchange& x, const connection& conn) {
  x.flow.dest.ip = conn.dest.ip;
  x.flow.note = "resent on a new connection to the server: the kept one closed as the request went out, before any "
                "response";
}

template <class Client, class Upstream>
awaitable<exchange_outcome> relay_exchange(services& sv, connection& conn, Client& client, std::string& cbuf,
                                           http1::parser& req, origin_link<Upstream>& origin, std::string& ubuf,
                                           http1::parser& res, const std::string& head_out,
                                           const std::string& origin_form, bool origin_keep_alive,
                                           bool both_reused) {
  const auto& t = sv.cfg.limits.timeouts;
  exchange x;
  x.flow = new_flow(sv, conn);
  x.flow.method = req.head().method;
  const bool default_port = (conn.dest.scheme == "https" && conn.dest.port == 443) ||
                            (conn.dest.scheme == "http" && conn.dest.port == 80);
  x.flow.url = conn.dest.scheme + "://" + conn.dest.host + (default_port ? "" : ":" + std::to_string(conn.dest.port)) + origin_form;
  if (conn.exchanges++ == 0) {
    x.flow.tls_handshake_ms = conn.handshake_ms;
  }
  res.expect_response_to(req.head().method);
  x.inspect = [&](captures::flow_record& flow) { record_leaks(sv, conn, flow, req, origin_form); };
  x.conn = &conn;
  x.req = &req;
  x.res = &res;
  x.plain = conn.plain;
  x.plain_phone = conn.plain_phone;
  x.plain_origin = conn.plain_origin;
  x.origin_keep_alive = origin_keep_alive;
  x.both_reused = both_reused;

  // Request: head, then body bytes exactly as the client framed them. When body bytes are
  // already here the head goes out with the first of them (one TLS record, one send), and a
  // body that turns out malformed means the origin never saw the request at all.
  bool awaiting_continue = expects_continue(req.head());
  // A 100-continue exchange may have had an answer before its body: not one to send twice.
  origin.begin(!both_reused && !awaiting_continue && idempotent(req.head().method));
  if (origin.moved()) {
    x.flow.note = "sent on a new connection to the server: the kept one had idled for over a second, too long to "
                  "risk a request that may not be resent";
  }
  std::string held_head;
  if (!awaiting_continue && !cbuf.empty()) {
    held_head = head_out;
  } else if (co_await origin.send(head_out, t.idle)) {
    co_await upstream_write_failed(sv, x, client, origin, "the server closed before the request was sent");
    co_return x.outcome;
  }
  x.flow.bytes_up += head_out.size();
  if (x.plain != nullptr) {
    x.plain->request(head_out);
  }
  x.observed(true, req.head().raw, head_out);  // the phone sent its own head (absolute-form, say)
  while (true) {
    const auto r = req.feed(cbuf);
    if (r.error != http1::codec_error::none) {
      // A body that breaks its own framing (bad chunk sizes, a missing CRLF): nothing more of it
      // goes on, the origin's connection is dropped with the request unfinished, and the phone
      // hears why, unless a response is already on its way.
      const captures::typed_error error{"client_bad_body", req.error_name() + ": " + req.error_reason()};
      if (!x.forwarded) {
        const auto reply = error_response(400, error);
        co_await write_all(client, reply, t.idle);
        x.flow.status = 400;
        x.flow.bytes_down += reply.size();
      }
      finish(sv, x, error, false);
      co_return x.outcome;
    }
    if (r.consumed > 0) {
      std::string_view out = std::string_view(cbuf).substr(0, r.consumed);
      if (!held_head.empty()) {
        held_head.append(out);
        out = held_head;
      }
      if (co_await origin.send(out, t.idle)) {
        cbuf.erase(0, r.consumed);
        co_await upstream_write_failed(sv, x, client, origin, "the server closed while the request body was sent");
        co_return x.outcome;
      }
      held_head.clear();
      x.flow.bytes_up += r.consumed;
      if (x.plain != nullptr) {
        x.plain->request(std::string_view(cbuf).substr(0, r.consumed));
      }
      x.observed(true, std::string_view(cbuf).substr(0, r.consumed), std::string_view(cbuf).substr(0, r.consumed));
      cbuf.erase(0, r.consumed);
    }
    if (!held_head.empty()) {
      // No body bytes after all in what was read (a pipelined request, or more to come).
      if (co_await origin.send(held_head, t.idle)) {
        co_await upstream_write_failed(sv, x, client, origin, "the server closed before the request was sent");
        co_return x.outcome;
      }
      held_head.clear();
    }
    if (r.message_complete) {
      break;
    }
    if (r.consumed > 0 && !cbuf.empty()) {
      continue;
    }
    if (awaiting_continue) {
      awaiting_continue = false;
      x.sent = steady::now();
      // RFC 9110 §10.1.1: the client may hold its body until it hears 100 Continue, or send it
      // after a while (curl waits 1 s). Neither side may be made to wait for the other: the
      // client is read in the background (a read and a write may be outstanding at once) while
      // whatever the origin says first is relayed.
      auto executor = co_await net::this_coro::executor;
      net::steady_timer signal(executor, steady::time_point::max());
      std::string incoming;
      error_code client_ec;
      bool client_done = false;
      bool origin_ready = false;
      bool origin_watch_done = false;
      net::co_spawn(
          executor,
          [&]() -> awaitable<void> {
            client_ec = co_await read_more(client, incoming, t.idle);
            client_done = true;
            signal.cancel();
          },
          net::detached);
      auto& origin_socket = beast::get_lowest_layer(origin.stream()).socket();
      const bool origin_buffered = has_buffered(origin.stream());
      net::co_spawn(
          executor,
          [&]() -> awaitable<void> {
            error_code ec;
            if (!origin_buffered) {
              co_await origin_socket.async_wait(tcp::socket::wait_read, use_ec(ec));
            }
            origin_ready = !ec;
            origin_watch_done = true;
            signal.cancel();
          },
          net::detached);
      while (!client_done && !origin_ready && !origin_watch_done) {
        error_code ignored;
        co_await signal.async_wait(use_ec(ignored));
      }
      bool final_answer = false;
      if (!client_done && origin_ready) {
        const auto end = co_await relay_response(sv, x, client, origin.stream(), ubuf, res, false, true);
        final_answer = end != response_end::interim;
        if (final_answer) {
          // A final answer before the body (e.g. 417, 401): the client decides whether to send it,
          // so this connection's framing is no longer known: stop reading it and close after.
          beast::get_lowest_layer(client).socket().cancel();
        }
      }
      if (!origin_watch_done) {
        error_code ignored;
        origin_socket.cancel(ignored);  // only the readiness wait is outstanding on it
      }
      while (!client_done || !origin_watch_done) {
        error_code ignored;
        signal.expires_at(steady::time_point::max());
        co_await signal.async_wait(use_ec(ignored));
      }
      if (final_answer) {
        x.outcome.reuse = false;
        co_return x.outcome;
      }
      if (client_ec) {
        finish(sv, x,
               captures::typed_error{client_ec == beast::error::timeout ? "client_timeout" : "client_closed",
                                     "the client stopped before sending the request body"},
               false);
        co_return x.outcome;
      }
      cbuf += incoming;
      continue;
    }
    if (const auto ec = co_await read_more(client, cbuf, t.idle)) {
      finish(sv, x,
             captures::typed_error{ec == beast::error::timeout ? "client_timeout" : "client_closed",
                                   "the client stopped in the middle of the request body"},
             false);
      co_return x.outcome;
    }
  }
  if (origin.resent()) {
    note_resent(x, conn);
  }
  inspect_once(x);  // leaks are written now, not after a slow response
  x.sent = steady::now();
  x.may_resend = origin.can_resend();
  auto end = co_await relay_response(sv, x, client, origin.stream(), ubuf, res, req.keep_alive(), false);
  if (end == response_end::origin_gone) {
    x.may_resend = false;
    if (!co_await origin.resend(t.idle)) {
      co_await upstream_write_failed(sv, x, client, origin, "the server closed its kept connection as the request went out");
      co_return x.outcome;
    }
    note_resent(x, conn);
    x.sent = steady::now();
    co_await relay_response(sv, x, client, origin.stream(), ubuf, res, req.keep_alive(), false);
  }
  co_return x.outcome;
}

// Lingering close (RFC 9112 §9.6): a client refused in the middle of its request may still be
// sending it, and closing with its bytes unread makes the kernel reset the connection, which
// can destroy the refusal before the client reads it. So the write side is closed first (on
// plain TCP; the refusal tells a TLS client `Connection: close`), and what still arrives is
// read and dropped, for at most a second and 4 MiB.
template <class Stream>
awaitable<void> linger_close(Stream& s) {
  if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
    error_code ignored;
    s.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
  constexpr std::size_t max_dropped = 4u << 20;
  const auto until = steady::now() + std::chrono::seconds(1);
  std::string sink;
  std::size_t dropped = 0;
  while (dropped < max_dropped && steady::now() < until) {
    sink.clear();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now());
    const auto ec = co_await read_more(s, sink, left);
    dropped += sink.size();
    if (ec) {
      break;
    }
  }
}

// Answers a request the proxy cannot forward, after reading its head, and records it.
// Callers pass named values, never braced temporaries: GCC 12 destroys temporaries of a
// co_await full-expression twice (a double free; fixed in GCC 13).
template <class Client>
awaitable<void> refuse_request(services& sv, connection& conn, Client& client, const http1::parser& req,
                               int status, const captures::typed_error& error, const std::string& target) {
  auto flow = new_flow(sv, conn);
  flow.method = req.head().method;
  flow.url = target;
  flow.status = status;
  if (conn.exchanges++ == 0) {
    flow.tls_handshake_ms = conn.handshake_ms;
  }
  const auto reply = error_response(status, error);
  co_await write_all(client, reply, sv.cfg.limits.timeouts.idle);
  flow.bytes_down = reply.size();
  flow.error = error;
  sv.recorder.write(flow);
  co_await linger_close(client);
}

template <class Client>
awaitable<void> refuse_bad_head(services& sv, connection& conn, Client& client, const http1::parser& req) {
  const bool too_large = req.error() == http1::codec_error::header_too_large ||
                         req.error() == http1::codec_error::too_many_headers;
  const captures::typed_error error{too_large ? "request_header_too_large" : "client_bad_request",
                                    req.error_name() + ": " + req.error_reason()};
  const std::string no_target;
  co_await refuse_request(sv, conn, client, req, too_large ? 431 : 400, error, no_target);
}

// Reads the next request head. A malformed one is answered (400, 431) and recorded here, a
// timed-out one recorded; the connection then ends, as after a clean close or an idle timeout.
template <class Client>
awaitable<head_read> next_request(services& sv, connection& conn, Client& client, std::string& cbuf,
                                  http1::parser& req, const origin_watch& origin) {
  const auto state = co_await read_request_head(sv, client, cbuf, req, origin);
  if (state == head_read::invalid) {
    co_await refuse_bad_head(sv, conn, client, req);
  } else if (state == head_read::timeout) {
    // beast::tcp_stream has closed the socket on the timeout, so there is no 408 to send.
    record_connection_error(sv, conn, steady::now(),
                            {"client_header_timeout", "the request head did not arrive within limits.timeouts.headers"});
  }
  co_return state;
}

// Serves HTTP/1.1 exchanges on a connection whose destination is fixed (a CONNECT tunnel).
// `upstream` is null when dialling failed: every request then gets `failure`.
// A client that pins a key other than ours hangs up as soon as it has checked it: OkHttp's
// CertificatePinner runs right after the handshake. A connection opened ahead of need and then
// closed unused (Chromium's and WebView's preconnects, closed after 10 s) stays open longer;
// taking it for pinning would pass its host through, uninspected, for the rest of the session.
constexpr auto pinning_hang_up_window = std::chrono::seconds(2);

// How a tunnel's requests ended: how many the client sent, how the wait for the next one
// ended (`ok` when the last exchange closed the tunnel), and whether the origin's connection
// is between exchanges and may serve another tunnel.
struct tunnel_end {
  unsigned served = 0;
  head_read last = head_read::ok;
  bool origin_idle = false;
  std::optional<steady::time_point> last_exchange_end = std::nullopt;
};

template <class Client, class Upstream>
awaitable<tunnel_end> serve_tunnel_http(services& sv, connection& conn, Client& client, std::string& cbuf,
                                        Upstream* upstream, const std::optional<upstream_failure>& failure,
                                        bool origin_persists, const kept_origin<Upstream>& kept) {
  http1::codec_limits limits{sv.cfg.limits.max_header_bytes, sv.cfg.limits.max_headers};
  http1::parser req(http1::message_kind::request, limits);
  http1::parser res(http1::message_kind::response, limits);
  req.set_body_cap(sv.cfg.capture.max_inspect_body);
  std::string ubuf;
  unsigned served = 0;
  std::optional<steady::time_point> last_exchange_end;
  bool origin_authenticated = false;
  origin_link<Upstream> link(upstream, kept.redial);
  std::optional<upstream_failure> no_origin = failure;  // why link.get() is null
  // The proxy, not the phone, chose the connection the next exchange goes out on (the tunnel's
  // first, or one taken back): if it was kept, the rules of `resend_cap` and `kept_fresh` apply.
  bool chosen_by_proxy = true;
  auto chosen_idle_since = kept.idle_since;
  bool handed_over = false;
  while (true) {
    origin_watch origin;
    if (auto* up = link.get(); up != nullptr) {
      origin.socket = &beast::get_lowest_layer(*up).socket();
      origin.has_spoken = [up] { return has_spoken(*up); };
      origin.has_spoken_from_buffers = [up] { return has_spoken_from_buffers(*up); };
      if (kept.pool != nullptr && kept.hand_over && !origin_authenticated) {
        // An origin that authenticated the connection (NTLM) stays with its tunnel.
        origin.pool = kept.pool;
        origin.hand_over = [&] {
          link.reset(nullptr, nullptr);
          kept.hand_over(last_exchange_end);
          handed_over = true;
        };
      }
    }
    const auto state = co_await next_request(sv, conn, client, cbuf, req, origin);
    if (state != head_read::ok) {
      // Unless it closed, the origin has heard nothing since its last complete, kept-alive response.
      co_return tunnel_end{state == head_read::invalid ? served + 1 : served, state,
                           state != head_read::origin_closed && !origin_authenticated, last_exchange_end};
    }
    ++served;
    if (handed_over) {
      handed_over = false;
      auto back = co_await kept.take_back();
      link.reset(back.stream, back.kept ? kept.redial : nullptr);
      no_origin = std::move(back.failure);
      chosen_by_proxy = true;
      chosen_idle_since = back.idle_since;
    }
    origin_authenticated = origin_authenticated || authenticates_connection(req.head());
    if (conn.transparent) {
      conn.dest.host = host_header_name(req.head(), conn.dest.ip);
    }
    const auto& target = req.head().target;
    if (target.empty() || target.front() != '/') {
      if (target != "*") {
        const captures::typed_error error{"client_bad_request", "request target inside a tunnel must be origin-form"};
        co_await refuse_request(sv, conn, client, req, 400, error, target);
        co_return tunnel_end{served};
      }
    }
    if (chosen_by_proxy && link.can_redial() && !idempotent(req.head().method) &&
        steady::now() - chosen_idle_since > kept_fresh && !co_await link.replace()) {
      const auto& why = *link.failure();
      co_await refuse_request(sv, conn, client, req, why.status, why.error, conn.dest.scheme + "://" + conn.dest.host + target);
      co_return tunnel_end{served};
    }
    if (link.get() == nullptr) {
      co_await refuse_request(sv, conn, client, req, no_origin->status, no_origin->error,
                              conn.dest.scheme + "://" + conn.dest.host + target);
      co_return tunnel_end{served};
    }
    // Forwarded as sent, byte for byte, unless it offers an upgrade to h2c, or closes a
    // connection the origin's side of which outlives it.
    const bool keep_open = origin_persists && asks_to_close(req.head());
    const std::string head_out =
        asks_for_h2c(req.head()) || keep_open ? origin_form_head(req.head(), target, keep_open) : req.head().raw;
    const auto outcome = co_await relay_exchange(sv, conn, client, cbuf, req, link, ubuf, res, head_out, target,
                                                 req.keep_alive() || keep_open, served > 1 && !chosen_by_proxy);
    chosen_by_proxy = false;
    last_exchange_end = steady::now();
    if (!outcome.reuse) {
      co_return tunnel_end{served, head_read::ok, outcome.origin_idle && !origin_authenticated, last_exchange_end};
    }
    idle_between_exchanges(req, res, ubuf);
  }
}

// Serves absolute-form plain-HTTP requests; the upstream follows each request's host.
awaitable<void> serve_plain_http(services& sv, connection& conn, beast::tcp_stream& client, std::string& cbuf,
                                 http1::parser& req) {
  http1::codec_limits limits{sv.cfg.limits.max_header_bytes, sv.cfg.limits.max_headers};
  plain_capture capture;  // before `upstream`: the taps outlive nothing they point into
  std::optional<beast::tcp_stream> upstream;
  std::unique_ptr<http1::parser> res;
  std::string ubuf;
  std::string current;  // host:port of `upstream`
  bool first = true;  // the first head was read by serve_client
  while (true) {
    const origin_watch no_origin;  // each request dials its own
    if (!first && co_await next_request(sv, conn, client, cbuf, req, no_origin) != head_read::ok) {
      co_return;
    }
    first = false;
    const auto url = parse_absolute(req.head().target);
    if (!url) {
      const captures::typed_error error{"client_bad_request", "a proxy request needs an absolute http:// URL or CONNECT"};
      co_await refuse_request(sv, conn, client, req, 400, error, req.head().target);
      co_return;
    }
    if (url->host == "leakscope") {
      // http://leakscope/ is the CA install page, answered by the proxy itself.
      const auto page = ca_page(sv.ca, url->origin_form.substr(0, url->origin_form.find('?')), "/");
      const auto reply = http_response(page ? *page : ca_response{404, "text/plain", "not found\n", ""});
      co_await write_all(client, reply, sv.cfg.limits.timeouts.idle);
      co_return;
    }
    conn.dest = {url->host, "", url->port, "http"};
    conn.kind = "http";
    const std::string key = url->host + ":" + std::to_string(url->port);
    const bool reused = upstream && key == current;
    if (!reused) {
      upstream.reset();
      ubuf.clear();
      auto dialled = co_await dial(sv, url->host, url->port);
      if (dialled.failure) {
        co_await refuse_request(sv, conn, client, req, dialled.failure->status, dialled.failure->error,
                                req.head().target);
        co_return;
      }
      upstream.emplace(std::move(*dialled.stream));
      current = key;
      conn.dest.ip = dialled.remote.address().to_string();
      res = std::make_unique<http1::parser>(http1::message_kind::response, limits);
      capture.open(sv, conn, upstream->socket());
    } else {
      conn.dest.ip = upstream->socket().remote_endpoint().address().to_string();
    }
    const std::string head_out = origin_form_head(req.head(), url->origin_form, false);
    // The phone's connection and the origin's are paired here: a reused origin connection that
    // dies under a request is the phone's to retry, as without a proxy.
    origin_link<beast::tcp_stream> link(&*upstream, nullptr);
    const auto outcome =
        co_await relay_exchange(sv, conn, client, cbuf, req, link, ubuf, *res, head_out, url->origin_form,
                                req.keep_alive(), reused);
    if (!outcome.reuse) {
      co_return;
    }
    idle_between_exchanges(req, *res, ubuf);
  }
}

bool matches_pattern(const std::string& host, const std::string& pattern) {
  if (pattern.rfind("*.", 0) == 0) {
    const auto suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0;
  }
  return host == pattern;
}

// How the phone refused our certificate, or nullopt when the failure was something else.
std::optional<std::string> client_rejection(const error_code& ec) {
  if (ec.category() == ssl::error::get_stream_category() && ec == ssl::error::stream_truncated) {
    return "the client closed the connection during the handshake";
  }
  if (ec == net::error::eof || ec == net::error::connection_reset) {
    return "the client closed the connection during the handshake";
  }
  // TLS 1.3: our handshake ends by writing session tickets; a client that verified, checked a
  // pin and hung up (OkHttp's CertificatePinner) has closed by then.
  if (ec == net::error::broken_pipe) {
    return "the client completed its side of the handshake and closed before reading our session tickets";
  }
  if (ec.category() == net::error::get_ssl_category()) {
    switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
      case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        return "the client aborted the handshake with alert unknown_ca";
      case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
        return "the client aborted the handshake with alert bad_certificate";
      case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
        return "the client aborted the handshake with alert certificate_unknown";
      default:
        break;
    }
  }
  return std::nullopt;
}

// Relays a connection byte for byte and records it as `flow` (passthrough, raw TCP). Both legs
// carry the same bytes; `from_client` sees what the phone sends, in order.
awaitable<void> relay_untouched(services& sv, beast::tcp_stream& client, std::string& cbuf, beast::tcp_stream& upstream,
                                steady::time_point started, captures::flow_record& flow,
                                const std::function<void(std::string_view)>& from_client) {
  std::optional<captures::leg_tap> phone_leg, origin_leg;
  std::vector<captures::leg_tap*> taps;
  if (sv.cfg.capture.pcapng) {
    error_code ignored;
    const auto p = client.socket().remote_endpoint(ignored);
    const auto local = upstream.socket().local_endpoint(ignored);
    const auto o = upstream.socket().remote_endpoint(ignored);
    phone_leg.emplace(sv.recorder, 0, p.address().to_string(), p.port(), o.address().to_string(), o.port());
    origin_leg.emplace(sv.recorder, 1, local.address().to_string(), local.port(), o.address().to_string(), o.port());
    phone_leg->release();
    origin_leg->release();
    taps = {&*phone_leg, &*origin_leg};
    for (auto* tap : taps) {
      tap->data(true, cbuf);
    }
  }
  if (from_client && !cbuf.empty()) {
    from_client(cbuf);
  }
  if (co_await write_all(upstream, cbuf, sv.cfg.limits.timeouts.idle)) {
    flow.complete = false;
  }
  const auto sent_early = cbuf.size();
  cbuf.clear();
  const auto [up, down] = co_await relay_raw(sv, client, upstream, taps, from_client);
  flow.bytes_up = up + sent_early;
  flow.bytes_down = down;
  flow.total_ms = ms_since(started);
  sv.recorder.write(flow);
}

awaitable<void> passthrough(services& sv, connection& conn, beast::tcp_stream& client, std::string& cbuf,
                            beast::tcp_stream& upstream, steady::time_point started, const std::string& why) {
  auto flow = new_flow(sv, conn);
  flow.kind = "passthrough";
  flow.dest.scheme = "tls";
  flow.note = why;
  // Passthrough bytes are TLS the phone and the server exchanged untouched; no secrets exist.
  const std::function<void(std::string_view)> no_scan;
  co_await relay_untouched(sv, client, cbuf, upstream, started, flow, no_scan);
}

// Raw TCP in transparent mode (push SDKs keep such connections open for hours): relayed
// untouched, the phone's bytes scanned for profile values as they pass, each leak written
// when seen. Pieces overlap by the longest form, so a value split across reads is found; a
// value is reported once per connection.
awaitable<void> relay_raw_tcp(services& sv, connection& conn, beast::tcp_stream& client, std::string& cbuf,
                              beast::tcp_stream& upstream, steady::time_point started, const std::string& protocol) {
  auto flow = new_flow(sv, conn);
  flow.kind = "tcp";
  flow.dest.scheme = "tcp";
  flow.note = "protocol: " + protocol + "; not HTTP or TLS: relayed untouched, the client's bytes scanned for profile values";
  const std::size_t overlap = sv.detector.longest_known_form() > 0 ? sv.detector.longest_known_form() - 1 : 0;
  std::string window;
  std::set<std::string> reported;
  const std::function<void(std::string_view)> scan = [&](std::string_view data) {
    window.append(data);
    auto result = sv.detector.inspect_bytes(window, "tcp");
    std::erase_if(result.findings, [&](const detectors::finding& f) {
      return !reported.insert(f.category + '\0' + f.value).second;
    });
    if (!result.findings.empty()) {
      write_leaks(sv, conn, flow, result, "", "");
    }
    if (window.size() > overlap) {
      window.erase(0, window.size() - overlap);
    }
  };
  co_await relay_untouched(sv, client, cbuf, upstream, started, flow, scan);
}

// The pool of the context a session runs on.
origin_pool* pool_of(services& sv, const net::any_io_executor& executor) {
  auto* context = &net::query(executor, net::execution::context);
  for (auto* pool : sv.pools) {
    if (static_cast<net::execution_context*>(&pool->context()) == context) {
      return pool;
    }
  }
  return nullptr;
}

// A CONNECT granted on the strength of an idle pooled connection dials its origin only when
// that connection turns out not to serve (taken meanwhile, closed, passed through, not TLS).
awaitable<std::optional<upstream_failure>> dial_origin(services& sv, connection& conn,
                                                       std::optional<beast::tcp_stream>& origin) {
  if (origin) {
    co_return std::nullopt;
  }
  auto dialled = co_await dial(sv, conn.origin_host, conn.dest.port);
  if (dialled.failure) {
    co_return dialled.failure;
  }
  conn.dest.ip = dialled.remote.address().to_string();
  origin.emplace(std::move(*dialled.stream));
  co_return std::nullopt;
}

// A fresh origin connection, its leg of traffic.pcapng tapped from the first byte.
std::shared_ptr<origin_connection> open_origin(services& sv, beast::tcp_stream tcp) {
  error_code ignored;
  const auto local = tcp.socket().local_endpoint(ignored);
  const auto remote = tcp.socket().remote_endpoint(ignored);
  auto c = std::make_shared<origin_connection>(std::move(tcp), sv.upstream_tls.native_handle(), remote);
  if (sv.cfg.capture.pcapng) {
    c->leg.emplace(sv.recorder, 1, local.address().to_string(), local.port(), remote.address().to_string(),
                   remote.port());
    c->tap = {&*c->leg, true};
    attach_tap(c->stream, &c->tap);
  }
  return c;
}

// Dials (unless `origin` is already connected) and verifies a fresh origin connection for
// `name` into `upstream`; or says why not, for the phone to be told.
awaitable<std::optional<upstream_failure>> connect_origin(services& sv, connection& conn,
                                                          std::optional<beast::tcp_stream>& origin,
                                                          const std::string& name,
                                                          std::shared_ptr<origin_connection>& upstream) {
  if (auto failure = co_await dial_origin(sv, conn, origin)) {
    co_return failure;
  }
  upstream = open_origin(sv, std::move(*origin));
  origin.reset();
  auto failure = co_await upstream_handshake(sv, upstream->stream, name);
  upstream->idle_since = steady::now();
  if (upstream->leg) {
    upstream->leg->release();
  }
  if (failure) {
    upstream.reset();
  }
  co_return failure;
}

// After CONNECT: peek the ClientHello, then intercept, pass through, or serve plain HTTP.
// `origin` is the dialled origin, or empty when the pool had an idle connection to it.
awaitable<void> serve_tunnel(services& sv, connection& conn, beast::tcp_stream client, std::string cbuf,
                             std::optional<beast::tcp_stream> origin) {
  const auto& t = sv.cfg.limits.timeouts;
  const auto started = steady::now();
  hello_result hello;
  while (true) {
    hello = parse_client_hello(cbuf);
    if (hello.status != hello_status::need_more) {
      break;
    }
    if (const auto ec = co_await read_more(client, cbuf, remaining(started, t.handshake))) {
      if (!cbuf.empty() || ec == beast::error::timeout) {
        record_connection_error(sv, conn, started,
                                {"client_hello_incomplete", "the client sent part of a ClientHello and then " +
                                                                std::string(ec == beast::error::timeout ? "stalled" : "closed")});
      }
      co_return;
    }
  }
  if (hello.status == hello_status::malformed) {
    record_connection_error(sv, conn, started, {"client_hello_malformed", hello.reason});
    co_return;
  }
  if (hello.status == hello_status::not_tls) {
    // Plain HTTP through CONNECT (e.g. to port 80): inspect it the same way.
    conn.kind = "http";
    conn.dest.scheme = "http";
    if (const auto failure = co_await dial_origin(sv, conn, origin)) {
      record_connection_error(sv, conn, started, failure->error);
      co_return;
    }
    plain_capture capture;
    capture.open(sv, conn, origin->socket());
    // The origin was dialled for this tunnel, so it pairs with the phone's connection: no resend.
    const kept_origin<beast::tcp_stream> dialled_here;
    co_await serve_tunnel_http(sv, conn, client, cbuf, &*origin, std::nullopt, false, dialled_here);
    capture.reset(conn);
    co_return;
  }

  conn.sni = lower(hello.hello.sni);
  if (conn.sni.size() > 1 && conn.sni.back() == '.') {
    conn.sni.pop_back();
  }
  // Some Go clients put the URL's host:port in the SNI (RFC 6066 §3 allows a name only); the
  // port of the destination itself is read past rather than failing the connection.
  if (const auto suffix = ":" + std::to_string(conn.dest.port);
      conn.sni.size() > suffix.size() && conn.sni.compare(conn.sni.size() - suffix.size(), suffix.size(), suffix) == 0) {
    conn.sni.resize(conn.sni.size() - suffix.size());
  }
  if (conn.transparent && !conn.sni.empty()) {
    conn.dest.host = conn.sni;
  }
  // An address in the SNI is not allowed (RFC 6066 §3): it names nothing, so the CONNECT host does.
  const std::string name = conn.sni.empty() || is_ip_literal(conn.sni) ? conn.dest.host : conn.sni;
  std::optional<std::string> passed_through;
  for (const auto& pattern : sv.cfg.tls.passthrough) {
    if (matches_pattern(name, pattern) || matches_pattern(conn.dest.host, pattern)) {
      passed_through = "tls.passthrough: " + pattern;
      break;
    }
  }
  if (!passed_through && sv.cfg.tls.auto_passthrough && sv.rejected.contains(name)) {
    passed_through = "tls.auto_passthrough: the client rejected our certificate earlier";
  }
  if (passed_through) {
    if (const auto failure = co_await dial_origin(sv, conn, origin)) {
      record_connection_error(sv, conn, started, failure->error);
      co_return;
    }
    co_await passthrough(sv, conn, client, cbuf, *origin, started, *passed_through);
    co_return;
  }

  // Verify the origin before the phone's handshake: a failure is told to the phone as a 502
  // over TLS, which says why, where a refused handshake would only say "certificate error".
  auto* pool = pool_of(sv, client.get_executor());
  std::shared_ptr<origin_connection> upstream;
  if (!origin && pool != nullptr) {
    upstream = pool->take(conn.client_ip, conn.origin_host, conn.dest.port, name);
  }
  bool from_pool = upstream != nullptr;
  std::optional<upstream_failure> failure;
  if (upstream) {
    conn.dest.ip = upstream->remote.address().to_string();
  } else {
    failure = co_await connect_origin(sv, conn, origin, name, upstream);
  }

  const auto leaf = sv.leaves.get(name);
  if (!leaf) {
    record_connection_error(sv, conn, started, {"client_hello_malformed", "SNI \"" + conn.sni + "\" is not a host name"});
    co_return;
  }
  // traffic.pcapng: the phone's leg is drawn between the phone and the origin it asked for: that
  // is the conversation it believes it had. Declared before the stream, so the tap outlives the
  // stream whose BIO feeds it.
  std::optional<captures::leg_tap> phone_leg;
  tls_tap phone_tap;
  if (sv.cfg.capture.pcapng) {
    phone_leg.emplace(sv.recorder, 0, conn.phone.address().to_string(), conn.phone.port(), conn.dest.ip, conn.dest.port);
    phone_tap = {&*phone_leg, false};
  }
  tls_stream phone(std::move(client), sv.client_facing.native_handle());
  if (phone_leg) {
    attach_tap(phone, &phone_tap);
  }
  SSL_use_certificate(phone.native_handle(), leaf->cert.get());
  SSL_use_PrivateKey(phone.native_handle(), leaf->key.get());
  beast::get_lowest_layer(phone).expires_after(t.handshake);
  const auto handshake_started = steady::now();
  error_code ec;
  co_await phone.async_handshake(ssl::stream_base::server, net::buffer(cbuf), use_ec(ec));
  cbuf.clear();
  if (phone_leg) {
    phone_leg->release();
  }
  if (ec) {
    if (const auto why = client_rejection(ec)) {
      sv.rejected.add(name);
      record_connection_error(sv, conn, started, {"tls_client_rejected", *why + " (pinning suspected)"});
    } else {
      if (upstream != nullptr && pool != nullptr) {
        pool->put(conn.client_ip, conn.origin_host, conn.dest.port, name, std::move(upstream));
      }
      if (ec == beast::error::timeout) {
        record_connection_error(sv, conn, started, {"client_tls_timeout", "TLS handshake with the client timed out"});
      } else {
        record_connection_error(sv, conn, started, {"client_tls_failed", "TLS handshake with the client failed: " + ec.message()});
      }
    }
    co_return;
  }
  conn.handshake_ms = ms_since(handshake_started);
  conn.kind = "https";
  std::optional<captures::http_tap> plain_tap;
  if (sv.cfg.capture.pcapng) {
    plain_tap.emplace(sv.recorder, conn.phone.address().to_string(), conn.phone.port(), conn.dest.ip, conn.dest.port);
    conn.plain = &*plain_tap;
    conn.phone_leg = phone_leg ? &*phone_leg : nullptr;
  }
  const auto handshake_done = steady::now();
  // A kept connection the origin closes as the tunnel's first request goes out is replaced, and
  // the request resent on the new one (see `resend_cap`).
  kept_origin<tls_stream> kept;
  const redial_fn<tls_stream> redial = [&]() -> awaitable<redialled<tls_stream>> {
    from_pool = false;
    upstream.reset();
    redialled<tls_stream> fresh;
    fresh.failure = co_await connect_origin(sv, conn, origin, name, upstream);
    if (upstream) {
      fresh.stream = &upstream->stream;
    }
    co_return fresh;
  };
  if (from_pool) {
    kept.idle_since = upstream->idle_since;
    kept.redial = redial;
  }
  if (pool != nullptr) {
    kept.pool = pool;
    kept.hand_over = [&](std::optional<steady::time_point> idle_since) {
      upstream->idle_since = idle_since.value_or(upstream->idle_since);
      pool->put(conn.client_ip, conn.origin_host, conn.dest.port, name, std::move(upstream));
      upstream.reset();
      from_pool = false;
    };
    kept.take_back = [&]() -> awaitable<taken_back<tls_stream>> {
      taken_back<tls_stream> back;
      upstream = pool->take(conn.client_ip, conn.origin_host, conn.dest.port, name);
      from_pool = upstream != nullptr;
      if (upstream) {
        conn.dest.ip = upstream->remote.address().to_string();
        back.kept = true;
        back.idle_since = upstream->idle_since;
      } else {
        back.failure = co_await connect_origin(sv, conn, origin, name, upstream);
      }
      if (upstream) {
        back.stream = &upstream->stream;
      }
      co_return back;
    };
  }
  auto end = co_await serve_tunnel_http(sv, conn, phone, cbuf, upstream ? &upstream->stream : nullptr, failure,
                                        pool != nullptr, kept);
  if (from_pool && end.served == 0 && end.last == head_read::origin_closed) {
    // The kept connection was closed by its origin before the phone used it: the phone never
    // knew of it, so a fresh one serves the tunnel instead of the phone's being closed.
    from_pool = false;
    upstream.reset();
    failure = co_await connect_origin(sv, conn, origin, name, upstream);
    kept.redial = nullptr;
    end = co_await serve_tunnel_http(sv, conn, phone, cbuf, upstream ? &upstream->stream : nullptr, failure,
                                     pool != nullptr, kept);
  }
  const auto unused_for = steady::now() - handshake_done;
  const bool pinned = end.served == 0 && end.last == head_read::closed && unused_for <= pinning_hang_up_window;
  if (upstream != nullptr && pool != nullptr && end.origin_idle && !pinned) {
    upstream->idle_since = end.last_exchange_end.value_or(upstream->idle_since);
    pool->put(conn.client_ip, conn.origin_host, conn.dest.port, name, std::move(upstream));
  }
  if (end.served == 0) {
    if (end.last == head_read::idle) {
      record_connection_error(sv, conn, started,
                              {"client_idle_timeout",
                               "the client sent no request within limits.timeouts.idle of the handshake (a connection "
                               "opened ahead of need, not taken for pinning)"});
      co_return;
    }
    if (end.last == head_read::timeout) {
      co_return;  // recorded as client_header_timeout
    }
    if (end.last == head_read::origin_closed) {
      record_connection_error(sv, conn, started,
                              {"upstream_closed",
                               "the server closed its connection before the client's first request; the client's was "
                               "closed in turn"});
      beast::get_lowest_layer(phone).expires_after(std::chrono::seconds(1));
      co_await phone.async_shutdown(use_ec(ec));
      co_return;
    }
    if (pinned) {
      sv.rejected.add(name);
      record_connection_error(sv, conn, started,
                              {"tls_client_rejected",
                               "the client completed the handshake and closed without sending a request (pinning suspected)"});
    } else {
      const auto seconds = std::chrono::duration_cast<std::chrono::milliseconds>(unused_for).count() / 1000.0;
      char detail[160];
      std::snprintf(detail, sizeof detail,
                    "the client closed %.1f s after the handshake without sending a request (a connection opened "
                    "ahead of need, not taken for pinning)",
                    seconds);
      record_connection_error(sv, conn, started, {"client_closed", detail});
    }
    co_return;
  }
  // Best-effort close_notify; the phone may already be gone.
  beast::get_lowest_layer(phone).expires_after(std::chrono::seconds(1));
  co_await phone.async_shutdown(use_ec(ec));
}

bool client_allowed(const services& sv, const tcp::endpoint& remote) {
  const auto address = unmapped(remote.address());
  std::vector<std::uint8_t> bytes;
  if (address.is_v4()) {
    const auto b = address.to_v4().to_bytes();
    bytes.assign(b.begin(), b.end());
  } else {
    const auto b = address.to_v6().to_bytes();
    bytes.assign(b.begin(), b.end());
  }
  return std::any_of(sv.cfg.clients.allow.begin(), sv.cfg.clients.allow.end(),
                     [&](const config::cidr& c) { return c.contains(bytes); });
}

}  // namespace

void rejected_hosts::add(const std::string& host) {
  std::lock_guard lock(mutex_);
  hosts_.insert(host);
}

bool rejected_hosts::contains(const std::string& host) const {
  std::lock_guard lock(mutex_);
  return hosts_.count(host) != 0;
}

// The address the phone dialled before netfilter redirected the connection here (REDIRECT or
// DNAT in the nat table; Linux SO_ORIGINAL_DST, IPv4 and IPv6). nullopt for a connection made
// to the proxy itself, which is then served as an explicit-proxy request (the CA page).
std::optional<tcp::endpoint> original_destination(tcp::socket& socket) {
  error_code ec;
  const auto local = socket.local_endpoint(ec);
  if (ec) {
    return std::nullopt;
  }
  tcp::endpoint original;
  if (local.address().is_v4() || local.address().to_v6().is_v4_mapped()) {
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    if (::getsockopt(socket.native_handle(), SOL_IP, SO_ORIGINAL_DST, &addr, &len) != 0 || addr.sin_family != AF_INET) {
      return std::nullopt;
    }
    original = tcp::endpoint(net::ip::address_v4(ntohl(addr.sin_addr.s_addr)), ntohs(addr.sin_port));
  } else {
    sockaddr_in6 addr{};
    socklen_t len = sizeof addr;
    if (::getsockopt(socket.native_handle(), SOL_IPV6, IP6T_SO_ORIGINAL_DST, &addr, &len) != 0 ||
        addr.sin6_family != AF_INET6) {
      return std::nullopt;
    }
    net::ip::address_v6::bytes_type bytes;
    std::memcpy(bytes.data(), &addr.sin6_addr, bytes.size());
    original = tcp::endpoint(net::ip::address_v6(bytes, addr.sin6_scope_id), ntohs(addr.sin6_port));
  }
  if (original.address() == unmapped(local.address()) && original.port() == local.port()) {
    return std::nullopt;
  }
  return original;
}

// A connection redirected to the proxy by netfilter: no CONNECT says where it was going, so the
// original destination gives the address and port, the first bytes the protocol, and the SNI or
// Host header the name.
awaitable<void> serve_transparent(services& sv, connection& conn, beast::tcp_stream client, tcp::endpoint original) {
  const auto started = steady::now();
  const auto ip = original.address().to_string();
  conn.transparent = true;
  conn.dest = {ip, ip, original.port(), "tcp"};
  conn.origin_host = ip;
  std::string cbuf;
  first_bytes first;
  while (true) {
    // Protocols where the server speaks first (SMTP, some push services) send nothing: after
    // first_bytes_wait they are relayed as raw TCP.
    const auto ec = co_await read_more(client, cbuf, remaining(started, first_bytes_wait));
    first = classify_first_bytes(cbuf, original.port());
    if (ec == beast::error::timeout && first.kind == first_bytes_kind::need_more) {
      first = {first_bytes_kind::other, cbuf.empty() ? "server-first" : "unknown"};
    } else if (ec) {
      if (!cbuf.empty()) {
        record_connection_error(sv, conn, started, {"client_closed", "the client closed after " +
                                                                         std::to_string(cbuf.size()) + " bytes"});
      }
      co_return;
    }
    if (first.kind != first_bytes_kind::need_more) {
      break;
    }
  }
  auto dialled = co_await dial(sv, ip, original.port());
  if (dialled.failure) {
    record_connection_error(sv, conn, started, dialled.failure->error);
    co_return;
  }
  if (first.kind == first_bytes_kind::other) {
    co_await relay_raw_tcp(sv, conn, client, cbuf, *dialled.stream, started, first.protocol);
    co_return;
  }
  conn.dest.scheme = first.kind == first_bytes_kind::tls ? "https" : "http";
  co_await serve_tunnel(sv, conn, std::move(client), std::move(cbuf), std::move(dialled.stream));
}

awaitable<void> serve_client(services& sv, tcp::socket socket) {
  const auto started = steady::now();
  error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  if (ec) {
    co_return;
  }
  connection conn;
  conn.phone = remote;
  conn.client = endpoint_text(remote);
  conn.client_ip = unmapped(remote.address()).to_string();
  if (!client_allowed(sv, remote)) {
    std::cerr << "leakscope: refused " << conn.client << ": not in clients.allow\n";
    record_connection_error(sv, conn, started, {"client_not_allowed", conn.client + " is not in clients.allow"});
    socket.close(ec);
    co_return;
  }
  socket.set_option(tcp::no_delay(true), ec);
  if (sv.cfg.listen.mode == config::listen_mode::transparent) {
    if (const auto original = original_destination(socket)) {
      beast::tcp_stream redirected(std::move(socket));
      const tcp::endpoint where = *original;
      co_await serve_transparent(sv, conn, std::move(redirected), where);
      co_return;
    }
  }
  beast::tcp_stream client(std::move(socket));

  http1::codec_limits limits{sv.cfg.limits.max_header_bytes, sv.cfg.limits.max_headers};
  http1::parser req(http1::message_kind::request, limits);
  req.set_body_cap(sv.cfg.capture.max_inspect_body);
  std::string cbuf;
  const origin_watch no_origin;  // none dialled yet
  if (co_await next_request(sv, conn, client, cbuf, req, no_origin) != head_read::ok) {
    co_return;
  }
  if (req.head().method == "CONNECT") {
    const auto authority = parse_authority(req.head().target, 0);
    if (!authority || authority->second == 0) {
      const captures::typed_error error{"client_bad_request", "CONNECT needs host:port (got \"" + req.head().target + "\")"};
      co_await refuse_request(sv, conn, client, req, 400, error, req.head().target);
      co_return;
    }
    conn.dest = {authority->first, "", authority->second, "https"};
    conn.origin_host = authority->first;
    // The origin is dialled before the tunnel is granted, so a refused destination (policy,
    // DNS, connection) is answered on the CONNECT itself with its typed reason; unless an idle
    // connection to it, dialled under the same policy, is in the pool.
    std::optional<beast::tcp_stream> origin;
    const auto* pool = pool_of(sv, client.get_executor());
    if (const auto idle = pool != nullptr ? pool->peek(conn.client_ip, authority->first, authority->second) : std::nullopt) {
      conn.dest.ip = idle->address().to_string();
    } else {
      auto dialled = co_await dial(sv, authority->first, authority->second);
      if (dialled.failure) {
        co_await refuse_request(sv, conn, client, req, dialled.failure->status, dialled.failure->error,
                                req.head().target);
        co_return;
      }
      conn.dest.ip = dialled.remote.address().to_string();
      origin.emplace(std::move(*dialled.stream));
    }
    static const std::string established = "HTTP/1.1 200 Connection established\r\n\r\n";
    if (co_await write_all(client, established, sv.cfg.limits.timeouts.idle)) {
      co_return;
    }
    // Whatever followed the CONNECT head in the same read is the start of the tunnel.
    co_await serve_tunnel(sv, conn, std::move(client), std::move(cbuf), std::move(origin));
    co_return;
  }
  co_await serve_plain_http(sv, conn, client, cbuf, req);
}

}  // namespace leakscope::proxy
