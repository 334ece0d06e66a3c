#pragma once
// Pattern detectors: personal data that is not in the device profile, recognised by its shape,
// a checksum, and the name it is sent under. Each finding says how sure it is:
//   high   - checksum or strict shape, and a key that names the category
//   medium - checksum or strict shape alone, or a weak key
// Nothing is reported on shape alone where random data would often match (16 hex, UUIDs).

#include "detectors/request.hpp"
#include "detectors/structure.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace leakscope::detectors {

struct pattern_hit {
  std::string category;
  std::string confidence;
  std::string value;
};

// A single value sent under `key` (already through normalize_key(); "" when none): a JSON leaf,
// a form field, a header. Free text inside the value is tokenised and each token's nearby words
// act as its key.
void scan_scalar(std::string_view key, std::string_view value, std::vector<pattern_hit>& out);

// Whether `text` holds a verification-code message, in Chinese or English phrasing with a 4-8
// digit code nearby (scan_scalar()'s "sms" pattern). Only the windows around the phrases'
// trigger words are searched; `whole` searches all of the text, which tests hold it against.
bool verification_sms(std::string_view text, bool whole = false);

// Objects whose members together are personal data: a lat/lng pair, a cell tower, one SMS.
void scan_object(const node& object, std::vector<pattern_hit>& out);

// Collections: arrays, or comma-separated lists, of contacts, messages, BSSIDs, package names.
// `key` is normalised, as for scan_scalar.
void scan_list(std::string_view key, const std::vector<const node*>& items, std::vector<pattern_hit>& out);

// Keys scan_object() looks for; an object with none of them holds no object-level finding.
bool object_key(std::string_view key);

// How scan_object() and scan_list() use an object's member, by its normalised key, as
// member_use bits. They look members up by these keys only: a member with none is never read.
namespace member_use {
constexpr unsigned paired = 1;      // object_key(): scan_object() looks at the object at all
constexpr unsigned name = 2;        // a contact's name
constexpr unsigned phone = 4;       // a contact's phone, of any kind
constexpr unsigned package = 8;     // a package name, for a list of apps
constexpr unsigned bssid = 16;      // an access point's BSSID, for a list of them
constexpr unsigned looked_up = 32;  // any key scan_object() looks up (lat, mcc, an SMS sender, …)
}  // namespace member_use
unsigned member_uses(std::string_view key);

// Exactly the strings scan_list() counts as items: a package name or a BSSID. A list of
// strings with fewer than two of them holds no list finding.
bool list_item(std::string_view text);

}  // namespace leakscope::detectors
