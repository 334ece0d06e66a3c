#pragma once
// Turns a detector finding into a leak record. A template over the finding type, so captures/
// stays independent of detectors/ (any type with the finding's fields will do).

#include "captures/records.hpp"

namespace leakscope::captures {

// What is common to every leak of one request.
struct leak_context {
  std::uint64_t flow = 0;
  wall_time ts{};
  std::int64_t t_session_ms = 0;
  std::optional<std::int64_t> t_consent_ms;  // null until a consent mark exists
  std::string client;
  destination dest;
  std::string party;
  std::string party_rule;
  std::string domain;
  std::optional<sdk_info> sdk;
  std::string method;
  std::string path;  // without the query: values in it would defeat masking
  std::optional<std::uint64_t> har_entry;
};

template <class Finding>
leak_record make_leak(const leak_context& c, std::uint64_t id, const Finding& f, std::string masked_value) {
  leak_record r;
  r.id = id;
  r.ts = c.ts;
  r.t_session_ms = c.t_session_ms;
  r.t_consent_ms = c.t_consent_ms;
  r.flow = c.flow;
  r.client = c.client;
  r.dest = c.dest;
  r.party = c.party;
  r.party_rule = c.party_rule;
  r.domain = c.domain;
  r.sdk = c.sdk;
  r.category = f.category;
  r.source = f.source;
  r.confidence = f.confidence;
  r.where = f.where;
  r.encoding = f.encoding;
  r.value = std::move(masked_value);
  r.count = f.count;
  r.method = c.method;
  r.path = c.path;
  r.har_entry = c.har_entry;
  return r;
}

}  // namespace leakscope::captures
