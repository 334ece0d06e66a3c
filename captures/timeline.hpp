#pragma once
// The marks of a live session (consent, refusal, background…), shared by the proxy's threads,
// the terminal and the control endpoint. Marks are also written to marks.jsonl by the recorder.

#include "captures/recorder.hpp"

#include <chrono>
#include <mutex>
#include <optional>
#include <vector>

namespace leakscope::captures {

class timeline {
 public:
  timeline(recorder& rec, wall_time wall_start, std::chrono::steady_clock::time_point steady_start)
      : recorder_(rec), wall_start_(wall_start), steady_start_(steady_start) {}

  // Records a mark now; thread-safe. Returns it as written.
  mark_record add(const std::string& kind, const std::string& text, const std::string& source);

  // Milliseconds since the session started, on the monotonic clock.
  std::int64_t now_ms() const;
  // Time of the first consent mark, in session milliseconds, if there is one yet.
  std::optional<std::int64_t> consent_ms() const;
  std::vector<mark_record> marks() const;

 private:
  recorder& recorder_;
  wall_time wall_start_;
  std::chrono::steady_clock::time_point steady_start_;
  mutable std::mutex mutex_;
  std::vector<mark_record> marks_;
};

}  // namespace leakscope::captures
