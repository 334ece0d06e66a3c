#pragma once
// Known values: the test phone's real identifiers from the device profile, expanded into every
// form SDKs send them in and matched in one pass per buffer (detectors/literals.hpp).

#include "config/config.hpp"

#include "detectors/literals.hpp"

#include <optional>
#include <string>
#include <vector>

namespace leakscope::detectors {

// Internal kinds beside the DESIGN.md categories: parts that only count together.
inline constexpr const char* kind_contact = "contact";    // one profile contact (name or phone)
inline constexpr const char* kind_sms_tag = "sms_tag";    // 【sender】 of a profile SMS
inline constexpr const char* kind_sms_code = "sms_code";  // the code inside a profile SMS

struct known_form {
  std::string kind;                   // a category, or one of the kinds above
  std::size_t value = 0;              // index into known_matcher::values()
  std::vector<std::string> encoding;  // how this form encodes the value, outermost first
  std::string text;                   // the literal searched for
};

struct known_hits {
  std::vector<const known_form*> forms;  // in the order of known_matcher::forms()
  // With match(…, true): where each occurrence lies, [begin, end), ordered by begin.
  std::vector<std::pair<std::size_t, std::size_t>> spans;
};

class known_matcher {
 public:
  explicit known_matcher(const config::device_profile& profile);

  known_hits match(std::string_view buffer, bool locate = false) const;

  const std::vector<known_form>& forms() const { return forms_; }
  std::size_t longest_form() const { return longest_; }
  // The profile value a form stands for (for contacts: the contact's name, or phone).
  const std::string& value(std::size_t i) const { return values_[i]; }
  // Index of the SMS a sms_tag / sms_code value belongs to.
  std::size_t sms_of(std::size_t value) const { return sms_index_[value]; }
  const std::optional<config::location_fix>& location() const { return location_; }
  bool empty() const { return forms_.empty() && !location_; }

 private:
  std::size_t add_value(const std::string& v, std::size_t sms = 0);
  void add_forms(const std::string& kind, std::size_t value, const std::string& text, bool encodings);

  std::vector<std::string> values_;
  std::vector<std::size_t> sms_index_;
  std::vector<known_form> forms_;
  literal_set literals_;
  std::size_t longest_ = 0;
  std::optional<config::location_fix> location_;
};

// The literal spellings of one value in the encodings SDKs use, each with its encoding chain:
// URL-encoded (upper and lower hex), JSON \u escapes, base64 (standard and URL-safe, at the
// three alignments a value can have inside a larger blob), hex, and MD5/SHA-1/SHA-256.
std::vector<std::pair<std::string, std::vector<std::string>>> encoded_forms(const std::string& value);

}  // namespace leakscope::detectors
