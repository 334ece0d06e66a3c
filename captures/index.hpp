#pragma once
// session.sqlite: flows, leaks, marks and findings of a session as SQL tables, for the report
// and any viewer (`sqlite3 session.sqlite "select sdk, category, count(*) from leaks group by 1, 2"`).
// Always rebuilt from the JSONL logs, which stay the record of truth.

#include <nlohmann/json.hpp>

#include <filesystem>

namespace leakscope::captures {

// (Re)writes DIR/session.sqlite (WAL journal) from the logs and `report` (build_report's output,
// for the findings table). Throws std::runtime_error naming the SQLite error.
void write_index(const std::filesystem::path& dir, const nlohmann::json& report);

}  // namespace leakscope::captures
