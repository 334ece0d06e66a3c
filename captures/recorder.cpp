#include "captures/recorder.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

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

recorder::recorder(std::filesystem::path session_dir) : dir_(std::move(session_dir)) {
  const char* names[3] = {"flows.jsonl", "leaks.jsonl", "marks.jsonl"};
  for (int i = 0; i < 3; ++i) {
    const auto file = dir_ / names[i];
    fds_[i] = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fds_[i] < 0) {
      throw std::runtime_error(file.string() + ": cannot open for writing (" + std::strerror(errno) + ")");
    }
  }
  thread_ = std::thread([this] { run(); });
}

recorder::~recorder() {
  close();
  for (int& fd : fds_) {
    if (fd >= 0) {
      ::close(fd);
      fd = -1;
    }
  }
}

void recorder::write(const flow_record& r) { enqueue({0, to_json_line(r), {}, {}}); }

void recorder::write(const leak_record& r) { enqueue({1, to_json_line(r), r.category, r.dest.host}); }

void recorder::write(const mark_record& r) { enqueue({2, to_json_line(r), {}, {}}); }

void recorder::enqueue(item it) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) {
      // Late records after close() still go to disk, synchronously, rather than vanish.
      count(it, append(fds_[it.file], it.line));
      return;
    }
    queue_.push_back(std::move(it));
  }
  cv_.notify_one();
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

bool recorder::append(int fd, const std::string& line) {
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      std::cerr << "leakscope: cannot write to " << dir_.string() << ": " << std::strerror(errno) << "\n";
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

void recorder::count(const item& it, bool written) {
  if (!written) {
    ++summary_.write_errors;
  } else if (it.file == 0) {
    ++summary_.flows;
  } else if (it.file == 2) {
    ++summary_.marks;
  } else {
    ++summary_.leaks;
    ++summary_.leaks_by_category[it.category];
    ++summary_.leaks_by_destination[it.host];
  }
}

void recorder::run() {
  std::deque<item> batch;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return closing_ || !queue_.empty(); });
      if (queue_.empty()) {
        return;  // closing, and everything submitted is written
      }
      batch.swap(queue_);
    }
    // Producers keep queueing while this batch is written: the disk never blocks the proxy.
    for (const auto& it : batch) {
      const bool written = append(fds_[it.file], it.line);
      std::lock_guard lock(mutex_);
      count(it, written);
    }
    batch.clear();
  }
}

}  // namespace leakscope::captures
