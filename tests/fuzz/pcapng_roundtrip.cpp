// The pcapng writer and its reader: packets written from arbitrary payloads read back as the
// same blocks; arbitrary bytes read back as whole blocks only, never past the end.
#include "captures/pcapng.hpp"
#include "fuzz.hpp"

using namespace leakscope::captures;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fuzz::input in(data, size);
  std::size_t valid = 0;
  const auto blocks = pcapng::read_blocks(in.rest, &valid);
  FUZZ_CHECK(valid <= in.rest.size());
  std::size_t total = 0;
  for (const auto& b : blocks) {
    total += b.body.size() + 12;
  }
  FUZZ_CHECK(total <= valid);

  pcapng::tcp_connection conn(*pcapng::make_endpoint(in.choice & 1 ? "2001:db8::1" : "10.0.0.1", 40000),
                              *pcapng::make_endpoint(in.choice & 1 ? "2001:db8::2" : "10.0.0.2", 443));
  std::string file = pcapng::section_header("fuzz") + pcapng::interface_description(1, "fuzz");
  std::size_t packets = 0;
  for (const auto& frame : conn.send(in.choice & 2, in.rest, 1 + in.choice * 5)) {
    file += pcapng::enhanced_packet(0, 1, frame, in.choice & 4 ? std::string(in.rest.substr(0, 16)) : std::string());
    ++packets;
  }
  std::size_t read_valid = 0;
  const auto back = pcapng::read_blocks(file, &read_valid);
  FUZZ_CHECK(read_valid == file.size());
  FUZZ_CHECK(back.size() == 2 + packets);
  return 0;
}
