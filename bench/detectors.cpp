// Detector throughput per core: 1 MiB JSON, gzip JSON, form and binary bodies against a
// 50-value device profile. Prints MB/s of input (for gzip, of compressed input).
#include "app/allocator.hpp"
#include "detectors/decode.hpp"
#include "detectors/engine.hpp"
#include "detectors/json_parser.hpp"

#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

using namespace leakscope;
using clock_type = std::chrono::steady_clock;

namespace {

config::device_profile fifty_values() {
  config::device_profile p;
  for (int i = 0; i < 5; ++i) {
    p.imei.push_back("86543210123456" + std::to_string(i));
    p.imsi.push_back("46000123456789" + std::to_string(i));
    p.android_id.push_back("9774d56d682e549" + std::to_string(i));
    p.advertising_id.push_back("a1b2c3d4-0000-4a5b-9c8d-11223344556" + std::to_string(i));
    p.mac_address.push_back("02:1a:11:f0:5b:3" + std::to_string(i));
    p.email.push_back("user" + std::to_string(i) + "@example.cn");
    p.serial_number.push_back("R58M12ABCD" + std::to_string(i));
    p.contacts.push_back({"联系人" + std::to_string(i), "1390000111" + std::to_string(i)});
  }
  for (int i = 0; i < 10; ++i) {
    p.phone_number.push_back("138123456" + std::to_string(10 + i));
  }
  p.location = config::location_fix{39.9087, 116.3975, 2000};
  return p;
}

// SDK event batches: many small objects with the envelope fields analytics SDKs send; with
// `device`, each event also carries the phone's identifiers (the case that takes the full walk);
// with `nested`, an extension object sent as JSON in a string, as many SDKs do; with `paired`,
// a status message and a location object, keys the object detectors read together.
std::string json_body(std::size_t size, bool device = false, bool nested = false, bool paired = false) {
  std::mt19937 gen(7);
  auto rng = [&gen] { return static_cast<unsigned>(gen()); };
  std::string out = "{\"events\":[";
  while (out.size() < size) {
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  "{\"id\":\"%08x-%04x\",\"name\":\"page_view\",\"ts\":%u,\"dur\":%u,\"page\":\"/shop/item/%u\","
                  "\"props\":{\"price\":%u.%02u,\"sku\":\"SKU%u\",\"ref\":\"home_banner\"},\"net\":\"wifi\"},",
                  rng(), rng() & 0xffff, 1732300000u + rng() % 100000, rng() % 60000, rng() % 100000, rng() % 1000,
                  rng() % 100, rng() % 1000000);
    out += buf;
    if (device) {
      out.pop_back();
      out.pop_back();
      std::snprintf(buf, sizeof buf, ",\"dev\":{\"imei\":\"86543210123456%u\",\"mac\":\"02:1a:11:f0:5b:3%u\"}},",
                    rng() % 5, rng() % 5);
      out += buf;
    }
    if (nested) {
      out.pop_back();
      out.pop_back();
      std::snprintf(buf, sizeof buf, R"(,"ext":"{\"ab\":\"b%u\",\"ch\":\"store\"}"},)", rng() % 4);
      out += buf;
    }
    if (paired) {
      out.pop_back();
      out.pop_back();
      std::snprintf(buf, sizeof buf, R"(,"msg":"ok","loc":{"lat":31.%04u,"lng":121.%04u}},)", rng() % 10000,
                    rng() % 10000);
      out += buf;
    }
  }
  out += "{}]}";
  return out;
}

// bench/run's scanned-upload body: per event, two profile identifiers and a 200-byte value.
std::string upload_body(std::size_t size) {
  std::string out = "[";
  for (unsigned i = 0; out.size() < size; ++i) {
    out += R"({"event":"page_view","device":{"imei":"86543210123456)" + std::to_string(i % 5) +
           R"(","aid":"9774d56d682e549)" + std::to_string(i % 5) + R"("},"pad":")" + std::string(200, 'x') + "\"},";
  }
  out.back() = ']';
  return out;
}

std::string form_body(std::size_t size) {
  std::mt19937 gen(9);
  auto rng = [&gen] { return static_cast<unsigned>(gen()); };
  std::string out;
  while (out.size() < size) {
    out += "k" + std::to_string(rng() % 1000) + "=" + std::to_string(rng()) + "%2C" + std::to_string(rng() % 97) + "&";
  }
  return out;
}

std::string binary_body(std::size_t size) {
  std::mt19937 rng(11);
  std::string out(size, '\0');
  for (auto& c : out) {
    c = static_cast<char>(rng());
  }
  return out;
}

// A crash-report or photo upload: three form fields and a binary file part.
std::string multipart_body(std::size_t size) {
  std::string out;
  for (const char* field : {"appkey", "os", "ver"}) {
    out += std::string("--xyz\r\nContent-Disposition: form-data; name=\"") + field + "\"\r\n\r\nvalue\r\n";
  }
  out += "--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"dump.bin\"\r\n"
         "Content-Type: application/octet-stream\r\n\r\n";
  out += binary_body(size - out.size() - 12);
  out += "\r\n--xyz--\r\n";
  return out;
}

std::string gzip(const std::string& text) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, text.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string only_body;

void measure(const detectors::engine& engine, const char* name, const std::string& body, const char* type,
             const char* encoding, double seconds) {
  if (!only_body.empty() && only_body != name) {
    return;
  }
  detectors::http_request r;
  r.method = "POST";
  r.scheme = "https";
  r.host = "bench.example";
  r.target = "/collect";
  r.headers = {{"Content-Type", type}};
  if (encoding != nullptr) {
    r.headers.push_back({"Content-Encoding", encoding});
  }
  r.body = body;
  std::size_t runs = 0;
  std::size_t findings = 0;
  const auto start = clock_type::now();
  while (std::chrono::duration<double>(clock_type::now() - start).count() < seconds || runs < 3) {
    findings += engine.inspect(r).findings.size();
    ++runs;
  }
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  std::printf("| %-12s | %8.2f MiB | %9.1f MB/s | %6zu runs | %zu findings |\n", name, body.size() / 1048576.0,
              static_cast<double>(body.size()) * static_cast<double>(runs) / elapsed / 1e6, runs, findings / runs);
}

// The floors under the JSON figures, with no detection at all: the grammar reading the text
// with a handler that does nothing, and gzip's inflate alone. Detection's own share of a JSON
// figure is the rest.
struct count_tokens {
  std::size_t tokens = 0;
  bool on_begin(detectors::node::type, std::size_t) { return ++tokens != 0; }
  bool on_end(std::size_t) { return true; }
  bool on_key(std::string_view) { return ++tokens != 0; }
  bool on_scalar(detectors::node::type, std::string_view, std::size_t, std::size_t) { return ++tokens != 0; }
};

template <class Step>
void measure_floor(const char* name, std::size_t input_size, double seconds, Step&& step) {
  if (!only_body.empty() && only_body != name) {
    return;
  }
  std::size_t runs = 0;
  std::size_t sink = 0;
  const auto start = clock_type::now();
  while (std::chrono::duration<double>(clock_type::now() - start).count() < seconds || runs < 3) {
    sink += step();
    ++runs;
  }
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  std::printf("| %-12s | %8.2f MiB | %9.1f MB/s | %6zu runs | %zu %s |\n", name, input_size / 1048576.0,
              static_cast<double>(input_size) * static_cast<double>(runs) / elapsed / 1e6, runs, sink / runs,
              std::string_view(name) == "inflate only" ? "bytes out" : "tokens");
}

}  // namespace

int main(int argc, char** argv) {
  leakscope::app::keep_freed_memory();  // as `leakscope run` and `leakscope scan` do
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const std::string only = argc > 2 ? argv[2] : "";  // e.g. "JSON", for profiling one body
  only_body = only;
  const auto profile = fifty_values();
  const detectors::engine engine(profile, {});
  std::printf("Detector throughput on one core, %zu literal forms from a 50-value profile\n\n",
              engine.known_form_count());
  std::printf("| body         | size         | input rate     | runs        | per request |\n");
  std::printf("|---|---|---|---|---|\n");
  const auto json = json_body(1 << 20);
  measure(engine, "JSON", json, "application/json", nullptr, seconds);
  measure(engine, "gzip JSON", gzip(json), "application/json", "gzip", seconds);
  measure(engine, "JSON+ids", json_body(1 << 20, true), "application/json", nullptr, seconds);
  measure(engine, "JSON+nested", json_body(1 << 20, false, true), "application/json", nullptr, seconds);
  measure(engine, "JSON+paired", json_body(1 << 20, false, false, true), "application/json", nullptr, seconds);
  measure(engine, "upload", upload_body(1 << 20), "application/json", nullptr, seconds);
  measure(engine, "form", form_body(1 << 20), "application/x-www-form-urlencoded", nullptr, seconds);
  measure(engine, "binary", binary_body(1 << 20), "application/octet-stream", nullptr, seconds);
  measure(engine, "multipart", multipart_body(1 << 20), "multipart/form-data; boundary=xyz", nullptr, seconds);
  std::printf("\nFloors under the JSON rows, without detection:\n\n");
  std::printf("| step         | size         | input rate     | runs        | per request |\n");
  std::printf("|---|---|---|---|---|\n");
  measure_floor("grammar only", json.size(), seconds, [&json] {
    count_tokens h;
    return detectors::json_parser(json).document(h) ? h.tokens : 0;
  });
  const auto compressed = gzip(json);
  measure_floor("inflate only", compressed.size(), seconds, [&compressed] {
    auto out = detectors::inflate_capped(compressed, std::size_t{64} << 20);
    const std::size_t size = out.data.size();
    detectors::recycle(std::move(out.data));
    return size;
  });
  return 0;
}
