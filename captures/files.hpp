#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace leakscope::captures {

// A file (mode 0600) written through a temporary file, fsync and rename, so that it is always
// either the old whole version or the new whole version, however it is written: a document too
// large to hold in memory is written piece by piece. Throws std::runtime_error naming the file.
class atomic_file {
 public:
  explicit atomic_file(std::filesystem::path file);
  ~atomic_file();  // without commit(), the temporary is removed and the file left as it was
  atomic_file(const atomic_file&) = delete;
  atomic_file& operator=(const atomic_file&) = delete;

  void write(std::string_view bytes);
  void commit();

 private:
  [[noreturn]] void fail(int error);
  std::filesystem::path file_;
  std::string tmp_;
  int fd_ = -1;
};

void write_file_atomically(const std::filesystem::path& file, const std::string& text);

}  // namespace leakscope::captures
