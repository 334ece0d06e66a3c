#include "captures/files.hpp"
#include "tests/temp_dir.hpp"

#include <doctest/doctest.h>

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <random>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace leakscope::captures;

namespace {

std::string contents(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Pieces of every size that matters to direct I/O: empty, a few bytes, a block and a byte
// either side of one, more than the 1 MiB bounce buffer.
std::vector<std::string> pieces() {
  std::mt19937 rng(5);
  std::vector<std::string> out;
  for (const std::size_t size : {std::size_t{0}, std::size_t{7}, std::size_t{4089}, std::size_t{4096}, std::size_t{1},
                                 std::size_t{4097}, std::size_t{(1u << 20) + 4096 * 3 + 17}, std::size_t{8191},
                                 std::size_t{4096 * 5}, std::size_t{300}}) {
    std::string p(size, '\0');
    for (auto& c : p) {
      c = static_cast<char>('a' + rng() % 26);
    }
    out.push_back(std::move(p));
  }
  return out;
}

// A file size limit for this process, with SIGXFSZ ignored so that a write past it fails with
// EFBIG, as a full disk fails with ENOSPC; restored when the test ends.
struct file_size_limit {
  rlimit old{};
  void (*old_handler)(int) = nullptr;
  explicit file_size_limit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &old);
    old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limited = old;
    limited.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limited);
  }
  ~file_size_limit() {
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
  }
};

// How many of the file's pages are in the page cache.
std::size_t resident_pages(const std::filesystem::path& file, std::size_t size) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in_core((size + page - 1) / page);
  ::mincore(map, size, in_core.data());
  ::munmap(map, size);
  ::close(fd);
  std::size_t n = 0;
  for (const auto c : in_core) {
    n += c & 1;
  }
  return n;
}

}  // namespace

TEST_CASE("whole blocks bypass the page cache where the file system has direct I/O") {
  leakscope::testing::temp_dir tmp("files");
  const std::size_t size = 4u << 20;
  append_file cached(tmp.path / "flows.jsonl", false);
  append_file direct(tmp.path / "traffic.pcapng", true);
  if (!direct.direct()) {
    MESSAGE("the file system of " << tmp.path << " has no direct I/O: not checked");
    return;
  }
  const std::string bytes(size, 'x');
  REQUIRE(cached.append(bytes) == 0);
  REQUIRE(direct.append(bytes) == 0);
  const std::size_t pages = size / static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  CHECK(resident_pages(tmp.path / "flows.jsonl", size) == pages);
  CHECK(resident_pages(tmp.path / "traffic.pcapng", size) < pages / 10);
}

TEST_CASE("an append_file holds every byte appended, in order, as soon as append returns") {
  for (const bool direct : {false, true}) {
    CAPTURE(direct);
    leakscope::testing::temp_dir tmp("files");
    const auto file = tmp.path / "traffic.pcapng";
    std::string expected;
    {
      append_file out(file, direct);
      bool idle = false;
      for (const auto& p : pieces()) {
        REQUIRE(out.append(p) == 0);
        expected += p;
        CHECK(out.size() == expected.size());
        CHECK(contents(file) == expected);  // a reader sees the partial last block too
        idle = !idle;
        if (idle) {
          out.release_buffer();  // as the recorder does when it has nothing to write
        }
      }
      CHECK(out.sync() == 0);
    }
    // Reopened, it carries on after what the file holds, from the middle of a block.
    {
      append_file out(file, direct);
      CHECK(out.size() == expected.size());
      for (const auto& p : pieces()) {
        REQUIRE(out.append(p) == 0);
        expected += p;
      }
      // Pieces appended as one: more of them than one pwritev takes, split across blocks.
      const auto big = pieces();
      std::vector<std::string_view> views(big.begin(), big.end());
      const std::string small = "0123456789";
      for (int i = 0; i < 3000; ++i) {
        views.push_back(std::string_view(small).substr(0, static_cast<std::size_t>(i % 11)));
      }
      views.insert(views.end(), big.rbegin(), big.rend());
      REQUIRE(out.append(views) == 0);
      for (const auto v : views) {
        expected += v;
      }
      CHECK(out.size() == expected.size());
    }
    CHECK(contents(file) == expected);
    struct stat st {};
    ::stat(file.c_str(), &st);
    CHECK((st.st_mode & 0777) == 0600);
  }
}

TEST_CASE("a failed append leaves the file as it was and later appends carry on") {
  for (const bool direct : {false, true}) {
    CAPTURE(direct);
    leakscope::testing::temp_dir tmp("files");
    const auto file = tmp.path / "decrypted.pcapng";
    std::string expected;
    append_file out(file, direct);
    std::size_t failures = 0;
    {
      // The limit falls inside a direct write, inside a block written through the cache and
      // at the start of a piece, across the pieces below.
      file_size_limit limit((1u << 20) + 5000);
      for (int round = 0; round < 3; ++round) {
        for (const auto& p : pieces()) {
          const int error = out.append(p);
          if (error == 0) {
            expected += p;
          } else {
            CHECK(error == EFBIG);
            ++failures;
          }
          CHECK(out.size() == expected.size());
          REQUIRE(contents(file) == expected);
        }
      }
    }
    CHECK(failures > 0);
    CHECK(expected.size() < (1u << 20) + 5000);
    // With room again, nothing is lost or doubled.
    for (const auto& p : pieces()) {
      REQUIRE(out.append(p) == 0);
      expected += p;
    }
    CHECK(contents(file) == expected);
  }
}

TEST_CASE("an append_file that cannot be opened names the file") {
  leakscope::testing::temp_dir tmp("files");
  const auto file = tmp.path / "missing" / "flows.jsonl";
  try {
    append_file out(file, true);
    FAIL("opened a file in a folder that does not exist");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find(file.string() + ": cannot open for writing") == 0);
  }
}

TEST_CASE("appends handed over with append_later are all in the file once settled, in order") {
  for (const bool direct : {false, true}) {
    CAPTURE(direct);
    leakscope::testing::temp_dir tmp("files");
    const auto file = tmp.path / "traffic.pcapng";
    std::string expected;
    append_file out(file, direct);
    // Three rounds of every size, more than the buffers that may be on their way at once, and
    // a settle after each round, which leaves the file in the middle of a block.
    std::uint64_t number = 0;
    for (int round = 0; round < 3; ++round) {
      for (const auto& p : pieces()) {
        const std::string_view view = p;
        CHECK(out.append_later(std::span(&view, 1)) == ++number);
        expected += p;
        CHECK(out.size() == expected.size());
        CHECK(out.in_file() <= out.size());
        CHECK(contents(file).size() >= out.in_file());  // what it says is written, is
      }
      const auto settled = out.settle();
      CHECK(settled.error == 0);
      CHECK(out.in_file() == expected.size());
      REQUIRE(contents(file) == expected);
      out.release_buffer();
    }
  }
}

TEST_CASE("the buffers of a burst are kept while bursts go on and given back once a settle finds less came") {
  leakscope::testing::temp_dir tmp("files");
  const auto file = tmp.path / "traffic.pcapng";
  append_file out(file, true);
  if (!out.direct()) {
    MESSAGE("the file system of " << tmp.path << " has no direct I/O: not checked");
    return;
  }
  std::string expected;
  const auto append = [&](std::size_t size, char c) {
    const std::string bytes(size, c);
    const std::string_view view = bytes;
    out.append_later(std::span(&view, 1));
    expected += bytes;
  };
  append((3u << 20) + 100, 'a');  // fills three buffers
  REQUIRE(out.settle().error == 0);
  CHECK(out.buffers_held() > 0);  // a buffer filled since the last settle: more may follow
  append(2u << 20, 'b');  // fills at least one more
  REQUIRE(out.settle().error == 0);
  CHECK(out.buffers_held() > 0);
  append(300, 'c');  // light traffic after the burst
  REQUIRE(out.settle().error == 0);
  CHECK(out.buffers_held() == 0);
  append(5000, 'd');  // and a fresh buffer for what comes next
  CHECK(out.buffers_held() == 1);
  REQUIRE(out.settle().error == 0);
  CHECK(contents(file) == expected);
}

TEST_CASE("after a failed write, settle names the first append lost and the file holds those before it") {
  for (const bool direct : {false, true}) {
    CAPTURE(direct);
    leakscope::testing::temp_dir tmp("files");
    const auto file = tmp.path / "decrypted.pcapng";
    append_file out(file, direct);
    const std::size_t limit = (3u << 20) + 5000;
    std::vector<std::string> appended;
    append_file::settled settled;
    {
      file_size_limit fsize(limit);
      for (int round = 0; round < 3; ++round) {
        for (const auto& p : pieces()) {
          const std::string_view view = p;
          out.append_later(std::span(&view, 1));
          appended.push_back(p);
        }
      }
      settled = out.settle();
    }
    CHECK(settled.error == EFBIG);
    REQUIRE(settled.first_lost >= 1);
    std::string kept;
    for (std::size_t i = 0; i + 1 < settled.first_lost; ++i) {
      kept += appended[i];
    }
    CHECK(kept.size() <= limit);
    // The failure is found a MiB at a time at worst: no append ending a MiB before the limit is lost.
    CHECK(kept.size() + appended[settled.first_lost - 1].size() + (1u << 20) > limit);
    CHECK(out.size() == kept.size());
    CHECK(contents(file) == kept);
    // With room again, appends carry on from there.
    for (const auto& p : pieces()) {
      const std::string_view view = p;
      out.append_later(std::span(&view, 1));
      kept += p;
    }
    CHECK(out.settle().error == 0);
    CHECK(contents(file) == kept);
  }
}
