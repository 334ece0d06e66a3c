#pragma once

#include <filesystem>
#include <string>

namespace leakscope::captures {

// Writes `text` to `file` (mode 0600) through a temporary file, fsync and rename, so the file is
// always either the old whole version or the new whole version. Throws std::runtime_error.
void write_file_atomically(const std::filesystem::path& file, const std::string& text);

}  // namespace leakscope::captures
