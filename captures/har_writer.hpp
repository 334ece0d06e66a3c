#pragma once
// flows.har: the session as HAR 1.2, one entry per exchange, for any HAR viewer. Built from the
// JSONL logs (so a crash never leaves a half document as the only copy), with the custom fields
// _flow, _leaks, _sdk, _party, _consent_phase and _error.

#include "captures/report.hpp"

#include <filesystem>
#include <string>

namespace leakscope::captures {

// Reads a session folder's session.json and its flows, leaks and marks logs. Torn or
// unreadable lines are skipped and described in `warnings`. exchanges.jsonl is not read: it
// holds request bodies, and only write_har needs it, one line at a time.
session_records read_session(const std::filesystem::path& dir, std::vector<std::string>* warnings = nullptr);

// The document from records held in memory, `exchanges` included.
nlohmann::json build_har(const session_records& records, const std::string& tool_version);

// Writes DIR/flows.har (0600) from the folder's logs, the same document as build_har, in
// memory bounded by one exchange rather than the session; returns the number of entries.
std::size_t write_har(const std::filesystem::path& dir, const std::string& tool_version);

}  // namespace leakscope::captures
