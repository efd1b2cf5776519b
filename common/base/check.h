// Invariant checks for our own code. Never use these on untrusted input (packet bytes, frames).
#pragma once

#include <cstdio>
#include <cstdlib>

namespace sonde::internal {
[[noreturn]] inline void CheckFailed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "CHECK failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}
}  // namespace sonde::internal

// Always on: a broken invariant of our own code.
#define SONDE_CHECK(cond) \
  ((cond) ? (void)0 : ::sonde::internal::CheckFailed(#cond, __FILE__, __LINE__))

// Debug builds only: expensive or hot-path invariants.
#ifdef NDEBUG
#define SONDE_DCHECK(cond) ((void)0)
#else
#define SONDE_DCHECK(cond) SONDE_CHECK(cond)
#endif
