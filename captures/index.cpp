#include "captures/index.hpp"

#include "captures/har_writer.hpp"

#include <sqlite3.h>

#include <memory>
#include <stdexcept>

namespace leakscope::captures {

using nlohmann::json;

namespace {

using db_ptr = std::unique_ptr<sqlite3, decltype(&sqlite3_close)>;
using stmt_ptr = std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)>;

constexpr const char* schema = R"sql(
PRAGMA journal_mode = WAL;
CREATE TABLE flows (
  id INTEGER PRIMARY KEY, start TEXT, client TEXT, host TEXT, ip TEXT, port INTEGER, scheme TEXT, sni TEXT,
  kind TEXT, method TEXT, url TEXT, status INTEGER, bytes_up INTEGER, bytes_down INTEGER, tls_handshake_ms REAL,
  ttfb_ms REAL, total_ms REAL, complete INTEGER, leaks INTEGER, error_type TEXT, error_detail TEXT, record TEXT);
CREATE TABLE leaks (
  id INTEGER PRIMARY KEY, flow INTEGER REFERENCES flows(id), ts TEXT, t_session_ms INTEGER, t_consent_ms INTEGER,
  client TEXT, host TEXT, ip TEXT, port INTEGER, party TEXT, party_rule TEXT, sdk TEXT, sdk_vendor TEXT,
  sdk_category TEXT, domain TEXT, category TEXT, source TEXT, confidence TEXT, "where" TEXT, encoding TEXT,
  value TEXT, method TEXT, path TEXT, har_entry INTEGER, record TEXT);
CREATE TABLE marks (id INTEGER PRIMARY KEY, kind TEXT, text TEXT, ts TEXT, t_session_ms INTEGER, source TEXT);
CREATE TABLE findings (
  rule TEXT, title TEXT, clause TEXT, destination TEXT, party TEXT, sdk TEXT, domain TEXT, category TEXT,
  count INTEGER, first_ts TEXT, last_ts TEXT, first_t_consent_ms INTEGER, peak_per_minute INTEGER, leaks TEXT);
CREATE INDEX leaks_by_category ON leaks(category);
CREATE INDEX leaks_by_sdk ON leaks(sdk);
CREATE INDEX leaks_by_flow ON leaks(flow);
)sql";

void check(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    throw std::runtime_error(std::string("session.sqlite: ") + what + ": " + sqlite3_errmsg(db));
  }
}

// Binds a JSON value to a parameter by its type; objects and arrays as their JSON text.
void bind(sqlite3_stmt* s, int i, const json& v) {
  if (v.is_null()) {
    sqlite3_bind_null(s, i);
  } else if (v.is_boolean()) {
    sqlite3_bind_int(s, i, v.get<bool>() ? 1 : 0);
  } else if (v.is_number_integer() || v.is_number_unsigned()) {
    sqlite3_bind_int64(s, i, v.get<std::int64_t>());
  } else if (v.is_number_float()) {
    sqlite3_bind_double(s, i, v.get<double>());
  } else {
    const std::string text = v.is_string() ? v.get<std::string>() : v.dump();
    sqlite3_bind_text(s, i, text.c_str(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
}

json at(const json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() ? json(nullptr) : *it;
}

json at(const json& j, const char* outer, const char* key) { return j.contains(outer) && j[outer].is_object() ? at(j[outer], key) : json(nullptr); }

void insert_all(sqlite3* db, const char* sql, const std::vector<json>& rows,
                const std::function<std::vector<json>(const json&)>& columns) {
  sqlite3_stmt* raw = nullptr;
  check(sqlite3_prepare_v2(db, sql, -1, &raw, nullptr), db, sql);
  stmt_ptr stmt(raw, sqlite3_finalize);
  for (const auto& row : rows) {
    const auto values = columns(row);
    for (std::size_t i = 0; i < values.size(); ++i) {
      bind(stmt.get(), static_cast<int>(i + 1), values[i]);
    }
    check(sqlite3_step(stmt.get()), db, sql);
    sqlite3_reset(stmt.get());
    sqlite3_clear_bindings(stmt.get());
  }
}

}  // namespace

void write_index(const std::filesystem::path& dir, const json& report) {
  const auto records = read_session(dir);
  const auto path = dir / "session.sqlite";
  const auto tmp = dir / "session.sqlite.tmp";
  std::filesystem::remove(tmp);
  sqlite3* raw = nullptr;
  if (sqlite3_open(tmp.c_str(), &raw) != SQLITE_OK) {
    const std::string why = raw != nullptr ? sqlite3_errmsg(raw) : "out of memory";
    sqlite3_close(raw);
    throw std::runtime_error("session.sqlite: cannot create (" + why + ")");
  }
  db_ptr db(raw, sqlite3_close);
  char* error = nullptr;
  if (sqlite3_exec(db.get(), schema, nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string why = error != nullptr ? error : "?";
    sqlite3_free(error);
    throw std::runtime_error("session.sqlite: schema: " + why);
  }
  check(sqlite3_exec(db.get(), "BEGIN", nullptr, nullptr, nullptr), db.get(), "begin");
  insert_all(db.get(), "INSERT INTO flows VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", records.flows,
             [](const json& f) -> std::vector<json> {
               return {at(f, "id"), at(f, "start"), at(f, "client"), at(f, "dest", "host"), at(f, "dest", "ip"),
                       at(f, "dest", "port"), at(f, "dest", "scheme"), at(f, "sni"), at(f, "kind"), at(f, "method"),
                       at(f, "url"), at(f, "status"), at(f, "bytes_up"), at(f, "bytes_down"), at(f, "tls_handshake_ms"),
                       at(f, "ttfb_ms"), at(f, "total_ms"), at(f, "complete"), at(f, "leaks"), at(f, "error", "type"),
                       at(f, "error", "detail"), f.dump()};
             });
  insert_all(db.get(), "INSERT INTO leaks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", records.leaks,
             [](const json& l) -> std::vector<json> {
               return {at(l, "id"), at(l, "flow"), at(l, "ts"), at(l, "t_session_ms"), at(l, "t_consent_ms"),
                       at(l, "client"), at(l, "dest", "host"), at(l, "dest", "ip"), at(l, "dest", "port"),
                       at(l, "party"), at(l, "party_rule"), at(l, "sdk", "name"), at(l, "sdk", "vendor"),
                       at(l, "sdk", "category"), at(l, "domain"), at(l, "category"), at(l, "source"),
                       at(l, "confidence"), at(l, "where"), at(l, "encoding"), at(l, "value"),
                       at(l, "request", "method"), at(l, "request", "path"), at(l, "har_entry"), l.dump()};
             });
  insert_all(db.get(), "INSERT INTO marks VALUES (?,?,?,?,?,?)", records.marks, [](const json& m) -> std::vector<json> {
    return {at(m, "id"), at(m, "kind"), at(m, "text"), at(m, "ts"), at(m, "t_session_ms"), at(m, "source")};
  });
  std::vector<json> findings;
  if (report.contains("findings")) {
    findings.assign(report["findings"].begin(), report["findings"].end());
  }
  insert_all(db.get(), "INSERT INTO findings VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", findings,
             [](const json& f) -> std::vector<json> {
               return {at(f, "rule"), at(f, "title"), at(f, "clause"), at(f, "destination"), at(f, "party"),
                       at(f, "sdk", "name"), at(f, "domain"), at(f, "category"), at(f, "count"), at(f, "first_ts"),
                       at(f, "last_ts"), at(f, "first_t_consent_ms"), at(f, "peak_per_minute"), at(f, "leaks")};
             });
  check(sqlite3_exec(db.get(), "COMMIT", nullptr, nullptr, nullptr), db.get(), "commit");
  // Fold the WAL into the database so the one file is complete and can be hashed.
  check(sqlite3_wal_checkpoint_v2(db.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr), db.get(), "checkpoint");
  db.reset();
  std::filesystem::permissions(tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::filesystem::rename(tmp, path);
  std::filesystem::remove(dir / "session.sqlite.tmp-wal");
  std::filesystem::remove(dir / "session.sqlite.tmp-shm");
}

}  // namespace leakscope::captures
