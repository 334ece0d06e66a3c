#include "captures/files.hpp"

#include <linux/stat.h>  // STATX_DIOALIGN, before <sys/stat.h> so statx has the kernel's fields

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

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
    bounce_.reset(static_cast<char*>(std::aligned_alloc(align_, bounce_size)));
    direct_fd_ = bounce_ ? ::open(name_.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC) : -1;
  }
}

append_file::~append_file() {
  for (const int fd : {fd_, direct_fd_}) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

int append_file::write_through_cache(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(size_));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return n < 0 ? errno : ENOSPC;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
    size_ += static_cast<std::uint64_t>(n);
  }
  return 0;
}

// `bytes` is whole blocks and the file ends on a block boundary.
int append_file::write_direct(std::string_view bytes) {
  while (!bytes.empty()) {
    const std::size_t chunk = std::min(bytes.size(), bounce_size);
    std::memcpy(bounce_.get(), bytes.data(), chunk);
    for (std::size_t done = 0; done < chunk;) {
      const ssize_t n = ::pwrite(direct_fd_, bounce_.get() + done, chunk - done, static_cast<off_t>(size_));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0 || static_cast<std::size_t>(n) % align_ != 0) {
        // A direct write that stops short, or fails, says little: past a file size limit it is
        // EINVAL. The page cache takes the rest of the chunk, or gives the real error (EFBIG,
        // ENOSPC, EIO).
        if (const int error = write_through_cache({bounce_.get() + done, chunk - done}); error != 0) {
          return error;
        }
        break;
      }
      done += static_cast<std::size_t>(n);
      size_ += static_cast<std::uint64_t>(n);
    }
    bytes.remove_prefix(chunk);
  }
  return 0;
}

int append_file::append(std::string_view bytes) {
  const std::uint64_t before = size_;
  int error = 0;
  if (!direct()) {
    error = write_through_cache(bytes);
  } else {
    // The end of a block begun through the cache, whole blocks directly, what is left through
    // the cache.
    const std::size_t into_block = size_ % align_;
    const std::size_t head = into_block == 0 ? 0 : std::min(bytes.size(), align_ - into_block);
    const std::size_t whole = (bytes.size() - head) / align_ * align_;
    error = write_through_cache(bytes.substr(0, head));
    if (error == 0) {
      error = write_direct(bytes.substr(head, whole));
    }
    if (error == 0) {
      error = write_through_cache(bytes.substr(head + whole));
    }
  }
  if (error != 0) {
    // A partial record would corrupt the file for every reader: cut back to the last whole one.
    [[maybe_unused]] const int rc = ::ftruncate(fd_, static_cast<off_t>(before));
    size_ = before;
  }
  return error;
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
