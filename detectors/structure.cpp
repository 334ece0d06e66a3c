#include "detectors/structure.hpp"

#include "detectors/decode.hpp"
#include "detectors/json_parser.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <iterator>


namespace leakscope::detectors {

std::string normalize_key(std::string_view key) {
  // ASCII only and without the C locale calls: this runs for every key of every request.
  std::string out;
  out.reserve(key.size());
  for (const char c : key) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      out += c;
    } else if (c >= 'A' && c <= 'Z') {
      out += static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

void normalize_keys(node& root) {
  // Iterative: trees are bounded in depth, but a stack of pointers costs nothing.
  std::vector<node*> todo = {&root};
  while (!todo.empty()) {
    node* n = todo.back();
    todo.pop_back();
    n->norm = normalize_key(n->key);
    for (auto& c : n->children) {
      todo.push_back(&c);
    }
  }
}

const char* format_name(body_format f) {
  switch (f) {
    case body_format::json:
      return "json";
    case body_format::form:
      return "form";
    case body_format::multipart:
      return "multipart";
    case body_format::protobuf:
      return "protobuf";
    case body_format::xml:
      return "xml";
    case body_format::text:
      return "text";
  }
  return "text";
}

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// Builds the tree. The children of each open container gather in a stack per depth and move
// into the container once, sized, when it closes: no vector grows node by node, and the open
// containers (each the last node of the level above) never move while they are open.
struct tree_builder {
  node root;
  std::vector<node*> open;
  std::vector<std::vector<node>> levels;  // levels[d]: children of open[d] so far
  std::string key, norm;                  // the member being read; norm is normalize_key(key)

  node& place() {
    if (open.empty()) {
      return root;
    }
    auto& level = levels[open.size() - 1];
    node& child = level.emplace_back();
    if (open.back()->kind == node::type::object) {
      child.key = key;
      child.norm = norm;
    }
    return child;
  }
  bool on_begin(node::type kind, std::size_t at) {
    node& n = place();
    n.kind = kind;
    n.begin = at;
    open.push_back(&n);
    if (levels.size() < open.size()) {
      levels.emplace_back();
    }
    return true;
  }
  bool on_end(std::size_t at) {
    node& n = *open.back();
    auto& level = levels[open.size() - 1];
    n.children.assign(std::make_move_iterator(level.begin()), std::make_move_iterator(level.end()));
    level.clear();
    n.end = at;
    open.pop_back();
    return true;
  }
  bool on_key(std::string_view k) {
    key.assign(k);
    norm = normalize_key(k);
    return true;
  }
  bool on_scalar(node::type kind, std::string_view text, std::size_t begin, std::size_t end) {
    node& n = place();
    n.kind = kind;
    n.text.assign(text);
    n.begin = begin;
    n.end = end;
    return true;
  }
};

}  // namespace

// Keys come out normalised (node::norm).
std::optional<node> parse_json(std::string_view text) {
  tree_builder b;
  if (!json_parser(text).document(b)) {
    return std::nullopt;
  }
  return std::move(b.root);
}

node parse_form(std::string_view text) {
  node root;
  root.kind = node::type::object;
  root.end = text.size();
  std::size_t at = 0;  // of `text` in the whole
  while (!text.empty() && root.children.size() < max_structure_nodes) {
    const auto amp = text.find('&');
    const auto pair = text.substr(0, amp);
    if (!pair.empty()) {
      const auto eq = pair.find('=');
      node n;
      n.kind = node::type::string;
      n.key = percent_decode(pair.substr(0, eq), true);
      n.text = eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1), true);
      n.begin = at;
      n.end = at + pair.size();
      root.children.push_back(std::move(n));
    }
    text = amp == std::string_view::npos ? std::string_view() : text.substr(amp + 1);
    at += pair.size() + 1;
  }
  return root;
}

namespace {

// The value of `name=` in a header such as Content-Disposition, quoted or not.
std::string header_param(std::string_view header, std::string_view name) {
  const auto low = lower(header);
  std::size_t pos = 0;
  while ((pos = low.find(name, pos)) != std::string::npos) {
    const bool boundary = pos == 0 || low[pos - 1] == ';' || low[pos - 1] == ' ';
    std::size_t i = pos + name.size();
    while (i < low.size() && low[i] == ' ') {
      ++i;
    }
    if (!boundary || i >= low.size() || low[i] != '=') {
      pos += name.size();
      continue;
    }
    ++i;
    while (i < header.size() && header[i] == ' ') {
      ++i;
    }
    if (i < header.size() && header[i] == '"') {
      const auto end = header.find('"', i + 1);
      return std::string(header.substr(i + 1, end == std::string_view::npos ? std::string_view::npos : end - i - 1));
    }
    const auto end = header.find(';', i);
    std::string v(header.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i));
    v.erase(v.find_last_not_of(" \t") + 1);
    return v;
  }
  return {};
}

}  // namespace

std::optional<node> parse_multipart(std::string_view body, std::string_view boundary) {
  if (boundary.empty()) {
    return std::nullopt;
  }
  const std::string delimiter = "--" + std::string(boundary);
  auto pos = body.find(delimiter);
  if (pos == std::string_view::npos) {
    return std::nullopt;
  }
  node root;
  root.kind = node::type::object;
  while (root.children.size() < 10'000) {
    pos += delimiter.size();
    if (body.substr(pos, 2) == "--") {
      break;  // closing delimiter
    }
    const auto head_end = body.find("\r\n\r\n", pos);
    if (head_end == std::string_view::npos) {
      break;
    }
    const auto headers = body.substr(pos, head_end - pos);
    const auto next = body.find("\r\n" + delimiter, head_end + 4);
    const auto content = body.substr(head_end + 4, next == std::string_view::npos ? std::string_view::npos : next - head_end - 4);
    std::string disposition, type;
    std::size_t line_start = 0;
    while (line_start < headers.size()) {
      auto line_end = headers.find("\r\n", line_start);
      const auto line = headers.substr(line_start, line_end == std::string_view::npos ? std::string_view::npos : line_end - line_start);
      const auto colon = line.find(':');
      if (colon != std::string_view::npos) {
        const auto name = lower(line.substr(0, colon));
        if (name == "content-disposition") {
          disposition = std::string(line.substr(colon + 1));
        } else if (name == "content-type") {
          type = std::string(line.substr(colon + 1));
        }
      }
      if (line_end == std::string_view::npos) {
        break;
      }
      line_start = line_end + 2;
    }
    const auto name = header_param(disposition, "name");
    const auto filename = header_param(disposition, "filename");
    node part;
    part.key = name;
    const auto format = sniff_format(content, type);
    auto parsed = format == body_format::text ? std::nullopt : parse_body(content, format, type);
    if (parsed) {
      part = std::move(*parsed);
      part.key = name;
    } else {
      part.kind = node::type::string;
      part.text = std::string(content);
    }
    root.children.push_back(std::move(part));
    if (!filename.empty()) {
      node f;
      f.kind = node::type::string;
      f.key = name + ".filename";
      f.text = filename;
      root.children.push_back(std::move(f));
    }
    if (next == std::string_view::npos) {
      break;
    }
    pos = next + 2;
  }
  return root;
}

bool looks_textual(std::string_view bytes) {
  if (bytes.empty()) {
    return true;
  }
  const std::size_t allowed = bytes.size() / 20;  // at most 5 % stray bytes
  std::size_t bad = 0;
  for (std::size_t i = 0; i < bytes.size();) {
    if (bad > allowed) {
      return false;  // binary is told apart within the first few hundred bytes
    }
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c < 0x80) {
      if (c < 0x20 && c != '\n' && c != '\r' && c != '\t') {
        ++bad;
      }
      ++i;
      continue;
    }
    // A well-formed UTF-8 sequence counts as text (Chinese names, SMS bodies).
    const int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    bool ok = len > 0 && i + static_cast<std::size_t>(len) <= bytes.size();
    for (int k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(bytes[i + static_cast<std::size_t>(k)]) & 0xc0) == 0x80;
    }
    if (!ok) {
      ++bad;
      ++i;
    } else {
      i += static_cast<std::size_t>(len);
    }
  }
  return bad <= allowed;
}

namespace {

// Text never carries bytes below 0x20 other than tab and line breaks; message framing almost
// always does (tags and lengths), so such a payload is tried as a nested message first.
bool has_control_bytes(std::string_view bytes) {
  return std::any_of(bytes.begin(), bytes.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 && c != '\t' && c != '\n' && c != '\r';
  });
}

class protobuf_reader {
 public:
  std::size_t nodes = 0;

  // A message that consumes all of `bytes`, or nullopt.
  std::optional<node> message(std::string_view bytes, int depth) {
    if (depth > max_structure_depth) {
      return std::nullopt;
    }
    node msg;
    msg.kind = node::type::object;
    std::size_t pos = 0;
    while (pos < bytes.size()) {
      if (++nodes > max_structure_nodes) {
        return std::nullopt;
      }
      const auto key = varint(bytes, pos);
      if (!key || (*key >> 3) == 0 || (*key >> 3) > (1u << 29)) {
        return std::nullopt;
      }
      node field;
      field.key = std::to_string(*key >> 3);
      switch (*key & 7) {
        case 0: {
          const auto v = varint(bytes, pos);
          if (!v) {
            return std::nullopt;
          }
          field.kind = node::type::number;
          field.text = std::to_string(*v);
          break;
        }
        case 1: {
          if (bytes.size() - pos < 8) {
            return std::nullopt;
          }
          double d;
          std::memcpy(&d, bytes.data() + pos, 8);
          pos += 8;
          field.kind = std::isfinite(d) ? node::type::number : node::type::other;
          field.text = std::isfinite(d) ? number_text(d) : "";
          break;
        }
        case 5: {
          if (bytes.size() - pos < 4) {
            return std::nullopt;
          }
          float f;
          std::memcpy(&f, bytes.data() + pos, 4);
          pos += 4;
          field.kind = std::isfinite(f) ? node::type::number : node::type::other;
          field.text = std::isfinite(f) ? number_text(f) : "";
          break;
        }
        case 2: {
          const auto len = varint(bytes, pos);
          if (!len || *len > bytes.size() - pos) {
            return std::nullopt;
          }
          const auto payload = bytes.substr(pos, *len);
          pos += *len;
          // Printable payloads are strings; others are tried as nested messages, then kept
          // as raw bytes (a literal value can still sit inside).
          std::optional<node> sub;
          if (has_control_bytes(payload)) {
            sub = message(payload, depth + 1);
          }
          if (sub && !sub->children.empty()) {
            sub->key = field.key;
            field = std::move(*sub);
          } else {
            field.kind = node::type::string;
            field.text = std::string(payload);
          }
          break;
        }
        default:
          return std::nullopt;  // groups (3, 4) are deprecated; 6, 7 are invalid
      }
      msg.children.push_back(std::move(field));
    }
    return msg;
  }

 private:
  static std::optional<std::uint64_t> varint(std::string_view b, std::size_t& pos) {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64 && pos < b.size(); shift += 7) {
      const auto byte = static_cast<std::uint8_t>(b[pos++]);
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        return v;
      }
    }
    return std::nullopt;
  }
  static std::string number_text(double d) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.7f", d);
    std::string s = buf;
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') {
      s.pop_back();
    }
    return s;
  }
};

}  // namespace

std::optional<node> parse_protobuf(std::string_view bytes) {
  protobuf_reader reader;
  auto msg = reader.message(bytes, 0);
  if (!msg || msg->children.empty()) {
    return std::nullopt;
  }
  return msg;
}

namespace {

// A tolerant XML reader: elements, attributes, text and CDATA; comments, declarations and
// processing instructions are skipped. Entities &lt; &gt; &amp; &quot; &apos; are decoded.
class xml_reader {
 public:
  explicit xml_reader(std::string_view s) : s_(s) {}

  std::optional<node> document() {
    skip_misc();
    auto root = element(0);
    return root;
  }

 private:
  void skip_misc() {
    while (true) {
      skip_space();
      if (s_.substr(pos_, 4) == "<!--") {
        skip_past("-->");
      } else if (s_.substr(pos_, 2) == "<?" || s_.substr(pos_, 2) == "<!") {
        skip_past(">");
      } else {
        return;
      }
    }
  }
  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) {
      ++pos_;
    }
  }
  void skip_past(std::string_view end) {
    const auto p = s_.find(end, pos_);
    pos_ = p == std::string_view::npos ? s_.size() : p + end.size();
  }
  std::string name() {
    const auto start = pos_;
    while (pos_ < s_.size() && !std::isspace(static_cast<unsigned char>(s_[pos_])) && s_[pos_] != '>' &&
           s_[pos_] != '/' && s_[pos_] != '=') {
      ++pos_;
    }
    return std::string(s_.substr(start, pos_ - start));
  }
  static std::string unescape(std::string_view t) {
    std::string out;
    for (std::size_t i = 0; i < t.size(); ++i) {
      if (t[i] == '&') {
        static const std::pair<const char*, char> entities[] = {
            {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
        bool done = false;
        for (const auto& [e, c] : entities) {
          if (t.substr(i, std::strlen(e)) == e) {
            out += c;
            i += std::strlen(e) - 1;
            done = true;
            break;
          }
        }
        if (done) {
          continue;
        }
      }
      out += t[i];
    }
    return out;
  }
  std::optional<node> element(int depth) {
    if (depth > max_structure_depth || ++nodes_ > max_structure_nodes || pos_ >= s_.size() || s_[pos_] != '<') {
      return std::nullopt;
    }
    ++pos_;
    node el;
    el.kind = node::type::object;
    el.key = name();
    if (el.key.empty()) {
      return std::nullopt;
    }
    while (true) {
      skip_space();
      if (pos_ >= s_.size()) {
        return std::nullopt;
      }
      if (s_.substr(pos_, 2) == "/>") {
        pos_ += 2;
        return el;
      }
      if (s_[pos_] == '>') {
        ++pos_;
        break;
      }
      node attr;
      attr.kind = node::type::string;
      attr.key = name();
      skip_space();
      if (attr.key.empty() || pos_ >= s_.size() || s_[pos_] != '=') {
        return std::nullopt;
      }
      ++pos_;
      skip_space();
      if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\'')) {
        return std::nullopt;
      }
      const char quote = s_[pos_++];
      const auto end = s_.find(quote, pos_);
      if (end == std::string_view::npos) {
        return std::nullopt;
      }
      attr.text = unescape(s_.substr(pos_, end - pos_));
      pos_ = end + 1;
      el.children.push_back(std::move(attr));
    }
    std::string text;
    while (pos_ < s_.size()) {
      if (s_.substr(pos_, 9) == "<![CDATA[") {
        const auto end = s_.find("]]>", pos_ + 9);
        text += s_.substr(pos_ + 9, end == std::string_view::npos ? std::string_view::npos : end - pos_ - 9);
        pos_ = end == std::string_view::npos ? s_.size() : end + 3;
      } else if (s_.substr(pos_, 4) == "<!--") {
        skip_past("-->");
      } else if (s_.substr(pos_, 2) == "</") {
        skip_past(">");
        break;
      } else if (s_[pos_] == '<') {
        auto child = element(depth + 1);
        if (!child) {
          return std::nullopt;
        }
        el.children.push_back(std::move(*child));
      } else {
        const auto lt = s_.find('<', pos_);
        text += unescape(s_.substr(pos_, lt == std::string_view::npos ? std::string_view::npos : lt - pos_));
        pos_ = lt == std::string_view::npos ? s_.size() : lt;
      }
    }
    text.erase(0, text.find_first_not_of(" \t\r\n"));
    text.erase(text.find_last_not_of(" \t\r\n") + 1);
    if (el.children.empty()) {
      el.kind = node::type::string;  // <imei>865…</imei> is a value named imei
      el.text = std::move(text);
    } else if (!text.empty()) {
      node t;
      t.kind = node::type::string;
      t.key = "#text";
      t.text = std::move(text);
      el.children.push_back(std::move(t));
    }
    return el;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  std::size_t nodes_ = 0;
};

}  // namespace

std::optional<node> parse_xml(std::string_view text) {
  xml_reader reader(text);
  return reader.document();
}

body_format sniff_format(std::string_view body, std::string_view content_type) {
  const auto type = lower(content_type);
  if (type.find("json") != std::string::npos) {
    return body_format::json;
  }
  if (type.find("x-www-form-urlencoded") != std::string::npos) {
    return body_format::form;
  }
  if (type.find("multipart/") != std::string::npos) {
    return body_format::multipart;
  }
  if (type.find("protobuf") != std::string::npos || type.find("grpc") != std::string::npos) {
    return body_format::protobuf;
  }
  if (type.find("xml") != std::string::npos) {
    return body_format::xml;
  }
  // Undeclared or generic types: SDKs label JSON as text/plain or octet-stream all the time.
  std::size_t i = 0;
  while (i < body.size() && std::isspace(static_cast<unsigned char>(body[i]))) {
    ++i;
  }
  if (i < body.size() && (body[i] == '{' || body[i] == '[')) {
    return body_format::json;
  }
  if (i < body.size() && body[i] == '<') {
    return body_format::xml;
  }
  if (!looks_textual(body)) {
    return body_format::protobuf;
  }
  const auto eq = body.find('=');
  if (eq != std::string_view::npos && eq > 0 && body.find_first_of(" \n\r\t") == std::string_view::npos) {
    return body_format::form;
  }
  return body_format::text;
}

namespace {

std::optional<node> parse_any(std::string_view body, body_format format, std::string_view content_type) {
  switch (format) {
    case body_format::json:
      return parse_json(body);
    case body_format::form:
      return parse_form(body);
    case body_format::multipart:
      return parse_multipart(body, header_param(content_type, "boundary"));
    case body_format::protobuf:
      return parse_protobuf(body);
    case body_format::xml:
      return parse_xml(body);
    case body_format::text:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

std::optional<node> parse_body(std::string_view body, body_format format, std::string_view content_type) {
  auto root = parse_any(body, format, content_type);
  if (root && format != body_format::json) {  // parse_json has done it
    normalize_keys(*root);
  }
  return root;
}

}  // namespace leakscope::detectors
