#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

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
// them out and wait first. Without `direct`, or on a file system without direct I/O (tmpfs),
// every byte goes through the page cache.
//
// Direct writes are done by a thread of the file's own, a MiB at a time, while the caller goes
// on: the recorder waited for the disk for 45 % of its time under 1 MiB downloads, and the
// proxy's threads waited for the recorder. append_later() takes bytes and returns;
// settle() waits until they are all in the file and says which appends were lost, if any.
// append() is both in one call.
class append_file {
 public:
  // Opens `file`, creating it; appends after what it already holds. Throws std::runtime_error
  // naming the file.
  append_file(const std::filesystem::path& file, bool direct);
  ~append_file();  // settles; a failure then is the caller's to have collected
  append_file(const append_file&) = delete;
  append_file& operator=(const append_file&) = delete;

  // Appends all of `bytes` or nothing: after an error (a full disk, an I/O error) the file is
  // cut back to where it was and the errno is returned. 0 on success. Every byte appended
  // before is in the file when it returns.
  int append(std::string_view bytes) { return append(std::span(&bytes, 1)); }
  // The same for the concatenation of `pieces`, which is never built.
  int append(std::span<const std::string_view> pieces);

  // Takes a copy of `pieces` and returns the append's number (1, 2, … for the file's life),
  // before the bytes are necessarily in the file. Waits only while two MiB are already on
  // their way to the disk.
  std::uint64_t append_later(std::span<const std::string_view> pieces);
  struct settled {
    int error = 0;                // errno of the first failure since the last settle, or 0
    std::uint64_t first_lost = 0;  // with an error: this append and every later one are not in the file
  };
  // Waits until every append so far is in the file, or, after a failure, cuts the file back to
  // the end of the last append that is whole in it. Frees the aligned buffers when no buffer
  // filled up since the last settle.
  settled settle();
  // How much of the file, from its start, is surely written: size() once settled.
  std::uint64_t in_file() const { return in_file_.load(std::memory_order_acquire); }

  // Settles, fdatasyncs, then drops the file's pages from the page cache. The errno of the
  // settle or the sync, or 0.
  int sync();
  // Frees the aligned buffers while the file is idle and settled; the next append allocates.
  void release_buffer();

  bool direct() const { return align_ != 0 && !refused_direct_.load(std::memory_order_relaxed); }
  // The aligned buffers allocated (a MiB each): the stage, those on their way, the spares.
  std::size_t buffers_held();
  // Every byte appended, written or not yet.
  std::uint64_t size() const { return size_; }

 private:
  int write_through_cache(std::span<const std::string_view> pieces, std::uint64_t at);
  int write_through_cache(std::string_view bytes, std::uint64_t at);
  int write_chunk(const char* data, std::size_t n, std::uint64_t at);  // the I/O thread's write
  void submit(std::size_t n);  // hands the first `n` bytes of the stage to the I/O thread
  void wait_idle();
  void io_loop();
  void fail_here(int error, std::uint64_t at);

  struct free_deleter {
    void operator()(char* p) const;
  };
  using buffer = std::unique_ptr<char, free_deleter>;
  struct chunk {
    buffer data;
    std::size_t size;
    std::uint64_t at;
  };

  std::string name_;
  int fd_ = -1;         // through the page cache
  int direct_fd_ = -1;  // O_DIRECT, or -1
  std::size_t align_ = 0;
  std::atomic<bool> refused_direct_{false};  // the file system took O_DIRECT at open but not its writes
  std::uint64_t size_ = 0;                    // appended, written or not
  std::atomic<std::uint64_t> in_file_{0};

  // The caller's side: bytes gathering for the next direct write, from `stage_at_` (a block
  // boundary) on, and the appends not yet settled, as (number, where it begins).
  buffer stage_;
  std::size_t staged_ = 0;
  std::uint64_t stage_at_ = 0;
  std::uint64_t appended_ = 0;
  std::deque<std::pair<std::uint64_t, std::uint64_t>> unsettled_;
  bool filled_since_settle_ = false;  // a whole buffer went to the disk since the last settle
  int cache_error_ = 0;  // a write through the cache failed since the last settle, at:
  std::uint64_t cache_error_at_ = 0;

  // Shared with the I/O thread, under mutex_.
  std::mutex mutex_;
  std::condition_variable work_;  // a chunk to write, or stop
  std::condition_variable done_;  // a chunk written
  std::deque<chunk> queue_;       // the front is being written
  std::vector<buffer> spare_;
  std::size_t buffers_ = 0;  // allocated: the stage, the queue's and the spares
  int io_error_ = 0;         // the first failed direct write since the last settle, at:
  std::uint64_t io_error_at_ = 0;
  bool stop_ = false;
  std::thread io_;
};

void write_file_atomically(const std::filesystem::path& file, const std::string& text);

}  // namespace leakscope::captures
