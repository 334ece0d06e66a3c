#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
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

// An append-only file (mode 0600) for the session's bulk evidence: captures and bodies, written
// once and read back only when the session is sealed.
//
// With `direct`, whole blocks go to the disk with direct I/O (O_DIRECT) where the file system
// supports it: through the page cache, each MiB written cost the writer about 0.7 ms of ext4's
// per-page work and its write-back, and write-back could not keep up with a phone's 1 MiB
// downloads (issue 7). Bytes that do not fill a block go through the page cache, and so does
// the rest of that block later: a direct write over cached pages would make the kernel write
// them out and wait first. Every appended byte is in the file for any reader as soon as
// append() returns, exactly as with plain writes. Without `direct`, or on a file system without
// direct I/O (tmpfs), every byte goes through the page cache.
class append_file {
 public:
  // Opens `file`, creating it; appends after what it already holds. Throws std::runtime_error
  // naming the file.
  append_file(const std::filesystem::path& file, bool direct);
  ~append_file();
  append_file(const append_file&) = delete;
  append_file& operator=(const append_file&) = delete;

  // Appends all of `bytes` or nothing: after an error (a full disk, an I/O error) the file is
  // cut back to where it was and the errno is returned. 0 on success.
  int append(std::string_view bytes) { return append(std::span(&bytes, 1)); }
  // The same for the concatenation of `pieces`, which is never built.
  int append(std::span<const std::string_view> pieces);
  // fdatasync, then drops the file's pages from the page cache. The errno, or 0.
  int sync();
  // Frees the aligned buffer while the file is idle; the next append allocates another.
  void release_buffer() { bounce_.reset(); }

  bool direct() const { return direct_fd_ >= 0; }
  std::uint64_t size() const { return size_; }

 private:
  int write_through_cache(std::span<const std::string_view> pieces);
  int write_through_cache(std::string_view bytes);
  int write_direct(std::size_t n);

  struct free_deleter {
    void operator()(char* p) const;
  };
  std::string name_;
  int fd_ = -1;         // through the page cache
  int direct_fd_ = -1;  // O_DIRECT, or -1
  std::size_t align_ = 0;
  std::unique_ptr<char, free_deleter> bounce_;  // aligned, as direct I/O needs its memory; or none yet
  std::uint64_t size_ = 0;
};

void write_file_atomically(const std::filesystem::path& file, const std::string& text);

}  // namespace leakscope::captures
