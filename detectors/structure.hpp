#pragma once
// Request bodies parsed into one small tree, whatever their format, so every detector walks
// the same shape. Parsers are bounded (depth, node count) and never throw.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace leakscope::detectors {

struct node {
  enum class type { object, array, string, number, other };
  type kind = type::other;
  std::string key;   // member name in an object, field number in protobuf, tag in XML
  std::string norm;  // `key` through normalize_key(), set once by parse_body()
  std::string text;  // scalars: the value as text (numbers keep their source spelling)
  std::vector<node> children;
  // Where the node's source spelling lies in the text given to parse_json() or parse_form(),
  // [begin, end), quotes and brackets included; end == 0 from the other parsers. Inside a
  // multipart part the range is the part's own. The engine uses them, for JSON and form
  // bodies, to look for known values only in the leaves the buffer-wide match placed them in.
  std::size_t begin = 0, end = 0;
};

enum class body_format { json, form, multipart, protobuf, xml, text };
const char* format_name(body_format f);

constexpr int max_structure_depth = 32;
constexpr std::size_t max_structure_nodes = 200'000;

// Keys come out normalised (node::norm), as from parse_body().
std::optional<node> parse_json(std::string_view text);

node parse_form(std::string_view text);
std::optional<node> parse_multipart(std::string_view body, std::string_view boundary);
std::optional<node> parse_protobuf(std::string_view bytes);
std::optional<node> parse_xml(std::string_view text);

// The format of a body from its Content-Type, else from its first bytes.
body_format sniff_format(std::string_view body, std::string_view content_type);
// Parses `body` as `format`; nullopt when it does not parse (then it is scanned as text).
std::optional<node> parse_body(std::string_view body, body_format format, std::string_view content_type);

// "imei", "IMEI", "device_imei", "X-Device-Imei" -> "deviceimei": lower-case ASCII letters and
// digits, the form every key-context rule compares against.
std::string normalize_key(std::string_view key);
// Sets `norm` on every node of a tree.
void normalize_keys(node& root);

// Mostly printable UTF-8 (as opposed to binary): decides whether decoded bytes are text.
bool looks_textual(std::string_view bytes);

}  // namespace leakscope::detectors
