#include "agent/metadata/process_cache.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace sonde::agent::metadata {
namespace {

const std::string kId = "4f1c2a9be7d3c0a8e5f6b7a9d8c7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9";

TEST(ContainerIdTest, RuntimeLayouts) {
  EXPECT_EQ(ContainerIdFromCgroup("0::/system.slice/docker-" + kId + ".scope\n"), kId);
  EXPECT_EQ(ContainerIdFromCgroup("12:memory:/docker/" + kId + "\n"), kId);
  EXPECT_EQ(ContainerIdFromCgroup("0::/kubepods.slice/kubepods-burstable.slice/"
                                  "kubepods-burstable-pod1234.slice/cri-containerd-" + kId + ".scope\n"),
            kId);
  EXPECT_EQ(ContainerIdFromCgroup("0::/kubepods/besteffort/pod5678/" + kId), kId);
  EXPECT_EQ(ContainerIdFromCgroup("0::/machine.slice/libpod-" + kId + ".scope/container"), kId);
}

TEST(ContainerIdTest, HostAndGarbage) {
  EXPECT_EQ(ContainerIdFromCgroup("0::/user.slice/user-0.slice/session-1.scope\n"), "");
  EXPECT_EQ(ContainerIdFromCgroup(""), "");
  EXPECT_EQ(ContainerIdFromCgroup("::::\n\n:"), "");
  EXPECT_EQ(ContainerIdFromCgroup("0::/docker/" + kId.substr(0, 63) + "g"), "");
}

TEST(NamespaceLinkTest, Parses) {
  EXPECT_EQ(ParseNamespaceLink("net:[4026531840]"), 4026531840u);
  EXPECT_EQ(ParseNamespaceLink("net:[]"), 0u);
  EXPECT_EQ(ParseNamespaceLink("net:[12x]"), 0u);
  EXPECT_EQ(ParseNamespaceLink("garbage"), 0u);
  EXPECT_EQ(ParseNamespaceLink("net:[99999999999999999999999]"), 0u);
}

TEST(ProcessCacheTest, ReadsSelfFromRealProc) {
  auto info = ReadProcessInfo("/proc", static_cast<uint32_t>(getpid()));
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->comm.substr(0, 15), std::string("metadata_test").substr(0, 15));
  EXPECT_NE(info->cmdline.find("metadata_test"), std::string::npos);
  EXPECT_GT(info->netns_inode, 0u);
}

TEST(ProcessCacheTest, FakeProcRootTtlAndBound) {
  namespace fs = std::filesystem;
  fs::path root = fs::temp_directory_path() / ("sonde_proc_" + std::to_string(getpid()));
  fs::remove_all(root);
  for (int pid : {10, 11, 12}) {
    fs::create_directories(root / std::to_string(pid));
    std::ofstream(root / std::to_string(pid) / "comm") << "proc" << pid << "\n";
    std::ofstream(root / std::to_string(pid) / "cmdline") << "proc" << pid << '\0' << "--flag" << '\0';
    std::ofstream(root / std::to_string(pid) / "cgroup") << "0::/docker/" << kId << "\n";
  }
  ProcessCache cache({.proc_root = root.string(), .ttl_ns = 1000, .max_entries = 2});
  const ProcessInfo* p = cache.Lookup(10, 1);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->comm, "proc10");
  EXPECT_EQ(p->cmdline, "proc10 --flag");
  EXPECT_EQ(p->container_id, kId);
  EXPECT_EQ(cache.Lookup(99, 1), nullptr);
  // Cached: a renamed process keeps its old comm until the TTL passes.
  std::ofstream(root / "10" / "comm") << "renamed\n";
  EXPECT_EQ(cache.Lookup(10, 500)->comm, "proc10");
  EXPECT_EQ(cache.Lookup(10, 1500)->comm, "renamed");
  // Bounded.
  ASSERT_NE(cache.Lookup(11, 1600), nullptr);
  ASSERT_NE(cache.Lookup(12, 1700), nullptr);
  EXPECT_LE(cache.size(), 2u);
  // Exited process: the last known info is kept until reaped.
  fs::remove_all(root / "12");
  ASSERT_NE(cache.Lookup(12, 1800), nullptr);
  cache.Reap(5000);
  EXPECT_EQ(cache.size(), 0u);
  fs::remove_all(root);
}

}  // namespace
}  // namespace sonde::agent::metadata
