// Rate limiter and log level configuration.
#include "common/log/log.h"

#include <cstring>

namespace sonde {

bool RateLimiter::Allow(uint64_t* suppressed) {
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  int64_t start = window_start_ns_.load(std::memory_order_relaxed);
  if (now - start >= interval_ns_ &&
      window_start_ns_.compare_exchange_strong(start, now, std::memory_order_relaxed)) {
    in_window_.store(0, std::memory_order_relaxed);
  }
  if (in_window_.fetch_add(1, std::memory_order_relaxed) < per_interval_) {
    if (suppressed) *suppressed = suppressed_.exchange(0, std::memory_order_relaxed);
    return true;
  }
  suppressed_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void SetLogLevel(const char* name) {
  auto level = spdlog::level::from_str(name ? name : "info");
  if (level == spdlog::level::off && std::strcmp(name, "off") != 0) level = spdlog::level::info;
  spdlog::set_level(level);
}

}  // namespace sonde
