#pragma once
// The one writer of a session folder. Producers (the proxy's threads) hand over finished
// records; a single thread appends them in submission order, each line with one write(2), so
// a reader never sees half a line and leak N never lands before leak N-1.

#include "captures/records.hpp"

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace leakscope::captures {

// Creates captures/<session-id>/ (0700) with a fresh id "20261123-134512-7f3a".
std::filesystem::path create_session_dir(const std::filesystem::path& base, wall_time now);

struct session_summary {
  std::uint64_t flows = 0;
  std::uint64_t leaks = 0;
  std::uint64_t marks = 0;
  std::uint64_t write_errors = 0;
  std::map<std::string, std::uint64_t> leaks_by_category;
  std::map<std::string, std::uint64_t> leaks_by_destination;  // host
};

class recorder {
 public:
  explicit recorder(std::filesystem::path session_dir);
  ~recorder();
  recorder(const recorder&) = delete;
  recorder& operator=(const recorder&) = delete;

  void write(const flow_record& r);
  void write(const leak_record& r);
  void write(const mark_record& r);
  // Waits until everything submitted so far is on disk, then stops the writer.
  void close();

  session_summary summary() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  struct item {
    int file;  // 0 = flows, 1 = leaks, 2 = marks
    std::string line;
    std::string category, host;  // leaks only, for the summary
  };
  void enqueue(item it);
  void run();
  bool append(int fd, const std::string& line);
  void count(const item& it, bool written);  // caller holds mutex_

  std::filesystem::path dir_;
  int fds_[3] = {-1, -1, -1};
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<item> queue_;
  bool closing_ = false;  // close() called: the writer drains the queue and exits
  bool stopped_ = false;  // the writer has exited: later records are written synchronously
  session_summary summary_;
  std::thread thread_;
};

}  // namespace leakscope::captures
