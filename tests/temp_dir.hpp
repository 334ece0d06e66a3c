#pragma once
// A fresh folder under /tmp for one test, removed with what it holds when the test ends.

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace leakscope::testing {

struct temp_dir {
  std::filesystem::path path;
  // The folder is /tmp/leakscope-<name>-XXXXXX.
  explicit temp_dir(const std::string& name) {
    std::string tmpl = "/tmp/leakscope-" + name + "-XXXXXX";
    path = ::mkdtemp(tmpl.data());
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

}  // namespace leakscope::testing
