// The JSON parser and the tree-less visit agree on what is JSON, and every structure parser
// survives any bytes within its bounds.
#include "detectors/structure.hpp"
#include "fuzz.hpp"

using namespace leakscope::detectors;

namespace {

struct counter final : json_visitor {
  std::size_t scalars = 0;
  bool open(bool) override { return true; }
  bool close() override { return true; }
  bool key(std::string_view) override { return true; }
  bool scalar(node::type, std::string_view, std::size_t, std::size_t) override {
    ++scalars;
    return true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto tree = parse_json(text);
  counter c;
  const auto visit = visit_json(text, c);
  FUZZ_CHECK(tree.has_value() == (visit == json_visit::complete));
  parse_form(text);
  parse_multipart(text, "xyz");
  parse_protobuf(text);
  parse_xml(text);
  return 0;
}
