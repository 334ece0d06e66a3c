#include "captures/files.hpp"

#include <linux/stat.h>  // STATX_DIOALIGN, before <sys/stat.h> so statx has the kernel's fields

#include <algorithm>
#include <climits>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/uio.h>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace leakscope::captures {

atomic_file::atomic_file(std::filesystem::path file) : file_(std::move(file)), tmp_(file_.string() + ".tmp") {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    throw std::runtime_error(file_.string() + ": cannot write (" + std::strerror(errno) + ")");
  }
}

atomic_file::~atomic_file() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void atomic_file::fail(int error) {
  ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());
  throw std::runtime_error(file_.string() + ": cannot write (" + std::strerror(error) + ")");
}

void atomic_file::write(std::string_view bytes) {
  if (fd_ < 0) {
    throw std::logic_error(file_.string() + ": written after commit");
  }
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      fail(n < 0 ? errno : ENOSPC);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

void atomic_file::commit() {
  if (::fsync(fd_) != 0) {
    fail(errno);
  }
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), file_.c_str()) != 0) {
    const int error = errno;
    ::unlink(tmp_.c_str());
    throw std::runtime_error(file_.string() + ": cannot write (" + std::strerror(error) + ")");
  }
}

namespace {

// Direct writes go out a MiB at a time: large enough that each is one cheap request to the
// disk, small enough that a buffer stays in the cache it is copied through.
constexpr std::size_t bounce_size = 1u << 20;
// The buffer being filled and two on their way to the disk: the third waits for the first.
constexpr std::size_t max_buffers = 3;

// The direct I/O alignment the file system asks for, or 0 where it has none (tmpfs). At least
// a page.
std::size_t direct_io_alignment(int fd) {
  struct statx st {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &st) != 0 || (st.stx_mask & STATX_DIOALIGN) == 0 ||
      st.stx_dio_offset_align == 0 || st.stx_dio_mem_align == 0) {
    return 0;
  }
  const std::size_t align = std::max<std::size_t>({4096, st.stx_dio_offset_align, st.stx_dio_mem_align});
  return align <= bounce_size / 4 && bounce_size % align == 0 ? align : 0;
}

// The concatenation of some pieces, read front to back.
class gather_cursor {
 public:
  explicit gather_cursor(std::span<const std::string_view> pieces) : pieces_(pieces) {}
  void copy_to(char* out, std::size_t n) {
    while (n > 0) {
      const auto piece = pieces_[i_].substr(at_);
      const std::size_t k = std::min(n, piece.size());
      std::memcpy(out, piece.data(), k);
      out += k;
      n -= k;
      at_ += k;
      if (at_ == pieces_[i_].size()) {
        ++i_;
        at_ = 0;
      }
    }
  }
  // The next `n` bytes as pieces of their own.
  std::vector<std::string_view> take(std::size_t n) {
    std::vector<std::string_view> out;
    while (n > 0) {
      const auto piece = pieces_[i_].substr(at_);
      const std::size_t k = std::min(n, piece.size());
      out.push_back(piece.substr(0, k));
      n -= k;
      at_ += k;
      if (at_ == pieces_[i_].size()) {
        ++i_;
        at_ = 0;
      }
    }
    return out;
  }

 private:
  std::span<const std::string_view> pieces_;
  std::size_t i_ = 0;
  std::size_t at_ = 0;
};

}  // namespace

void append_file::free_deleter::operator()(char* p) const { std::free(p); }

append_file::append_file(const std::filesystem::path& file, bool direct) : name_(file.string()) {
  fd_ = ::open(name_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  struct stat st {};
  if (fd_ < 0 || ::fstat(fd_, &st) != 0) {
    const int error = errno;
    if (fd_ >= 0) {
      ::close(fd_);
    }
    throw std::runtime_error(name_ + ": cannot open for writing (" + std::strerror(error) + ")");
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
  in_file_ = size_;
  align_ = direct ? direct_io_alignment(fd_) : 0;
  if (align_ != 0) {
    direct_fd_ = ::open(name_.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (direct_fd_ < 0) {
      align_ = 0;
    }
  }
}

append_file::~append_file() {
  settle();
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_.notify_one();
  if (io_.joinable()) {
    io_.join();
  }
  for (const int fd : {fd_, direct_fd_}) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

int append_file::write_through_cache(std::span<const std::string_view> pieces, std::uint64_t at) {
  // pwritev takes at most IOV_MAX pieces a call, and may write fewer bytes than asked.
  std::vector<iovec> iov;
  for (const auto p : pieces) {
    if (!p.empty()) {
      iov.push_back({const_cast<char*>(p.data()), p.size()});
    }
  }
  std::size_t first = 0;
  while (first < iov.size()) {
    const auto count = static_cast<int>(std::min<std::size_t>(iov.size() - first, IOV_MAX));
    ssize_t n = ::pwritev(fd_, iov.data() + first, count, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return n < 0 ? errno : ENOSPC;
    }
    at += static_cast<std::uint64_t>(n);
    for (; n > 0 && first < iov.size(); ++first) {
      if (static_cast<std::size_t>(n) < iov[first].iov_len) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + n;
        iov[first].iov_len -= static_cast<std::size_t>(n);
        break;
      }
      n -= static_cast<ssize_t>(iov[first].iov_len);
    }
  }
  return 0;
}

int append_file::write_through_cache(std::string_view bytes, std::uint64_t at) {
  return write_through_cache(std::span(&bytes, 1), at);
}

// Whole blocks at a block boundary, on the I/O thread.
int append_file::write_chunk(const char* data, std::size_t n, std::uint64_t at) {
  for (std::size_t done = 0; done < n;) {
    if (refused_direct_.load(std::memory_order_relaxed)) {
      return write_through_cache({data + done, n - done}, at + done);
    }
    const ssize_t w = ::pwrite(direct_fd_, data + done, n - done, static_cast<off_t>(at + done));
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0 || static_cast<std::size_t>(w) % align_ != 0) {
      // A direct write that stops short, or fails, says little: past a file size limit it is
      // EINVAL. The page cache takes the rest, or gives the real error (EFBIG, ENOSPC, EIO).
      const int error = write_through_cache({data + done, n - done}, at + done);
      if (error == 0) {
        // The page cache took what direct I/O would not: a file system that takes O_DIRECT
        // at open and refuses its writes. Every later chunk would fail the same way first.
        refused_direct_.store(true, std::memory_order_relaxed);
      }
      return error;
    }
    done += static_cast<std::size_t>(w);
  }
  return 0;
}

void append_file::io_loop() {
  std::unique_lock lock(mutex_);
  while (true) {
    work_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) {
      return;
    }
    chunk& c = queue_.front();  // stays put while the caller queues behind it
    // After a failure the file is cut back at the next settle: what follows is not written.
    const bool lost = io_error_ != 0;
    lock.unlock();
    const int error = lost ? 0 : write_chunk(c.data.get(), c.size, c.at);
    lock.lock();
    if (error != 0) {
      io_error_ = error;
      io_error_at_ = c.at;
    } else if (!lost) {
      in_file_.store(c.at + c.size, std::memory_order_release);
    }
    spare_.push_back(std::move(c.data));
    queue_.pop_front();
    done_.notify_all();
  }
}

void append_file::wait_idle() {
  std::unique_lock lock(mutex_);
  done_.wait(lock, [&] { return queue_.empty(); });
}

void append_file::submit(std::size_t n) {
  chunk c{std::move(stage_), n, stage_at_};
  stage_at_ += n;
  staged_ = 0;
  if (!io_.joinable()) {
    try {
      io_ = std::thread([this] { io_loop(); });
    } catch (const std::system_error&) {
      // No thread to be had: this chunk, and the next, are written here.
      if (const int error = write_chunk(c.data.get(), c.size, c.at); error != 0) {
        std::lock_guard lock(mutex_);
        if (io_error_ == 0) {
          io_error_ = error;
          io_error_at_ = c.at;
        }
      } else {
        in_file_.store(c.at + c.size, std::memory_order_release);
      }
      stage_ = std::move(c.data);
      return;
    }
  }
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(c));
  }
  work_.notify_one();
}

void append_file::fail_here(int error, std::uint64_t at) {
  if (cache_error_ == 0) {
    cache_error_ = error;
    cache_error_at_ = at;
  }
}

std::uint64_t append_file::append_later(std::span<const std::string_view> pieces) {
  const std::uint64_t number = ++appended_;
  unsettled_.emplace_back(number, size_);
  std::size_t total = 0;
  for (const auto p : pieces) {
    total += p.size();
  }
  const std::uint64_t start = size_;
  size_ += total;
  if (cache_error_ != 0 || total == 0) {
    return number;  // lost with the failure before it, or nothing to write
  }
  if (align_ == 0) {
    if (const int error = write_through_cache(pieces, start); error != 0) {
      fail_here(error, start);
    } else {
      in_file_.store(size_, std::memory_order_release);
    }
    return number;
  }
  gather_cursor in(pieces);
  std::uint64_t at = start;
  std::size_t left = total;
  if (staged_ == 0 && at % align_ != 0) {
    // The end of a block begun through the cache goes the same way. Nothing is on its way to
    // the disk: a stage starts on a block boundary, and only a settle ends one elsewhere.
    const std::size_t head = std::min<std::size_t>(left, align_ - at % align_);
    if (const int error = write_through_cache(in.take(head), at); error != 0) {
      fail_here(error, at);
      return number;
    }
    at += head;
    left -= head;
  }
  if (staged_ == 0) {
    stage_at_ = at;
  }
  while (left > 0) {
    if (!stage_) {
      std::unique_lock lock(mutex_);
      while (spare_.empty() && buffers_ >= max_buffers) {
        done_.wait(lock);
      }
      if (!spare_.empty()) {
        stage_ = std::move(spare_.back());
        spare_.pop_back();
      } else if (auto* p = static_cast<char*>(std::aligned_alloc(align_, bounce_size))) {
        stage_.reset(p);
        ++buffers_;
      } else {
        // Out of memory: the rest goes through the cache, after what is on its way.
        done_.wait(lock, [&] { return queue_.empty(); });
        lock.unlock();
        if (const int error = write_through_cache(in.take(left), at); error != 0) {
          fail_here(error, at);
        }
        return number;
      }
    }
    const std::size_t k = std::min(left, bounce_size - staged_);
    in.copy_to(stage_.get() + staged_, k);
    staged_ += k;
    at += k;
    left -= k;
    if (staged_ == bounce_size) {
      submit(bounce_size);
      filled_since_settle_ = true;
    }
  }
  return number;
}

append_file::settled append_file::settle() {
  if (staged_ > 0) {
    // Whole blocks directly, the partial last one through the cache once they are written.
    const std::size_t whole = staged_ / align_ * align_;
    std::string tail(stage_.get() + whole, staged_ - whole);
    if (whole > 0) {
      submit(whole);
    } else {
      staged_ = 0;
    }
    wait_idle();
    const bool written = [&] {
      std::lock_guard lock(mutex_);
      return io_error_ == 0;
    }();
    if (written && cache_error_ == 0 && !tail.empty()) {
      if (const int error = write_through_cache(tail, stage_at_); error != 0) {
        fail_here(error, stage_at_);
      }
    }
  } else {
    wait_idle();
  }
  settled result;
  std::uint64_t failed_at = 0;
  {
    std::lock_guard lock(mutex_);
    if (io_error_ != 0) {
      result.error = io_error_;
      failed_at = io_error_at_;
    }
    io_error_ = 0;
  }
  if (cache_error_ != 0 && (result.error == 0 || cache_error_at_ < failed_at)) {
    result.error = cache_error_;
    failed_at = cache_error_at_;
  }
  cache_error_ = 0;
  if (result.error != 0 && !unsettled_.empty()) {
    // The first append that does not end before the failure, and all after it, are lost.
    auto lost = unsettled_.end() - 1;
    for (auto it = unsettled_.begin(); it != unsettled_.end(); ++it) {
      const std::uint64_t end = it + 1 == unsettled_.end() ? size_ : (it + 1)->second;
      if (end > failed_at) {
        lost = it;
        break;
      }
    }
    result.first_lost = lost->first;
    // A partial record would corrupt the file for every reader: cut back to the last whole one.
    size_ = lost->second;
    [[maybe_unused]] const int rc = ::ftruncate(fd_, static_cast<off_t>(size_));
  }
  unsettled_.clear();
  in_file_.store(size_, std::memory_order_release);
  if (!filled_since_settle_) {
    // Too little came since the last settle to fill a buffer: the ones a burst left behind
    // (a MiB each, every page touched) are not needed, and while a lab's phones idle on their
    // tunnels they were a quarter of the proxy's memory. The next append takes a fresh one,
    // of which only what it writes becomes resident.
    release_buffer();
  }
  filled_since_settle_ = false;
  return result;
}

int append_file::append(std::span<const std::string_view> pieces) {
  append_later(pieces);
  return settle().error;
}

void append_file::release_buffer() {
  if (staged_ != 0) {
    return;
  }
  std::lock_guard lock(mutex_);
  if (!queue_.empty()) {
    return;
  }
  buffers_ -= spare_.size();
  spare_.clear();
  if (stage_) {
    stage_.reset();
    --buffers_;
  }
}

std::size_t append_file::buffers_held() {
  std::lock_guard lock(mutex_);
  return buffers_;
}

int append_file::sync() {
  const int error = settle().error;
  if (::fdatasync(fd_) != 0) {
    return error != 0 ? error : errno;
  }
  // Written once, read back only when the session is sealed: dropping the pages once they are
  // on disk keeps a long session from filling the page cache, and the next writes reuse memory
  // the kernel has just freed (writing into fresh page-cache pages on this VM made 1 MiB
  // downloads cost 12 ms of CPU each, issue 7).
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
  return error;
}

void write_file_atomically(const std::filesystem::path& file, const std::string& text) {
  atomic_file out(file);
  out.write(text);
  out.commit();
}

}  // namespace leakscope::captures
