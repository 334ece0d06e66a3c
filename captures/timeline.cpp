#include "captures/timeline.hpp"

namespace leakscope::captures {

std::int64_t timeline::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - steady_start_).count();
}

mark_record timeline::add(const std::string& kind, const std::string& text, const std::string& source) {
  mark_record m;
  m.kind = kind;
  m.text = text;
  m.source = source;
  {
    std::lock_guard lock(mutex_);
    m.id = marks_.size() + 1;
    m.t_session_ms = now_ms();
    // Wall time derived from the monotonic offset, so marks and leaks share one clock even if
    // the system clock is adjusted during the session.
    m.ts = wall_start_ + std::chrono::milliseconds(m.t_session_ms);
    marks_.push_back(m);
    recorder_.write(m);  // under the lock: marks.jsonl keeps the order of ids
  }
  return m;
}

std::optional<std::int64_t> timeline::consent_ms() const {
  std::lock_guard lock(mutex_);
  for (const auto& m : marks_) {
    if (m.kind == "consent") {
      return m.t_session_ms;
    }
  }
  return std::nullopt;
}

std::vector<mark_record> timeline::marks() const {
  std::lock_guard lock(mutex_);
  return marks_;
}

}  // namespace leakscope::captures
