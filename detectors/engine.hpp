#pragma once
// The detector engine: a pure `inspect(request) -> findings`, built once from the device
// profile. Known profile values are matched in one pass per buffer with an RE2::Set of
// literals; patterns (values not in the profile) are validated (IMEI: Luhn).

#include "config/config.hpp"
#include "detectors/request.hpp"

#include <re2/set.h>

#include <memory>
#include <string>
#include <vector>

namespace leakscope::detectors {

struct engine_limits {
  std::size_t max_decoded_body = 64u << 20;
};

class engine {
 public:
  engine(const config::device_profile& profile, engine_limits limits);

  inspect_result inspect(const http_request& request) const;

  // How many literal forms the profile expanded to (for the start-up banner and tests).
  std::size_t known_form_count() const { return forms_.size(); }

 private:
  struct known_form {
    std::string category;
    std::string value;  // the profile value this form stands for
  };

  void scan(std::string_view text, const std::string& where, const std::vector<std::string>& encoding,
            inspect_result& out) const;
  void scan_body(const http_request& request, inspect_result& out) const;

  engine_limits limits_;
  std::vector<known_form> forms_;    // parallel to literal_: what each Set entry stands for
  std::vector<std::string> literal_;
  std::unique_ptr<re2::RE2::Set> known_;
  std::unique_ptr<re2::RE2> imei_pattern_;
};

// ISO/IEC 7812 Luhn check over a string of digits.
bool luhn_valid(std::string_view digits);

}  // namespace leakscope::detectors
