// Process metadata from /proc: pid -> comm, cmdline, container id (from the cgroup path) and
// network namespace inode, cached with a TTL and a size bound.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/base/status.h"

namespace sonde::agent::metadata {

struct ProcessInfo {
  uint32_t pid = 0;
  std::string comm;
  std::string cmdline;       // arguments joined by spaces
  std::string container_id;  // 64 hex chars, empty outside containers
  uint64_t netns_inode = 0;  // 0 when unreadable
};

// Extracts a container id from the text of /proc/PID/cgroup (docker, containerd, cri-o,
// podman and Kubernetes layouts: a 64-hex path segment, possibly wrapped as
// "<runtime>-<id>.scope"). Empty when there is none.
std::string ContainerIdFromCgroup(std::string_view cgroup_text);

// Parses "net:[4026531840]" (the target of /proc/PID/ns/net). 0 when malformed.
uint64_t ParseNamespaceLink(std::string_view link);

// Reads one process from `proc_root` (normally "/proc"). NotFound when the process is gone.
StatusOr<ProcessInfo> ReadProcessInfo(const std::string& proc_root, uint32_t pid);

class ProcessCache {
 public:
  struct Options {
    std::string proc_root = "/proc";
    uint64_t ttl_ns = 30'000'000'000;  // re-read after this long (exec changes comm/cmdline)
    size_t max_entries = 65536;
  };
  ProcessCache() : ProcessCache(Options{}) {}
  explicit ProcessCache(Options options) : options_(std::move(options)) {}

  // The process's info, read on first use or after the TTL. nullptr when it cannot be read
  // (process exited before we looked). The pointer stays valid until the next Lookup, Forget
  // or Reap call.
  const ProcessInfo* Lookup(uint32_t pid, uint64_t now_ns);
  void Forget(uint32_t pid) { entries_.erase(pid); }
  // Drops entries not looked up for a TTL.
  void Reap(uint64_t now_ns);
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    ProcessInfo info;
    uint64_t read_ns = 0;
    uint64_t used_ns = 0;
  };
  Options options_;
  std::unordered_map<uint32_t, Entry> entries_;
};

}  // namespace sonde::agent::metadata
