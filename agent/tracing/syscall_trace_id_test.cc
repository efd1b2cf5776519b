#include "agent/tracing/syscall_trace_id.h"

#include <gtest/gtest.h>

namespace sonde::agent::tracing {
namespace {

constexpr bool kServer = true, kClient = false, kIn = true, kOut = false;

TEST(SyscallTraceIdsTest, ProxyPattern) {
  SyscallTraceIds ids({}, 7);
  const uint64_t front = 1, back = 2;
  EXPECT_EQ(ids.OnIo(100, front, kServer, kOut, 1), 0u);  // nothing read yet
  uint64_t a = ids.OnIo(100, front, kServer, kIn, 2);     // inbound request
  EXPECT_NE(a, 0u);
  EXPECT_EQ(ids.OnIo(100, front, kServer, kIn, 3), a);    // same request, second read
  EXPECT_EQ(ids.OnIo(100, back, kClient, kOut, 4), a);    // proxied request
  EXPECT_EQ(ids.OnIo(100, back, kClient, kIn, 5), a);     // backend response
  EXPECT_EQ(ids.OnIo(100, front, kServer, kOut, 6), a);   // response to the client
  uint64_t b = ids.OnIo(100, front, kServer, kIn, 7);     // next request (keep-alive)
  EXPECT_NE(b, a);
  EXPECT_EQ(ids.OnIo(100, back, kClient, kOut, 8), b);
}

TEST(SyscallTraceIdsTest, ThreadsAreIndependentAndReadsOnOtherConnsSplit) {
  SyscallTraceIds ids({}, 0);
  uint64_t a = ids.OnIo(1, 10, kServer, kIn, 1);
  uint64_t b = ids.OnIo(2, 10, kServer, kIn, 1);
  EXPECT_NE(a, b);
  EXPECT_EQ(ids.OnIo(1, 20, kClient, kOut, 2), a);
  EXPECT_EQ(ids.OnIo(2, 20, kClient, kOut, 2), b);
  // A read of a different inbound connection right after is a different request.
  uint64_t c = ids.OnIo(1, 11, kServer, kIn, 3);
  EXPECT_NE(c, a);
  EXPECT_NE(c, b);
}

TEST(SyscallTraceIdsTest, BoundedAndReaped) {
  SyscallTraceIds ids({.max_threads = 3, .idle_ns = 100}, 0);
  for (uint32_t tid = 0; tid < 10; ++tid) ids.OnIo(tid, 1, kServer, kIn, tid);
  EXPECT_LE(ids.threads(), 3u);
  ids.Reap(1000);
  EXPECT_EQ(ids.threads(), 0u);
}

}  // namespace
}  // namespace sonde::agent::tracing
