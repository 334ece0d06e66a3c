#include "detectors/structure.hpp"

#include <doctest/doctest.h>

using namespace leakscope::detectors;

TEST_CASE("JSON keeps keys, nesting and the spelling of numbers") {
  const auto n = parse_json(R"({"device":{"imei":"865432101234564","lat":39.908700},"list":[1,"a"]})");
  REQUIRE(n);
  CHECK(n->kind == node::type::object);
  CHECK(n->children.at(0).key == "device");
  CHECK(n->children.at(0).children.at(1).text == "39.908700");
  CHECK(n->children.at(1).kind == node::type::array);
  CHECK_FALSE(parse_json("{\"a\":").has_value());
  CHECK_FALSE(parse_json(std::string(1000, '[') + std::string(1000, ']')).has_value());  // over the depth bound
}

TEST_CASE("form and multipart") {
  const auto f = parse_form("imei=8654&name=%E5%BC%A0+%E4%B8%89&flag");
  REQUIRE(f.children.size() == 3);
  CHECK(f.children[1].text == "张 三");
  CHECK(f.children[2].key == "flag");

  const std::string body =
      "--XyZ\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n"
      "{\"imsi\":\"460001234567890\"}\r\n"
      "--XyZ\r\nContent-Disposition: form-data; name=\"log\"; filename=\"13812345678.txt\"\r\n\r\nplain\r\n--XyZ--\r\n";
  const auto m = parse_multipart(body, "XyZ");
  REQUIRE(m);
  REQUIRE(m->children.size() == 3);
  CHECK(m->children[0].key == "meta");
  CHECK(m->children[0].kind == node::type::object);
  CHECK(m->children[1].text == "plain");
  CHECK(m->children[2].key == "log.filename");
  CHECK(m->children[2].text == "13812345678.txt");
}

TEST_CASE("protobuf without a schema: varints, strings, nested messages") {
  // field 1 varint 150; field 2 string "13812345678"; field 3 message { field 1 string "hi" }
  const std::string msg = std::string("\x08\x96\x01", 3) + "\x12\x0b" "13812345678" + std::string("\x1a\x04\x0a\x02hi", 6);
  const auto n = parse_protobuf(msg);
  REQUIRE(n);
  REQUIRE(n->children.size() == 3);
  CHECK(n->children[0].text == "150");
  CHECK(n->children[1].text == "13812345678");
  CHECK(n->children[2].kind == node::type::object);
  CHECK(n->children[2].children.at(0).text == "hi");
  CHECK_FALSE(parse_protobuf("\x0f\x01").has_value());  // wire type 7
  CHECK_FALSE(parse_protobuf("\x12\x7f" "short").has_value());  // length past the end
}

TEST_CASE("XML: elements, attributes, entities, CDATA") {
  const auto n = parse_xml(R"(<?xml version="1.0"?><req v="2"><imei>865432101234564</imei><note><![CDATA[a<b]]></note><t>x &amp; y</t></req>)");
  REQUIRE(n);
  CHECK(n->key == "req");
  CHECK(n->children.at(0).key == "v");
  CHECK(n->children.at(1).text == "865432101234564");
  CHECK(n->children.at(2).text == "a<b");
  CHECK(n->children.at(3).text == "x & y");
}

TEST_CASE("format sniffing") {
  CHECK(sniff_format("{}", "text/plain") == body_format::json);  // SDKs mislabel JSON
  CHECK(sniff_format("{\"a\":1}", "") == body_format::json);
  CHECK(sniff_format("a=1&b=2", "") == body_format::form);
  CHECK(sniff_format("<a/>", "") == body_format::xml);
  CHECK(sniff_format(std::string("\x08\x96\x01", 3), "application/octet-stream") == body_format::protobuf);
  CHECK(sniff_format("hello there", "") == body_format::text);
}
