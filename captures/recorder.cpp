#include "captures/recorder.hpp"

#include "captures/pcapng.hpp"

#include <nlohmann/json.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <malloc.h>
#include <iostream>
#include <random>
#include <sys/stat.h>

namespace leakscope::captures {

std::filesystem::path create_session_dir(const std::filesystem::path& base, wall_time now) {
  std::error_code ec;
  std::filesystem::create_directories(base, ec);
  if (ec) {
    throw std::runtime_error(base.string() + ": cannot create the capture folder (" + ec.message() + ")");
  }
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    char id[40];
    std::snprintf(id, sizeof id, "%04d%02d%02d-%02d%02d%02d-%04x", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<unsigned>(rd() & 0xffff));
    const auto dir = base / id;
    if (::mkdir(dir.c_str(), 0700) == 0) {
      return dir;
    }
    if (errno != EEXIST) {
      throw std::runtime_error(dir.string() + ": cannot create the session folder (" + std::strerror(errno) + ")");
    }
  }
  throw std::runtime_error(base.string() + ": cannot find a free session folder name");
}

std::string to_hex(const unsigned char* bytes, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return to_hex(md, len);
}

namespace {

constexpr auto group_commit = std::chrono::milliseconds(100);
// Past this much unwritten data, producers wait for the disk: the proxy slows down rather than
// buffer without bound or drop evidence.
constexpr std::size_t max_queued_bytes = 2u << 20;
// The writer wakes for a batch, not for each record: once woken it lets records gather for up
// to `linger` or `wake_bytes`, whichever comes first. Each wake-up is a context switch that the
// proxy's threads would otherwise pay per record.
constexpr auto linger = std::chrono::milliseconds(2);
constexpr std::size_t wake_bytes = 256u << 10;
// A file's lines are written together up to this size, or alone when larger.
constexpr std::size_t max_pending_write = 512u << 10;
const char* const file_names[] = {"flows.jsonl", "leaks.jsonl", "marks.jsonl", "keys.log", "exchanges.jsonl",
                                  "traffic.pcapng", "decrypted.pcapng"};

}  // namespace

recorder::recorder(std::filesystem::path session_dir, bool pcapng) : dir_(std::move(session_dir)), pcapng_(pcapng) {
  for (int i = 0; i < file_count; ++i) {
    if ((i == traffic_file || i == decrypted_file) && !pcapng_) {
      continue;
    }
    // The captures and the exchanges' bodies are the bulk of a session's bytes: direct I/O.
    files_[i] = std::make_unique<append_file>(dir_ / file_names[i], is_bulk(i));
  }
  if (pcapng_) {
    const std::string header = pcapng::section_header("leakscope") +
                               pcapng::interface_description(pcapng::linktype_ethernet, "phone leg (as the phone saw it)") +
                               pcapng::interface_description(pcapng::linktype_ethernet, "origin leg (as the server saw it)");
    append(traffic_file, header);
    append(decrypted_file,
           pcapng::section_header("leakscope") +
               pcapng::interface_description(pcapng::linktype_ethernet, "decrypted HTTP, phone to origin"));
  }
  thread_ = std::thread([this] { run(); });
}

recorder::~recorder() { close(); }

void recorder::write(const flow_record& r) { enqueue({flows_file, to_json_line(r), {}, {}}); }

void recorder::write(const leak_record& r) { enqueue({leaks_file, to_json_line(r), r.category, r.dest.host}); }

void recorder::write(const mark_record& r) { enqueue({marks_file, to_json_line(r), {}, {}}); }

void recorder::write(const exchange_record& r) { enqueue({exchanges_file, to_json_line(r), {}, {}}); }

void recorder::write_key(const std::string& line) {
  enqueue({keys_file, line + "\n", {}, {}});
  write_traffic(pcapng::decryption_secrets(line + "\n"), false);
}

std::uint64_t recorder::write_traffic(std::string block, bool is_packet) {
  return enqueue_packet(traffic_file, std::move(block), is_packet);
}

std::uint64_t recorder::write_decrypted(std::string block) { return enqueue_packet(decrypted_file, std::move(block), true); }

std::uint64_t recorder::enqueue_packet(file_id file, std::string block, bool is_packet) {
  if (!pcapng_) {
    return 0;
  }
  std::unique_lock lock(mutex_);
  // Numbered under the same lock that orders the queue: the number is the place in the file.
  const std::uint64_t frame = enqueue_locked(lock, {file, std::move(block), {}, {}}, is_packet ? &frames_[file] : nullptr);
  const bool wake = writer_waiting_ || queued_bytes_ >= wake_bytes;
  lock.unlock();
  if (wake) {
    cv_.notify_one();
  }
  return frame;
}

void recorder::enqueue(item it) {
  std::unique_lock lock(mutex_);
  enqueue_locked(lock, std::move(it));
  const bool wake = writer_waiting_ || queued_bytes_ >= wake_bytes;
  lock.unlock();
  if (wake) {
    cv_.notify_one();
  }
}

std::uint64_t recorder::enqueue_locked(std::unique_lock<std::mutex>& lock, item it, std::uint64_t* frame_counter) {
  {
    space_.wait(lock, [&] { return queued_bytes_ < max_queued_bytes || closing_ || stopped_; });
    const std::uint64_t frame = frame_counter != nullptr ? ++*frame_counter : 0;
    if (stopped_) {
      // Late records after close() still go to disk, synchronously, rather than vanish.
      if (it.file == leaks_file) {
        it.line.insert(it.line.size() - 2, ",\"prev_hash\":\"" + summary_.leaks_chain_head + "\"");
      }
      const bool written = append(it.file, it.line);
      count(it, written);
      files_[it.file]->sync();
      return frame;
    }
    queued_bytes_ += it.line.size();
    queue_.push_back(std::move(it));
    return frame;
  }
}

void recorder::close() {
  {
    std::lock_guard lock(mutex_);
    if (closing_) {
      return;
    }
    closing_ = true;
  }
  cv_.notify_one();
  space_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  std::lock_guard lock(mutex_);
  stopped_ = true;
}

session_summary recorder::summary() const {
  std::lock_guard lock(mutex_);
  return summary_;
}

std::string recorder::failure() const {
  std::lock_guard lock(failure_mutex_);
  return failure_;
}

bool recorder::append(int file, std::span<const std::string_view> lines) {
  const int error = files_[file]->append(lines);
  if (error == 0) {
    return true;
  }
  report_failure(error);
  return false;
}

void recorder::report_failure(int error) {
  const std::string why = "cannot write to " + dir_.string() + ": " + std::strerror(error);
  if (healthy_.exchange(false)) {
    std::cerr << "leakscope: " << why << "; not intercepting new connections until it can write again\n";
    std::lock_guard lock(failure_mutex_);
    failure_ = why;
    failed_at_ = iso8601(std::chrono::system_clock::now());
  }
}

void recorder::count(const item& it, bool written) {
  if (!written) {
    ++summary_.write_errors;
    ++lost_since_failure_;
    return;
  }
  switch (it.file) {
    case flows_file:
      ++summary_.flows;
      break;
    case marks_file:
      ++summary_.marks;
      break;
    case leaks_file:
      ++summary_.leaks;
      ++summary_.leaks_by_category[it.category];
      ++summary_.leaks_by_destination[it.host];
      summary_.leaks_chain_head = sha256_hex(it.line);
      break;
    default:
      break;
  }
}

void recorder::sync_dirty(pending_writes& p) {
  release_held(p, true);
  for (int i = 0; i < file_count; ++i) {
    if (dirty_[i]) {
      if (const int error = files_[i]->sync(); error != 0) {
        std::cerr << "leakscope: cannot sync " << (dir_ / file_names[i]).string() << ": " << std::strerror(error) << "\n";
      }
      dirty_[i] = false;
    }
  }
  last_sync_ = std::chrono::steady_clock::now();
}

struct recorder::pending_writes {
  std::vector<item> items[file_count];
  std::size_t bytes[file_count] = {};
  // Lines that refer to bulk bytes not yet surely in their files (a flow to its frames and its
  // exchange), held until they are: a reader never finds a line whose frames are missing, and
  // neither does one after a crash. `needs` is each bulk file's size when the lines came.
  struct held_lines {
    std::uint64_t needs[file_count] = {};
    std::vector<item> items[file_count];
  };
  std::deque<held_lines> held;
  // Bulk appends not yet settled, as (append number, records in it): the records lost with a
  // failed write are counted when the file is settled.
  std::deque<std::pair<std::uint64_t, std::size_t>> unsettled[file_count];
};

void recorder::flush(pending_writes& p, int file) {
  if (p.items[file].empty()) {
    return;
  }
  std::vector<std::string_view> lines;
  lines.reserve(p.items[file].size());
  for (const auto& it : p.items[file]) {
    lines.push_back(it.line);
  }
  if (is_bulk(file)) {
    p.unsettled[file].emplace_back(files_[file]->append_later(lines), p.items[file].size());
    dirty_[file] = true;
  } else if (refers_to_bulk(file) && held_back(p)) {
    // Behind lines already held, or ahead of the bytes they refer to: held too.
    std::uint64_t needs[file_count] = {};
    for (int f = 0; f < file_count; ++f) {
      needs[f] = is_bulk(f) && files_[f] ? files_[f]->size() : 0;
    }
    if (p.held.empty() || !std::equal(std::begin(needs), std::end(needs), std::begin(p.held.back().needs))) {
      p.held.emplace_back();
      std::copy(std::begin(needs), std::end(needs), std::begin(p.held.back().needs));
    }
    auto& to = p.held.back().items[file];
    std::move(p.items[file].begin(), p.items[file].end(), std::back_inserter(to));
  } else {
    const bool written = append(file, lines);
    dirty_[file] = dirty_[file] || written;
    std::lock_guard lock(mutex_);
    for (const auto& it : p.items[file]) {
      count(it, written);
    }
  }
  p.bytes[file] = 0;
  p.items[file].clear();
}

bool recorder::held_back(const pending_writes& p) const {
  if (!p.held.empty()) {
    return true;
  }
  for (int f = 0; f < file_count; ++f) {
    if (is_bulk(f) && files_[f] && files_[f]->in_file() < files_[f]->size()) {
      return true;
    }
  }
  return false;
}

void recorder::settle_bulk(pending_writes& p) {
  for (int f = 0; f < file_count; ++f) {
    if (!is_bulk(f) || !files_[f]) {
      continue;
    }
    const auto settled = files_[f]->settle();
    if (settled.error != 0) {
      report_failure(settled.error);
      std::uint64_t lost = 0;
      for (const auto& [number, records] : p.unsettled[f]) {
        lost += number >= settled.first_lost ? records : 0;
      }
      std::lock_guard lock(mutex_);
      summary_.write_errors += lost;
      lost_since_failure_ += lost;
    }
    p.unsettled[f].clear();
  }
}

void recorder::release_held(pending_writes& p, bool force) {
  if (p.held.empty()) {
    return;
  }
  if (force) {
    settle_bulk(p);
  }
  auto ready = p.held.begin();
  for (; ready != p.held.end(); ++ready) {
    bool in_file = true;
    for (int f = 0; f < file_count && in_file && !force; ++f) {
      in_file = !is_bulk(f) || !files_[f] || files_[f]->in_file() >= ready->needs[f];
    }
    if (!in_file) {
      break;
    }
  }
  for (const int file : {leaks_file, flows_file}) {
    std::vector<std::string_view> lines;
    for (auto g = p.held.begin(); g != ready; ++g) {
      for (const auto& it : g->items[file]) {
        lines.push_back(it.line);
      }
    }
    if (lines.empty()) {
      continue;
    }
    const bool written = append(file, lines);
    dirty_[file] = dirty_[file] || written;
    std::lock_guard lock(mutex_);
    for (auto g = p.held.begin(); g != ready; ++g) {
      for (const auto& it : g->items[file]) {
        count(it, written);
      }
    }
  }
  p.held.erase(p.held.begin(), ready);
}

void recorder::run() {
  std::deque<item> batch;
  pending_writes pending;
  std::string head = chain_start;  // the writer's own copy of the chain head
  // Files in the order their lines may refer to each other: a leak names frames of both
  // captures, a flow its leaks and its exchange. flush_through(f) writes f's pending lines
  // and, first, those of every file before it, so no line reaches the disk before a line it
  // refers to, and a batch costs one write per file rather than a few per exchange.
  static constexpr int write_order[] = {keys_file,  traffic_file, decrypted_file, exchanges_file,
                                        marks_file, leaks_file,   flows_file};
  static_assert(std::size(write_order) == file_count);
  auto flush_through = [&](int last) {
    for (const int f : write_order) {
      flush(pending, f);
      if (f == last) {
        return;
      }
    }
  };
  while (true) {
    {
      std::unique_lock lock(mutex_);
      const bool pending_sync = std::any_of(std::begin(dirty_), std::end(dirty_), [](bool d) { return d; });
      writer_waiting_ = true;
      if (pending_sync) {
        // Wake for the group commit even when nothing new arrives.
        cv_.wait_until(lock, last_sync_ + group_commit, [&] { return closing_ || !queue_.empty(); });
      } else {
        if (queue_.empty() && !closing_) {
          // Nothing to write and nothing to sync: the direct-I/O buffers (a MiB each) go back
          // to the system until the next record, as a phone's idle tunnels cost little.
          lock.unlock();
          for (auto& f : files_) {
            if (f) {
              f->release_buffer();
            }
          }
          ::malloc_trim(0);
          lock.lock();
        }
        cv_.wait(lock, [&] { return closing_ || !queue_.empty(); });
      }
      writer_waiting_ = false;
      if (!queue_.empty() && !closing_ && queued_bytes_ < wake_bytes) {
        cv_.wait_until(lock, std::chrono::steady_clock::now() + linger,
                       [&] { return closing_ || queued_bytes_ >= wake_bytes; });
      }
      if (queue_.empty() && closing_) {
        lock.unlock();
        flush_through(flows_file);
        sync_dirty(pending);
        return;
      }
      batch.swap(queue_);
      queued_bytes_ = 0;
    }
    space_.notify_all();
    // Producers keep queueing while this batch is written: the disk never blocks the proxy.
    // A line is queued after everything it refers to, and is written after it (flush_through).
    for (auto& it : batch) {
      if (!healthy_.load() && it.file == flows_file) {
        flush_through(flows_file);
        release_held(pending, true);
        // Writing works again? Say first, in the flows log, what was lost and since when.
        std::string lost, since, why;
        {
          std::lock_guard lock(mutex_);
          lost = std::to_string(lost_since_failure_);
        }
        {
          std::lock_guard lock(failure_mutex_);
          since = failed_at_;
          why = failure_;
        }
        const std::string gap = "{\"gap\":{\"lost_records\":" + lost + ",\"since\":\"" + since + "\",\"until\":\"" +
                                iso8601(std::chrono::system_clock::now()) + "\",\"reason\":" +
                                nlohmann::json(why).dump() + "}}\n";
        if (append(flows_file, gap)) {
          std::lock_guard lock(mutex_);
          lost_since_failure_ = 0;
          healthy_ = true;
          std::cerr << "leakscope: writing again; " << lost << " records were lost (gap recorded)\n";
        }
      }
      if (it.file == leaks_file) {
        it.line.insert(it.line.size() - 2, ",\"prev_hash\":\"" + head + "\"");
        head = sha256_hex(it.line);
      }
      // Lines are written from where they are, a file's together, up to max_pending_write.
      const int f = it.file;
      pending.bytes[f] += it.line.size();
      pending.items[f].push_back(std::move(it));
      if (pending.bytes[f] >= max_pending_write) {
        flush_through(f);
      }
    }
    flush_through(flows_file);
    batch.clear();
    release_held(pending, false);
    if (std::chrono::steady_clock::now() - last_sync_ >= group_commit) {
      sync_dirty(pending);
      // The records just written were allocated by the proxy's threads and freed here, in
      // their arenas; glibc keeps such pages until the top of a heap is free, which on a long
      // transfer it seldom is. Giving them back each group commit keeps the proxy's resident
      // size at what it holds (a 10 GiB upload: 68 MiB of growth without this, 53 with).
      ::malloc_trim(0);
    }
  }
}

}  // namespace leakscope::captures
