// Process metadata from /proc.
#include "agent/metadata/process_cache.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <vector>

namespace sonde::agent::metadata {
namespace {

bool IsHex64(std::string_view s) {
  return s.size() == 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// "docker-<id>.scope", "cri-containerd-<id>.scope", "crio-<id>", "libpod-<id>.scope", "<id>".
std::string_view StripRuntimeWrapping(std::string_view seg) {
  constexpr std::string_view kScope = ".scope";
  if (seg.size() > kScope.size() && seg.substr(seg.size() - kScope.size()) == kScope) {
    seg.remove_suffix(kScope.size());
  }
  if (seg.size() > 64) seg = seg.substr(seg.size() - 64);  // drop any "<runtime>-" prefix
  return seg;
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

}  // namespace

std::string ContainerIdFromCgroup(std::string_view text) {
  std::string found;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    // hierarchy-ID:controller-list:cgroup-path
    size_t c1 = line.find(':');
    if (c1 == std::string_view::npos) continue;
    size_t c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view path = line.substr(c2 + 1);
    size_t s = 0;
    while (s <= path.size()) {
      size_t e = path.find('/', s);
      if (e == std::string_view::npos) e = path.size();
      std::string_view seg = StripRuntimeWrapping(path.substr(s, e - s));
      if (IsHex64(seg)) found.assign(seg);
      s = e + 1;
    }
    if (!found.empty()) return found;
  }
  return found;
}

uint64_t ParseNamespaceLink(std::string_view link) {
  size_t open = link.find('[');
  size_t close = link.rfind(']');
  if (open == std::string_view::npos || close == std::string_view::npos || close <= open + 1) return 0;
  uint64_t v = 0;
  for (size_t i = open + 1; i < close; ++i) {
    char c = link[i];
    if (c < '0' || c > '9') return 0;
    if (v > (UINT64_MAX - 9) / 10) return 0;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

StatusOr<ProcessInfo> ReadProcessInfo(const std::string& proc_root, uint32_t pid) {
  const std::string dir = proc_root + "/" + std::to_string(pid);
  ProcessInfo info;
  info.pid = pid;
  if (!ReadFile(dir + "/comm", &info.comm)) return NotFoundError("no process " + std::to_string(pid));
  while (!info.comm.empty() && info.comm.back() == '\n') info.comm.pop_back();
  std::string cmdline;
  if (ReadFile(dir + "/cmdline", &cmdline)) {
    while (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    info.cmdline = std::move(cmdline);
  }
  std::string cgroup;
  if (ReadFile(dir + "/cgroup", &cgroup)) info.container_id = ContainerIdFromCgroup(cgroup);
  char buf[128];
  ssize_t n = readlink((dir + "/ns/net").c_str(), buf, sizeof(buf) - 1);
  if (n > 0) info.netns_inode = ParseNamespaceLink(std::string_view(buf, static_cast<size_t>(n)));
  return info;
}

const ProcessInfo* ProcessCache::Lookup(uint32_t pid, uint64_t now_ns) {
  auto it = entries_.find(pid);
  if (it != entries_.end() && now_ns - it->second.read_ns < options_.ttl_ns) {
    it->second.used_ns = now_ns;
    return &it->second.info;
  }
  auto info = ReadProcessInfo(options_.proc_root, pid);
  if (!info.ok()) {
    // Keep what we knew: short-lived processes often exit before their events are processed.
    if (it != entries_.end()) {
      it->second.used_ns = now_ns;
      return &it->second.info;
    }
    return nullptr;
  }
  if (it == entries_.end()) {
    if (entries_.size() >= options_.max_entries) Reap(now_ns);
    if (entries_.size() >= options_.max_entries) {
      // Still full: evict the least recently used entry.
      auto victim = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
        return a.second.used_ns < b.second.used_ns;
      });
      entries_.erase(victim);
    }
    it = entries_.emplace(pid, Entry{}).first;
  }
  it->second.info = std::move(info).value();
  it->second.read_ns = now_ns;
  it->second.used_ns = now_ns;
  return &it->second.info;
}

void ProcessCache::Reap(uint64_t now_ns) {
  std::erase_if(entries_, [&](const auto& kv) { return now_ns - kv.second.used_ns >= options_.ttl_ns; });
}

}  // namespace sonde::agent::metadata
