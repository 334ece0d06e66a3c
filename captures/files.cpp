#include "captures/files.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
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

void write_file_atomically(const std::filesystem::path& file, const std::string& text) {
  atomic_file out(file);
  out.write(text);
  out.commit();
}

}  // namespace leakscope::captures
