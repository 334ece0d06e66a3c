#pragma once
// The one writer of a session folder. Producers (the proxy's threads) hand over finished
// records; a single thread appends them in submission order, each line with one write(2), so
// a reader never sees half a line and leak N never lands before leak N-1.
//
// Durability: files are fsync'd in groups, at most 100 ms after a record was written; a leak
// counts as recorded once synced. Each leaks.jsonl line carries "prev_hash", the SHA-256 of
// the line before it (64 zeros for the first), so a deleted or edited line is detected.

#include "captures/files.hpp"
#include "captures/records.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

namespace leakscope::captures {

// Creates captures/<session-id>/ (0700) with a fresh id "20261123-134512-7f3a".
std::filesystem::path create_session_dir(const std::filesystem::path& base, wall_time now);

// SHA-256 as lower-case hex.
std::string sha256_hex(std::string_view data);
// Bytes as lower-case hex.
std::string to_hex(const unsigned char* bytes, std::size_t n);
inline const std::string chain_start(64, '0');

struct session_summary {
  std::uint64_t flows = 0;
  std::uint64_t leaks = 0;
  std::uint64_t marks = 0;
  std::uint64_t write_errors = 0;
  std::string leaks_chain_head = chain_start;  // SHA-256 of the last leaks.jsonl line
  std::map<std::string, std::uint64_t> leaks_by_category;
  std::map<std::string, std::uint64_t> leaks_by_destination;  // host
};

class recorder {
 public:
  // With `pcapng`, traffic.pcapng is written too: interface 0 is the phone's leg, 1 the origin's.
  explicit recorder(std::filesystem::path session_dir, bool pcapng = false);
  ~recorder();
  recorder(const recorder&) = delete;
  recorder& operator=(const recorder&) = delete;

  void write(const flow_record& r);
  void write(const leak_record& r);
  void write(const mark_record& r);
  void write(const exchange_record& r);
  // A TLS secret in SSLKEYLOGFILE format (one line, no newline), for keys.log and, as a
  // Decryption Secrets Block ahead of the packets it decrypts, for traffic.pcapng.
  void write_key(const std::string& line);
  // An encoded block for traffic.pcapng or decrypted.pcapng (ignored without pcapng). Returns
  // the frame number it will have in that file (1-based, as Wireshark counts), 0 for blocks that
  // are not packets. Numbers follow the queue, which is the order of the file.
  std::uint64_t write_traffic(std::string block, bool is_packet = true);
  std::uint64_t write_decrypted(std::string block);
  // Waits until everything submitted so far is on disk and synced, then stops the writer.
  void close();

  session_summary summary() const;
  // False once a write has failed (a full disk, an I/O error): the proxy stops taking new
  // connections rather than intercept what it cannot record. `failure()` says why.
  bool healthy() const { return healthy_.load(); }
  std::string failure() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  enum file_id {
    flows_file, leaks_file, marks_file, keys_file, exchanges_file, traffic_file, decrypted_file, file_count
  };
  // The captures and the exchanges' bodies: direct I/O, written behind the writer's back
  // (append_file::append_later) while it goes on with the next batch.
  static constexpr bool is_bulk(int file) {
    return file == exchanges_file || file == traffic_file || file == decrypted_file;
  }
  // Lines that name frames or exchanges, which must not reach a reader before those.
  static constexpr bool refers_to_bulk(int file) {
    return file == flows_file || file == leaks_file;
  }
  std::uint64_t enqueue_packet(file_id file, std::string block, bool is_packet);
  struct item {
    file_id file;
    std::string line;
    std::string category, host;  // leaks only, for the summary
  };
  void enqueue(item it);
  // Waits for space, then (with `frame_counter`) numbers the item and queues it, all under the
  // lock, so numbers and queue order agree. Returns the number, or 0.
  std::uint64_t enqueue_locked(std::unique_lock<std::mutex>& lock, item it, std::uint64_t* frame_counter = nullptr);
  void run();
  // The writer's per-file buffers: lines of one file written with one write(2).
  struct pending_writes;
  void flush(pending_writes& p, int file);
  bool append(int file, std::span<const std::string_view> lines);
  bool append(int file, std::string_view line) { return append(file, std::span(&line, 1)); }
  void report_failure(int error);
  // Whether a line that refers to bulk bytes must wait for them (or for lines held before it).
  bool held_back(const pending_writes& p) const;
  // Waits until the bulk files hold every byte handed to them, counting the records lost.
  void settle_bulk(pending_writes& p);
  // Writes the held lines whose bytes are in their files; with `force`, settles and writes all.
  void release_held(pending_writes& p, bool force);
  void count(const item& it, bool written);  // caller holds mutex_
  void sync_dirty(pending_writes& p);  // releases every held line first

  std::filesystem::path dir_;
  std::unique_ptr<append_file> files_[file_count];
  std::uint64_t frames_[file_count] = {};
  bool pcapng_ = false;
  bool dirty_[file_count] = {};
  std::chrono::steady_clock::time_point last_sync_ = std::chrono::steady_clock::now();
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::condition_variable space_;  // producers wait here while the queue is full
  std::deque<item> queue_;
  std::size_t queued_bytes_ = 0;
  bool closing_ = false;  // close() called: the writer drains the queue and exits
  bool writer_waiting_ = false;  // the writer sleeps until the queue is not empty: wake it
  bool stopped_ = false;  // the writer has exited: later records are written synchronously
  session_summary summary_;
  std::atomic<bool> healthy_{true};
  mutable std::mutex failure_mutex_;  // append() runs with and without mutex_ held
  std::string failure_;               // guarded by failure_mutex_
  std::string failed_at_;             // guarded by failure_mutex_
  std::uint64_t lost_since_failure_ = 0;  // guarded by mutex_: records not written since the failure
  std::thread thread_;
};

}  // namespace leakscope::captures
