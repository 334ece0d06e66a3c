#pragma once
// The detector engine: a pure `inspect(request) -> findings`, built once from the device
// profile. A request is decoded (Content-Encoding, then its structure, then values inside
// values), every piece is matched against the profile's known values in one pass and checked
// by the pattern detectors, and each finding says where it was and how it was wrapped.

#include "config/config.hpp"
#include "detectors/known.hpp"
#include "detectors/request.hpp"

#include <string>
#include <vector>

namespace leakscope::detectors {

struct engine_limits {
  std::size_t max_decoded_body = 64u << 20;  // per message and per nested value
  // JSON and form bodies are walked without building their tree where that gives the same
  // findings; off only where tests hold those walks against the tree walk.
  bool walk_without_tree = true;
};

class engine {
 public:
  engine(const config::device_profile& profile, engine_limits limits);

  inspect_result inspect(const http_request& request) const;

  // Profile values in a stream that is neither HTTP nor TLS (raw TCP a push SDK keeps open):
  // known values only, since patterns without structure or keys would mostly be noise.
  // Findings are placed at `where`. A caller scanning a stream in pieces keeps the last
  // longest_known_form() - 1 bytes of one piece in front of the next.
  inspect_result inspect_bytes(std::string_view bytes, const std::string& where) const;
  std::size_t longest_known_form() const { return known_.longest_form(); }

  // How many literal forms the profile expanded to (for the start-up banner).
  std::size_t known_form_count() const { return known_.forms().size(); }

 private:
  struct scan;
  known_matcher known_;
  engine_limits limits_;
};

}  // namespace leakscope::detectors
