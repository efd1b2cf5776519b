#include "agent/main/host_info.h"

#include <gtest/gtest.h>

namespace sonde::agent {
namespace {

TEST(HostInfoTest, DescribesLoopbackAndOverridesHostname) {
  v1::HostInfo h = ReadHostInfo("override-name");
  EXPECT_EQ(h.hostname(), "override-name");
  EXPECT_GT(h.cpus(), 0u);
  EXPECT_GT(h.memory_bytes(), 0u);
  bool loopback = false;
  for (const auto& i : h.interfaces()) {
    if (i.name() != "lo") continue;
    for (const auto& ip : i.ips()) loopback |= ip == "127.0.0.1/8";
  }
  EXPECT_TRUE(loopback);
  EXPECT_FALSE(ReadHostInfo("").hostname().empty());
}

}  // namespace
}  // namespace sonde::agent
