#pragma once
// manifest.json: the SHA-256 and size of every evidence file of a session, the tool and config
// it was made with, the CA fingerprint, start and end, and the head of the leaks.jsonl hash
// chain. `verify_session` re-derives all of it and names whatever differs.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace leakscope::captures {

struct manifest_info {
  std::string tool_version;
  std::string tool_commit;
  std::string ca_fingerprint;
  std::string start;
  std::string end;
  std::uint64_t leaks = 0;
  std::string leaks_chain_head;
};

// Hashes every evidence file in `dir` (not the manifest, the control channel's token and
// address, or reports made later) and writes manifest.json (0600). Returns it.
nlohmann::json write_manifest(const std::filesystem::path& dir, const manifest_info& info);

struct verify_result {
  bool intact = true;
  std::vector<std::string> problems;  // one sentence each, naming the file or line
  std::size_t files = 0;
  std::size_t leaks = 0;
};

verify_result verify_session(const std::filesystem::path& dir);

}  // namespace leakscope::captures
