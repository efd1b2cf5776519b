// TPACKET_V3 ring capture. Blocks are handed to user space whole; we walk their packets, feed the
// sink, and give the block back to the kernel.
#include "agent/capture/afpacket/afpacket_source.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "common/log/log.h"

namespace sonde::agent::capture {
namespace {

std::vector<std::string> SplitGlobs(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

uint64_t WallNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

std::string ErrnoText(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

StatusOr<std::vector<uint8_t>> CompileCookedFilter(const std::string& filter) {
  bpf_program prog{};
  pcap_t* dead = pcap_open_dead(DLT_LINUX_SLL, 65535);
  if (dead == nullptr) return InternalError("afpacket: pcap_open_dead failed");
  if (pcap_compile(dead, &prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    std::string err = pcap_geterr(dead);
    pcap_close(dead);
    return InvalidArgumentError("afpacket: cannot compile filter '" + filter + "': " + err);
  }
  pcap_close(dead);
  // The cooked socket hands the filter the packet from its network header on, without the
  // 16-byte SLL header libpcap compiled for: shift offsets, and read the two SLL fields a
  // filter may test (packet type at 0, protocol at 14) from the kernel's ancillary data.
  constexpr uint32_t kSllHeaderBytes = 16;
  std::vector<sock_filter> insns(prog.bf_len);
  Status status = Status::Ok();
  for (uint32_t i = 0; i < prog.bf_len; ++i) {
    const bpf_insn& in = prog.bf_insns[i];
    sock_filter out{in.code, in.jt, in.jf, in.k};
    uint16_t cls = BPF_CLASS(in.code);
    uint16_t mode = BPF_MODE(in.code);
    bool packet_load = (cls == BPF_LD && (mode == BPF_ABS || mode == BPF_IND)) ||
                       (cls == BPF_LDX && mode == BPF_MSH);
    if (packet_load) {
      if (in.k >= kSllHeaderBytes) {
        out.k = in.k - kSllHeaderBytes;
      } else if (mode == BPF_ABS && BPF_SIZE(in.code) == BPF_H && in.k == 14) {
        out.k = static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_PROTOCOL);
      } else if (mode == BPF_ABS && BPF_SIZE(in.code) == BPF_H && in.k == 0) {
        out.k = static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_PKTTYPE);
      } else {
        status = InvalidArgumentError("afpacket: filter '" + filter +
                                      "' reads link-layer fields that cooked capture does not have");
        break;
      }
    }
    insns[i] = out;
  }
  pcap_freecode(&prog);
  if (!status.ok()) return status;
  const auto* bytes = reinterpret_cast<const uint8_t*>(insns.data());
  return std::vector<uint8_t>(bytes, bytes + insns.size() * sizeof(sock_filter));
}

bool InterfaceMatches(const std::string& patterns, const std::string& name) {
  for (const auto& g : SplitGlobs(patterns)) {
    if (g == "any" || fnmatch(g.c_str(), name.c_str(), 0) == 0) return true;
  }
  return false;
}

struct AfPacketSource::Ring {
  std::string ifname;
  int ifindex = 0;
  uint64_t netns_inode = 0;
  int fd = -1;
  uint8_t* map = nullptr;
  size_t map_size = 0;
  uint32_t block_size = 0;
  uint32_t block_count = 0;
  uint32_t next_block = 0;
  bool broken = false;

  ~Ring() {
    if (map != nullptr) munmap(map, map_size);
    if (fd >= 0) close(fd);
  }
};

AfPacketSource::AfPacketSource(AfPacketConfig config) : config_(std::move(config)) {
  globs_ = SplitGlobs(config_.interfaces);
  for (const auto& g : globs_) any_ = any_ || g == "any";
}

AfPacketSource::~AfPacketSource() = default;

SourceStats AfPacketSource::stats() const {
  SourceStats s;
  s.events = events_.load(std::memory_order_relaxed);
  s.bytes = bytes_.load(std::memory_order_relaxed);
  s.dropped = dropped_.load(std::memory_order_relaxed);
  s.malformed = malformed_.load(std::memory_order_relaxed);
  return s;
}

Status AfPacketSource::OpenRing(const std::string& ifname, int ifindex, std::unique_ptr<Ring>* out) {
  auto ring = std::make_unique<Ring>();
  ring->ifname = ifname;
  ring->ifindex = ifindex;
  ring->netns_inode = current_inode_;
  // Cooked: every device type delivers packets from the network header, so one filter fits all.
  ring->fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (ring->fd < 0) return PermissionDeniedError(ErrnoText("AF_PACKET socket"));
  int version = TPACKET_V3;
  if (setsockopt(ring->fd, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) != 0) {
    return UnavailableError(ErrnoText("PACKET_VERSION v3"));
  }
  if (!filter_.empty()) {
    sock_fprog prog{};
    prog.len = static_cast<unsigned short>(filter_.size() / sizeof(sock_filter));
    prog.filter = reinterpret_cast<sock_filter*>(filter_.data());
    if (setsockopt(ring->fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) != 0) {
      return InvalidArgumentError(ErrnoText("SO_ATTACH_FILTER"));
    }
  }
  tpacket_req3 req{};
  req.tp_block_size = config_.block_size;
  req.tp_block_nr = config_.block_count;
  req.tp_frame_size = config_.frame_size;
  req.tp_frame_nr = config_.block_size / config_.frame_size * config_.block_count;
  req.tp_retire_blk_tov = config_.block_timeout_ms;
  req.tp_feature_req_word = TP_FT_REQ_FILL_RXHASH;
  if (setsockopt(ring->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0) {
    return InvalidArgumentError(ErrnoText("PACKET_RX_RING"));
  }
  ring->block_size = config_.block_size;
  ring->block_count = config_.block_count;
  ring->map_size = static_cast<size_t>(config_.block_size) * config_.block_count;
  void* m = mmap(nullptr, ring->map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, ring->fd, 0);
  if (m == MAP_FAILED) {
    m = mmap(nullptr, ring->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, ring->fd, 0);
  }
  if (m == MAP_FAILED) return ResourceExhaustedError(ErrnoText("mmap ring"));
  ring->map = static_cast<uint8_t*>(m);
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = ifindex;
  if (bind(ring->fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return UnavailableError(ErrnoText(("bind " + ifname).c_str()));
  }
  if (config_.fanout_group != 0) {
    // Fanout groups are per device: derive the id from the configured group and the ifindex.
    uint32_t id = (config_.fanout_group + static_cast<uint32_t>(ifindex)) & 0xFFFF;
    uint32_t arg = id | (static_cast<uint32_t>(PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
    if (setsockopt(ring->fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof(arg)) != 0) {
      return InvalidArgumentError(ErrnoText("PACKET_FANOUT"));
    }
  }
  *out = std::move(ring);
  return Status::Ok();
}

void AfPacketSource::Rescan() {
  if (all_netns_) ScanNamespaces();
  for (const Namespace& ns : namespaces_) {
    if (ns.fd >= 0) {
      // 'any' needs one visit per namespace; interface globs need one per rescan.
      bool have = false;
      for (const auto& r : rings_) have = have || r->netns_inode == ns.inode;
      if (any_ && have) continue;
      if (setns(ns.fd, CLONE_NEWNET) != 0) {
        SONDE_LOG_EVERY(warn, "afpacket: cannot enter netns {}: {}", ns.path, std::strerror(errno));
        continue;
      }
    }
    RescanIn(ns);
  }
  if (all_netns_ && home_ns_fd_ >= 0 && setns(home_ns_fd_, CLONE_NEWNET) != 0) {
    SONDE_LOG_EVERY(warn, "afpacket: cannot return to the home netns: {}", std::strerror(errno));
  }
  open_sockets_.store(rings_.size(), std::memory_order_relaxed);
  namespace_count_.store(namespaces_.size(), std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(inodes_mu_);
  inodes_.clear();
  for (const Namespace& ns : namespaces_) inodes_.push_back(ns.inode);
}

std::vector<uint64_t> AfPacketSource::netns_inodes() const {
  std::lock_guard<std::mutex> lock(inodes_mu_);
  return inodes_;
}

void AfPacketSource::RescanIn(const Namespace& ns) {
  current_inode_ = ns.inode;
  if (any_) {
    bool have = false;
    for (const auto& r : rings_) have = have || r->netns_inode == ns.inode;
    if (!have) {
      std::unique_ptr<Ring> ring;
      Status s = OpenRing("any", 0, &ring);
      if (s.ok()) {
        rings_.push_back(std::move(ring));
      } else {
        SONDE_LOG_EVERY(warn, "afpacket: cannot open 'any' in netns {}: {}", ns.inode, s.ToString());
      }
    }
    return;
  }
  std::set<int> present;
  if (struct if_nameindex* list = if_nameindex(); list != nullptr) {
    for (struct if_nameindex* i = list; i->if_index != 0 && i->if_name != nullptr; ++i) {
      std::string name = i->if_name;
      if (!InterfaceMatches(config_.interfaces, name)) continue;
      present.insert(static_cast<int>(i->if_index));
      bool have = false;
      for (const auto& r : rings_) {
        have = have || (r->netns_inode == ns.inode && r->ifindex == static_cast<int>(i->if_index));
      }
      if (have) continue;
      std::unique_ptr<Ring> ring;
      Status s = OpenRing(name, static_cast<int>(i->if_index), &ring);
      if (s.ok()) {
        spdlog::info("afpacket: capturing on {} (ifindex {}, netns {})", name, i->if_index, ns.inode);
        rings_.push_back(std::move(ring));
      } else {
        SONDE_LOG_EVERY(warn, "afpacket: cannot capture on {}: {}", name, s.ToString());
      }
    }
    if_freenameindex(list);
  }
  // Interfaces of this namespace that disappeared (or whose socket broke) are closed.
  std::erase_if(rings_, [&](const std::unique_ptr<Ring>& r) {
    return r->netns_inode == ns.inode && (r->broken || present.count(r->ifindex) == 0);
  });
}

void AfPacketSource::ScanNamespaces() {
  // Every namespace someone can still reach: named ones and those of running processes.
  std::map<uint64_t, std::string> found;
  auto consider = [&](const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) found.emplace(static_cast<uint64_t>(st.st_ino), path);
  };
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
    consider(e.path().string());
  }
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    consider(e.path().string() + "/ns/net");
  }
  // Namespaces gone: release their sockets (which would otherwise keep them alive).
  std::erase_if(namespaces_, [&](Namespace& ns) {
    if (found.count(ns.inode) != 0) return false;
    std::erase_if(rings_, [&](const std::unique_ptr<Ring>& r) { return r->netns_inode == ns.inode; });
    if (ns.fd >= 0) close(ns.fd);
    spdlog::info("afpacket: netns {} gone, capture stopped there", ns.inode);
    return true;
  });
  for (const auto& [inode, path] : found) {
    bool known = false;
    for (const Namespace& ns : namespaces_) known = known || ns.inode == inode;
    if (known) continue;
    if (namespaces_.size() >= config_.max_namespaces) {
      SONDE_LOG_EVERY(warn, "afpacket: more than {} network namespaces; not capturing in {}",
                      config_.max_namespaces, path);
      break;
    }
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;  // the process exited meanwhile
    struct stat st {};
    if (fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_ino) != inode) {
      close(fd);  // pid reused by a process in another namespace: next scan sorts it out
      continue;
    }
    spdlog::info("afpacket: following netns {} ({})", inode, path);
    namespaces_.push_back(Namespace{inode, fd, path});
  }
}

void AfPacketSource::ReadKernelStats(Ring& ring) {
  tpacket_stats_v3 st{};
  socklen_t len = sizeof(st);
  // Reading resets the kernel counters, so we accumulate.
  if (getsockopt(ring.fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
    dropped_.fetch_add(st.tp_drops, std::memory_order_relaxed);
  }
}

void AfPacketSource::Drain(Ring& ring, EventSink& sink) {
  // A block's packets stay valid until the block goes back to the kernel: they reach the sink a
  // batch at a time (so it can look ahead), every batch before its block is released.
  PacketBatch batch(sink);
  for (uint32_t n = 0; n < ring.block_count; ++n) {
    auto* block = reinterpret_cast<tpacket_block_desc*>(ring.map + static_cast<size_t>(ring.next_block) * ring.block_size);
    if ((__atomic_load_n(&block->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) == 0) break;
    uint32_t count = block->hdr.bh1.num_pkts;
    uint32_t offset = block->hdr.bh1.offset_to_first_pkt;
    for (uint32_t i = 0; i < count && offset != 0 && offset < ring.block_size; ++i) {
      auto* hdr = reinterpret_cast<tpacket3_hdr*>(reinterpret_cast<uint8_t*>(block) + offset);
      auto* sll = reinterpret_cast<sockaddr_ll*>(reinterpret_cast<uint8_t*>(hdr) + TPACKET_ALIGN(sizeof(tpacket3_hdr)));
      PacketView v;
      v.timestamp_ns = static_cast<uint64_t>(hdr->tp_sec) * 1'000'000'000ull + hdr->tp_nsec;
      v.wire_length = hdr->tp_len;
      v.ifindex = static_cast<uint32_t>(sll->sll_ifindex);
      v.netns_inode = ring.netns_inode;
      // Cooked sockets: the packet starts at the network header; its type is sll_protocol.
      uint16_t proto = ntohs(sll->sll_protocol);
      bool known = true;
      if (proto == ETH_P_IP || proto == ETH_P_IPV6) {
        v.link_type = LinkType::kRaw;
      } else if (hdr->tp_mac != hdr->tp_net) {
        known = false;  // a link header we did not ask for
      } else {
        // ARP, LLDP, ...: nothing for flow tracking; give the block slot back quietly.
        if (hdr->tp_next_offset == 0) break;
        offset += hdr->tp_next_offset;
        continue;
      }
      uint64_t end = static_cast<uint64_t>(offset) + hdr->tp_mac + hdr->tp_snaplen;
      if (!known || end > ring.block_size) {
        malformed_.fetch_add(1, std::memory_order_relaxed);
      } else {
        v.data = std::span<const uint8_t>(reinterpret_cast<uint8_t*>(hdr) + hdr->tp_mac, hdr->tp_snaplen);
        events_.fetch_add(1, std::memory_order_relaxed);
        bytes_.fetch_add(hdr->tp_snaplen, std::memory_order_relaxed);
        batch.Add(v);
      }
      if (hdr->tp_next_offset == 0) break;
      offset += hdr->tp_next_offset;
    }
    batch.Flush();
    __atomic_store_n(&block->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    ring.next_block = (ring.next_block + 1) % ring.block_count;
  }
}

Status AfPacketSource::Run(EventSink& sink, const std::atomic<bool>& stop) {
  if (config_.frame_size == 0 || config_.block_size % config_.frame_size != 0 ||
      config_.block_size % static_cast<uint32_t>(getpagesize()) != 0 || config_.block_count == 0) {
    return InvalidArgumentError("afpacket: block_size must be a multiple of the page and frame size");
  }
  if (!config_.bpf_filter.empty()) {
    auto compiled = CompileCookedFilter(config_.bpf_filter);
    if (!compiled.ok()) return compiled.status();
    filter_ = std::move(compiled).value();
  }
  // Enter the target network namespace on this thread; sockets stay bound to it afterwards.
  int home_ns = -1;
  all_netns_ = config_.netns == "all";
  namespaces_.clear();
  if (all_netns_) {
    home_ns_fd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home_ns_fd_ < 0) return PermissionDeniedError(ErrnoText("open own netns"));
  } else if (!config_.netns.empty()) {
    std::string path = config_.netns.find('/') == std::string::npos ? "/run/netns/" + config_.netns
                                                                    : config_.netns;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NotFoundError(ErrnoText(("netns " + path).c_str()));
    home_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (setns(fd, CLONE_NEWNET) != 0) {
      Status s = PermissionDeniedError(ErrnoText(("setns " + path).c_str()));
      close(fd);
      if (home_ns >= 0) close(home_ns);
      return s;
    }
    close(fd);
  }
  if (!all_netns_) {
    struct stat st {};
    Namespace ns;
    if (stat("/proc/thread-self/ns/net", &st) == 0) ns.inode = st.st_ino;
    namespaces_.push_back(ns);
  }

  Rescan();
  Status result = Status::Ok();
  if (rings_.empty() && any_) result = UnavailableError("afpacket: no capture socket could be opened");
  uint64_t next_rescan = WallNs() + config_.rescan_interval_ms * 1'000'000ull;
  std::vector<pollfd> fds;
  while (result.ok() && !stop.load(std::memory_order_relaxed)) {
    fds.clear();
    for (const auto& r : rings_) fds.push_back(pollfd{r->fd, POLLIN | POLLERR, 0});
    int rc = fds.empty() ? (usleep(config_.poll_timeout_ms * 1000), 0)
                         : poll(fds.data(), fds.size(), static_cast<int>(config_.poll_timeout_ms));
    if (rc < 0 && errno != EINTR) {
      result = InternalError(ErrnoText("poll"));
      break;
    }
    for (size_t i = 0; i < rings_.size() && i < fds.size(); ++i) {
      if (fds[i].revents & (POLLERR | POLLNVAL)) rings_[i]->broken = true;
      Drain(*rings_[i], sink);
    }
    uint64_t now = WallNs();
    sink.OnIdle(now);
    if (now >= next_rescan) {
      for (const auto& r : rings_) ReadKernelStats(*r);
      Rescan();
      next_rescan = now + config_.rescan_interval_ms * 1'000'000ull;
    }
  }
  for (const auto& r : rings_) {
    Drain(*r, sink);
    ReadKernelStats(*r);
  }
  rings_.clear();
  for (const Namespace& ns : namespaces_) {
    if (ns.fd >= 0) close(ns.fd);
  }
  namespaces_.clear();
  if (home_ns_fd_ >= 0) {
    close(home_ns_fd_);
    home_ns_fd_ = -1;
  }
  open_sockets_.store(0, std::memory_order_relaxed);
  namespace_count_.store(0, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(inodes_mu_);
    inodes_.clear();
  }
  if (home_ns >= 0) {
    if (setns(home_ns, CLONE_NEWNET) != 0) spdlog::warn("afpacket: cannot return to the original netns");
    close(home_ns);
  }
  return result;
}

}  // namespace sonde::agent::capture
