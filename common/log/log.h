// Logging: spdlog underneath, plus a rate limiter for anything that can fire per packet or per frame.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include <spdlog/spdlog.h>

namespace sonde {

// Allows at most `per_interval` events per interval; counts what it suppressed so the next
// allowed line can say how many were dropped. Thread-safe, lock-free, cheap when suppressed.
class RateLimiter {
 public:
  explicit RateLimiter(uint32_t per_interval = 5,
                       std::chrono::milliseconds interval = std::chrono::seconds(10))
      : per_interval_(per_interval), interval_ns_(interval.count() * 1000000) {}

  // True when the caller may log now. `suppressed` receives how many were suppressed before.
  bool Allow(uint64_t* suppressed = nullptr);

 private:
  const uint32_t per_interval_;
  const int64_t interval_ns_;
  std::atomic<int64_t> window_start_ns_{0};
  std::atomic<uint32_t> in_window_{0};
  std::atomic<uint64_t> suppressed_{0};
};

// Sets the global level from a name (trace, debug, info, warn, error); unknown names keep info.
void SetLogLevel(const char* name);

}  // namespace sonde

// Logs at most a few lines per 10 s from this call site.
#define SONDE_LOG_EVERY(level, ...)                                        \
  do {                                                                     \
    static ::sonde::RateLimiter sonde_rl_;                                 \
    uint64_t sonde_supp_ = 0;                                              \
    if (sonde_rl_.Allow(&sonde_supp_)) {                                   \
      if (sonde_supp_) spdlog::level("({} similar lines suppressed)", sonde_supp_); \
      spdlog::level(__VA_ARGS__);                                          \
    }                                                                      \
  } while (0)
