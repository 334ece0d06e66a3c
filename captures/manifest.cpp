#include "captures/manifest.hpp"

#include "captures/files.hpp"
#include "captures/pcapng.hpp"
#include "captures/recorder.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

namespace leakscope::captures {

using nlohmann::json;

namespace {

// Not evidence: the manifest itself, the live control channel, and reports derived later.
bool excluded(const std::string& name) {
  static const std::set<std::string> names = {"manifest.json", "control.token", "control.json"};
  auto ends_with = [&](const char* suffix) {
    const std::string s = suffix;
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  // SQLite creates -wal and -shm beside the index whenever anyone reads it.
  return names.count(name) != 0 || name.rfind("report.", 0) == 0 || ends_with("-wal") || ends_with("-shm") ||
         ends_with(".tmp");
}

// SHA-256 of a file, streamed, so a multi-gigabyte capture is hashed in constant memory.
std::string file_sha256(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof buf);
    EVP_DigestUpdate(ctx, buf, static_cast<std::size_t>(in.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  return to_hex(md, len);
}

}  // namespace

json write_manifest(const std::filesystem::path& dir, const manifest_info& info) {
  json files = json::object();
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const auto name = entry.path().filename().string();
    if (!entry.is_regular_file() || excluded(name)) {
      continue;
    }
    files[name] = {{"sha256", file_sha256(entry.path())}, {"size", entry.file_size()}};
  }
  const bool has_config = files.contains("config.yaml");
  json manifest = {
      {"tool", {{"name", "leakscope"}, {"version", info.tool_version}, {"commit", info.tool_commit}}},
      {"start", info.start},
      {"end", info.end},
      {"ca_sha256_fingerprint", info.ca_fingerprint.empty() ? json(nullptr) : json(info.ca_fingerprint)},
      {"config_sha256", has_config ? files["config.yaml"]["sha256"] : json(nullptr)},
      {"leaks", {{"count", info.leaks}, {"chain_head", info.leaks_chain_head}}},
      {"files", files}};
  write_file_atomically(dir / "manifest.json", manifest.dump(2) + "\n");
  return manifest;
}

verify_result verify_session(const std::filesystem::path& dir) {
  verify_result out;
  auto problem = [&](std::string text) {
    out.intact = false;
    out.problems.push_back(std::move(text));
  };
  json manifest;
  {
    std::ifstream in(dir / "manifest.json");
    std::stringstream text;
    text << in.rdbuf();
    manifest = json::parse(text.str(), nullptr, false);
  }
  if (manifest.is_discarded() || !manifest.is_object() || !manifest.contains("files")) {
    problem("manifest.json is missing or unreadable: the session did not end cleanly, or the file was altered");
    manifest = json::object();
  }
  if (manifest.contains("files")) {
    for (const auto& [name, expected] : manifest["files"].items()) {
      ++out.files;
      const auto path = dir / name;
      if (!std::filesystem::exists(path)) {
        problem(name + ": missing");
        continue;
      }
      const auto size = std::filesystem::file_size(path);
      const auto hash = file_sha256(path);
      if (size != expected.value("size", std::uint64_t{0}) || hash != expected.value("sha256", "")) {
        problem(name + ": differs from the manifest (size " + std::to_string(size) + ", expected " +
                std::to_string(expected.value("size", std::uint64_t{0})) + "; sha256 " + hash + ")");
      }
    }
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      const auto name = entry.path().filename().string();
      if (entry.is_regular_file() && !excluded(name) && !manifest["files"].contains(name)) {
        problem(name + ": not in the manifest (added after the session ended)");
      }
    }
  }

  // The chain: each line names the SHA-256 of the line before it. Read a line at a time, as
  // the captures are a block at a time: the folder may be larger than memory.
  std::ifstream in(dir / "leaks.jsonl", std::ios::binary);
  std::string prev = chain_start;
  std::size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (in.eof()) {
      problem("leaks.jsonl:" + std::to_string(line_no) + ": torn last line (a write was cut off)");
      break;
    }
    line += '\n';
    const auto record = json::parse(line, nullptr, false);
    if (record.is_discarded() || !record.is_object()) {
      problem("leaks.jsonl:" + std::to_string(line_no) + ": not a JSON record");
    } else if (record.value("prev_hash", "") != prev) {
      problem("leaks.jsonl:" + std::to_string(line_no) + ": prev_hash does not match line " +
              std::to_string(line_no - 1) + " (a line before it was removed or edited)");
    }
    prev = sha256_hex(line);
    ++out.leaks;
  }
  // pcapng files must be whole blocks to the end (a crash may only cut the last one).
  for (const char* name : {"traffic.pcapng", "decrypted.pcapng"}) {
    std::ifstream pin(dir / name, std::ios::binary);
    if (!pin) {
      continue;
    }
    const auto walk = pcapng::walk_blocks(pin);
    if (walk.valid_bytes != walk.size) {
      problem(std::string(name) + ": readable up to byte " + std::to_string(walk.valid_bytes) + " of " +
              std::to_string(walk.size) + " (" + std::to_string(walk.blocks) + " whole blocks; the rest is cut off)");
    }
  }
  if (manifest.contains("leaks")) {
    const auto count = manifest["leaks"].value("count", std::uint64_t{0});
    if (count != out.leaks) {
      problem("leaks.jsonl: " + std::to_string(out.leaks) + " lines, the manifest says " + std::to_string(count));
    }
    if (manifest["leaks"].value("chain_head", "") != prev) {
      problem("leaks.jsonl: the last line is not the one the manifest recorded (lines were removed or edited at the end)");
    }
  }
  return out;
}

}  // namespace leakscope::captures
