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

// Direct writes go out a MiB at a time at most: large enough that each is one cheap request to
// the disk, small enough that the bounce buffer stays in the cache it is copied through.
constexpr std::size_t bounce_size = 1u << 20;

// The direct I/O alignment the file system asks for, or 0 where it has none (tmpfs). At least
// a page.
std::size_t direct_io_alignment(int fd) {
  struct statx st {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &st) != 0 || (st.stx_mask & STATX_DIOALIGN) == 0 ||
      st.stx_dio_offset_align == 0 || st.stx_dio_mem_align == 0) {
    return 0;
  }
  const std::size_t align = std::max<std::size_t>({4096, st.stx_dio_offset_align, st.stx_dio_mem_align});
  return align <= bounce_size / 4 ? align : 0;
}

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
  align_ = direct ? direct_io_alignment(fd_) : 0;
  if (align_ != 0) {
    direct_fd_ = ::open(name_.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
  }
}

append_file::~append_file() {
  for (const int fd : {fd_, direct_fd_}) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

int append_file::write_through_cache(std::span<const std::string_view> pieces) {
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
    ssize_t n = ::pwritev(fd_, iov.data() + first, count, static_cast<off_t>(size_));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return n < 0 ? errno : ENOSPC;
    }
    size_ += static_cast<std::uint64_t>(n);
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

int append_file::write_through_cache(std::string_view bytes) { return write_through_cache(std::span(&bytes, 1)); }

namespace {

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

 private:
  std::span<const std::string_view> pieces_;
  std::size_t i_ = 0;
  std::size_t at_ = 0;
};

}  // namespace

int append_file::append(std::span<const std::string_view> pieces) {
  const std::uint64_t before = size_;
  int error = 0;
  if (direct() && !bounce_) {
    bounce_.reset(static_cast<char*>(std::aligned_alloc(align_, bounce_size)));
  }
  if (!direct() || !bounce_) {
    error = write_through_cache(pieces);  // without its buffer (out of memory), as without direct I/O
  } else {
    // Every byte passes once through the aligned bounce buffer: the end of a block begun
    // through the cache goes the same way, whole blocks directly, what is left through the
    // cache.
    std::size_t total = 0;
    for (const auto p : pieces) {
      total += p.size();
    }
    gather_cursor in(pieces);
    const std::size_t into_block = size_ % align_;
    const std::size_t head = into_block == 0 ? 0 : std::min(total, align_ - into_block);
    in.copy_to(bounce_.get(), head);
    error = write_through_cache({bounce_.get(), head});
    for (std::size_t whole = (total - head) / align_ * align_; error == 0 && whole > 0;) {
      const std::size_t chunk = std::min(whole, bounce_size);
      in.copy_to(bounce_.get(), chunk);
      error = direct() ? write_direct(chunk) : write_through_cache({bounce_.get(), chunk});
      whole -= chunk;
    }
    if (error == 0) {
      const std::size_t tail = total - static_cast<std::size_t>(size_ - before);
      in.copy_to(bounce_.get(), tail);
      error = write_through_cache({bounce_.get(), tail});
    }
  }
  if (error != 0) {
    // A partial record would corrupt the file for every reader: cut back to the last whole one.
    [[maybe_unused]] const int rc = ::ftruncate(fd_, static_cast<off_t>(before));
    size_ = before;
  }
  return error;
}

// The first `n` bytes of the bounce buffer, whole blocks, at the end of the file, which ends on
// a block boundary.
int append_file::write_direct(std::size_t n) {
  for (std::size_t done = 0; done < n;) {
    const ssize_t w = ::pwrite(direct_fd_, bounce_.get() + done, n - done, static_cast<off_t>(size_));
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0 || static_cast<std::size_t>(w) % align_ != 0) {
      // A direct write that stops short, or fails, says little: past a file size limit it is
      // EINVAL. The page cache takes the rest, or gives the real error (EFBIG, ENOSPC, EIO).
      const int error = write_through_cache({bounce_.get() + done, n - done});
      if (error == 0) {
        // The page cache took what direct I/O would not: a file system that takes O_DIRECT
        // at open and refuses its writes. Every later chunk would fail the same way first.
        ::close(direct_fd_);
        direct_fd_ = -1;
      }
      return error;
    }
    done += static_cast<std::size_t>(w);
    size_ += static_cast<std::uint64_t>(w);
  }
  return 0;
}

int append_file::sync() {
  if (::fdatasync(fd_) != 0) {
    return errno;
  }
  // Written once, read back only when the session is sealed: dropping the pages once they are
  // on disk keeps a long session from filling the page cache, and the next writes reuse memory
  // the kernel has just freed (writing into fresh page-cache pages on this VM made 1 MiB
  // downloads cost 12 ms of CPU each, issue 7).
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
  return 0;
}

void write_file_atomically(const std::filesystem::path& file, const std::string& text) {
  atomic_file out(file);
  out.write(text);
  out.commit();
}

}  // namespace leakscope::captures
