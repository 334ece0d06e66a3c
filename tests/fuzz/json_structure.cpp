// The JSON tree and the push parser alone agree on what is JSON, and every structure parser
// survives any bytes within its bounds.
#include "detectors/json_parser.hpp"
#include "detectors/structure.hpp"
#include "fuzz.hpp"

using namespace leakscope::detectors;

namespace {

struct counter {
  std::size_t scalars = 0;
  bool on_begin(node::type, std::size_t) { return true; }
  bool on_end(std::size_t) { return true; }
  bool on_key(std::string_view) { return true; }
  bool on_scalar(node::type, std::string_view, std::size_t, std::size_t) {
    ++scalars;
    return true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto tree = parse_json(text);
  counter c;
  FUZZ_CHECK(tree.has_value() == json_parser(text).document(c));
  parse_form(text);
  parse_multipart(text, "xyz");
  parse_protobuf(text);
  parse_xml(text);
  return 0;
}
