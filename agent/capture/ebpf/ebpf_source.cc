// EbpfSource: loads socket_trace.bpf.o (skeleton), attaches tracepoints and OpenSSL uprobes,
// and turns ring buffer records into EventSink calls.
#include "agent/capture/ebpf/ebpf_source.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <utility>

#include "common/log/log.h"

#ifdef SONDE_HAVE_BPF_SKELETON
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent/bpf/shared/socket_trace.h"
#include "agent/bpf/socket_trace.skel.h"
#endif

namespace sonde::agent::capture {
namespace {

// Records handled before Run looks at its timers again.
[[maybe_unused]] constexpr size_t kRecordsPerRound = 8192;

[[maybe_unused]] uint64_t ClockNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

#ifdef SONDE_HAVE_BPF_SKELETON

namespace {

constexpr const char* kStatNames[SONDE_STAT_COUNT] = {
    "events", "ringbuf_full", "args_map_full", "conn_map_full", "not_socket",
    "ignored_conn", "truncated", "read_failed", "tls_ciphertext", "tls_events",
    "sendfile_bytes", "peer_from_msg"};

net::FiveTuple ToTuple(const sonde_sock_addr& a) {
  net::FiveTuple t;
  if (a.family == 2 /* AF_INET */) {
    uint32_t l, r;
    std::memcpy(&l, a.local_addr, 4);
    std::memcpy(&r, a.remote_addr, 4);
    t.src_ip = net::IpAddress::V4(ntohl(l));
    t.dst_ip = net::IpAddress::V4(ntohl(r));
  } else {
    t.src_ip = net::IpAddress::V6(a.local_addr);
    t.dst_ip = net::IpAddress::V6(a.remote_addr);
  }
  t.src_port = a.local_port;
  t.dst_port = a.remote_port;
  t.protocol = a.protocol == 17 ? net::IpProtocol::kUdp : net::IpProtocol::kTcp;
  return t;
}

SocketRole ToRole(uint8_t role) {
  return role == SONDE_ROLE_CLIENT   ? SocketRole::kClient
         : role == SONDE_ROLE_SERVER ? SocketRole::kServer
                                     : SocketRole::kUnknown;
}

std::string_view CommOf(const sonde_event_header& h) {
  return std::string_view(h.comm, strnlen(h.comm, sizeof(h.comm)));
}

uint32_t RoundUpPow2(uint32_t v) {
  uint32_t p = 4096;
  while (p < v && p < (1u << 30)) p <<= 1;
  return p;
}

// libbpf finds tracepoint ids through tracefs; mount it when nobody has.
void EnsureTracefs() {
  struct stat st{};
  if (stat("/sys/kernel/tracing/events", &st) == 0 || stat("/sys/kernel/debug/tracing/events", &st) == 0) {
    return;
  }
  if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nullptr) != 0) {
    spdlog::warn("ebpf: tracefs is not mounted and mounting it failed: {}", strerror(errno));
  }
}

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[512];
  int n = vsnprintf(buf, sizeof(buf), fmt, args);
  std::string_view line(buf, n > 0 ? std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1) : 0);
  while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  SONDE_LOG_EVERY(debug, "libbpf: {}", line);
  return 0;
}

}  // namespace

struct EbpfSource::Impl {
  EbpfSourceConfig config;
  socket_trace_bpf* skel = nullptr;
  ring_buffer* rb = nullptr;
  uint64_t mono_to_wall_ns = 0;
  int ncpus = 1;

  EventSink* sink = nullptr;
  SourceStats stats;
  std::vector<uint64_t> last_kernel;
  std::vector<metrics::Counter*> kernel_counters;
  metrics::Counter* events_counter = nullptr;
  metrics::Counter* malformed_counter = nullptr;

  std::set<std::pair<uint64_t, uint64_t>> tls_files;  // (dev, inode) of probed libssl copies
  std::vector<bpf_link*> tls_links;

  ~Impl() {
    for (bpf_link* l : tls_links) bpf_link__destroy(l);
    if (rb) ring_buffer__free(rb);
    if (skel) socket_trace_bpf__destroy(skel);
  }

  int OnRecord(const void* data, size_t size) {
    if (size < sizeof(sonde_event_header)) {
      ++stats.malformed;
      return 0;
    }
    const auto* h = static_cast<const sonde_event_header*>(data);
    if (h->kind == SONDE_EVENT_DATA && size >= sizeof(sonde_data_event)) {
      const auto* d = static_cast<const sonde_data_event*>(data);
      size_t captured = std::min<size_t>(d->captured_bytes, size - sizeof(sonde_data_event));
      SocketDataEvent ev;
      ev.timestamp_ns = h->timestamp_ns + mono_to_wall_ns;
      ev.pid = h->pid;
      ev.tid = h->tid;
      ev.fd = h->fd;
      ev.conn_generation = h->conn_generation;
      ev.direction = d->direction == SONDE_DIR_EGRESS ? SocketDirection::kEgress : SocketDirection::kIngress;
      ev.total_bytes = d->total_bytes;
      ev.tcp_seq = d->has_seq ? d->tcp_seq : 0;
      ev.is_tls_plaintext = d->source == SONDE_SRC_TLS;
      ev.is_sendfile = d->source == SONDE_SRC_SENDFILE;
      ev.comm = CommOf(*h);
      ev.data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(d + 1), captured);
      ev.tuple = ToTuple(h->addr);
      ev.role = ToRole(h->addr.role);
      ++stats.events;
      stats.bytes += d->total_bytes;
      sink->OnSocketData(ev);
      return 0;
    }
    if (h->kind == SONDE_EVENT_CONTROL && size >= sizeof(sonde_control_event)) {
      const auto* c = static_cast<const sonde_control_event*>(data);
      SocketControlEvent ev;
      switch (c->control) {
        case SONDE_CTL_CONNECT: ev.kind = SocketControlEvent::Kind::kConnect; break;
        case SONDE_CTL_ACCEPT: ev.kind = SocketControlEvent::Kind::kAccept; break;
        case SONDE_CTL_CLOSE: ev.kind = SocketControlEvent::Kind::kClose; break;
        case SONDE_CTL_SHUTDOWN: ev.kind = SocketControlEvent::Kind::kShutdown; break;
        case SONDE_CTL_EXIT: ev.kind = SocketControlEvent::Kind::kProcessExit; break;
        default: ++stats.malformed; return 0;
      }
      ev.shutdown_how = static_cast<int32_t>(c->arg);
      ev.comm = CommOf(*h);
      if (ev.kind != SocketControlEvent::Kind::kProcessExit) {
        ev.tuple = ToTuple(h->addr);
        ev.role = ToRole(h->addr.role);
      }
      ev.timestamp_ns = h->timestamp_ns + mono_to_wall_ns;
      ev.pid = h->pid;
      ev.tid = h->tid;
      ev.fd = h->fd;
      ev.conn_generation = h->conn_generation;
      ++stats.events;
      sink->OnSocketControl(ev);
      return 0;
    }
    ++stats.malformed;
    return 0;
  }

  // libbpf drains the ring until it is empty, which under a steady flood never happens: after
  // a budget of records the callback returns kBudgetSpent (the record itself is consumed) so Run
  // gets back to its timers (OnIdle, counters, TLS rescans) in between.
  static constexpr int kBudgetSpent = -EALREADY;
  size_t budget = 0;

  static int HandleRecord(void* ctx, void* data, size_t size) {
    Impl* self = static_cast<Impl*>(ctx);
    self->OnRecord(data, size);
    if (self->budget > 0 && --self->budget == 0) return kBudgetSpent;
    return 0;
  }

  std::vector<uint64_t> ReadKernelCounters() const {
    std::vector<uint64_t> totals(SONDE_STAT_COUNT, 0);
    std::vector<uint64_t> percpu(static_cast<size_t>(ncpus));
    int fd = bpf_map__fd(skel->maps.stats);
    for (uint32_t i = 0; i < SONDE_STAT_COUNT; ++i) {
      if (bpf_map_lookup_elem(fd, &i, percpu.data()) != 0) continue;
      for (uint64_t v : percpu) totals[i] += v;
    }
    return totals;
  }

  void PublishKernelCounters() {
    std::vector<uint64_t> now = ReadKernelCounters();
    uint64_t dropped = now[SONDE_STAT_RINGBUF_DROPS] + now[SONDE_STAT_ARGS_MAP_FULL] + now[SONDE_STAT_CONN_MAP_FULL];
    stats.dropped = dropped;
    if (!kernel_counters.empty()) {
      for (size_t i = 0; i < now.size(); ++i) {
        if (now[i] > last_kernel[i]) kernel_counters[i]->Inc(now[i] - last_kernel[i]);
      }
    }
    last_kernel = std::move(now);
  }

  bool AttachTlsLibrary(const std::string& path) {
    struct Probe {
      bpf_program* prog;
      const char* func;
      bool ret;
    };
    const Probe probes[] = {
        {skel->progs.ssl_read_enter, "SSL_read", false},        {skel->progs.ssl_read_exit, "SSL_read", true},
        {skel->progs.ssl_write_enter, "SSL_write", false},      {skel->progs.ssl_write_exit, "SSL_write", true},
        {skel->progs.ssl_read_ex_enter, "SSL_read_ex", false},  {skel->progs.ssl_read_ex_exit, "SSL_read_ex", true},
        {skel->progs.ssl_write_ex_enter, "SSL_write_ex", false}, {skel->progs.ssl_write_ex_exit, "SSL_write_ex", true},
    };
    size_t attached = 0;
    for (const Probe& p : probes) {
      LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = p.ret, .func_name = p.func);
      bpf_link* link = bpf_program__attach_uprobe_opts(p.prog, -1, path.c_str(), 0, &opts);
      if (!link) continue;  // OpenSSL 1.0 has no *_ex
      tls_links.push_back(link);
      ++attached;
    }
    if (attached == 0) {
      SONDE_LOG_EVERY(warn, "ebpf: no OpenSSL uprobes attached to {}", path);
      return false;
    }
    skel->bss->have_tls = 1;  // the syscall program starts looking at SSL-call state
    spdlog::info("ebpf: TLS uprobes attached to {} ({} probes)", path, attached);
    return true;
  }

  size_t RescanTls() {
    DIR* proc = opendir("/proc");
    if (!proc) return tls_files.size();
    while (dirent* de = readdir(proc)) {
      char* end = nullptr;
      long pid = strtol(de->d_name, &end, 10);
      if (pid <= 0 || *end != '\0' || static_cast<uint32_t>(pid) == config.self_pid) continue;
      std::ifstream maps("/proc/" + std::string(de->d_name) + "/maps");
      std::string line;
      while (std::getline(maps, line)) {
        size_t slash = line.find('/');
        if (slash == std::string::npos || line.find("libssl.so", slash) == std::string::npos) continue;
        std::string lib = line.substr(slash);
        if (lib.size() > 10 && lib.ends_with(" (deleted)")) continue;
        // Through the process's root so libraries inside containers resolve.
        std::string path = "/proc/" + std::string(de->d_name) + "/root" + lib;
        struct stat st{};
        if (stat(path.c_str(), &st) != 0) continue;
        auto key = std::make_pair(static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino));
        if (tls_files.count(key)) break;
        tls_files.insert(key);  // also on failure: do not retry every scan
        AttachTlsLibrary(path);
        break;
      }
    }
    closedir(proc);
    return tls_files.size();
  }
};

StatusOr<std::unique_ptr<EbpfSource>> EbpfSource::Create(const EbpfSourceConfig& config_in) {
  EbpfSourceConfig config = config_in;
  if (config.self_pid == 0) config.self_pid = static_cast<uint32_t>(getpid());
  if (config.payload_bytes == 0) config.payload_bytes = 1;
  if (config.payload_bytes > SONDE_MAX_PAYLOAD) config.payload_bytes = SONDE_MAX_PAYLOAD;

  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
    return UnavailableError("eBPF unavailable: kernel BTF (/sys/kernel/btf/vmlinux) missing");
  }
  if (geteuid() != 0) {
    return PermissionDeniedError("eBPF unavailable: needs root (or CAP_BPF+CAP_PERFMON)");
  }
  libbpf_set_print(LibbpfPrint);
  EnsureTracefs();

  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->ncpus = libbpf_num_possible_cpus();
  if (impl->ncpus <= 0) impl->ncpus = 1;
  impl->mono_to_wall_ns = ClockNs(CLOCK_REALTIME) - ClockNs(CLOCK_MONOTONIC);

  impl->skel = socket_trace_bpf__open();
  if (!impl->skel) return UnavailableError(std::string("eBPF unavailable: open failed: ") + strerror(errno));
  impl->skel->rodata->self_pid = config.self_pid;
  impl->skel->rodata->payload_cap = config.payload_bytes;
  bpf_map__set_max_entries(impl->skel->maps.scratch, static_cast<uint32_t>(impl->ncpus));
  const uint32_t ring_bytes = RoundUpPow2(config.ring_buffer_bytes);
  bpf_map__set_max_entries(impl->skel->maps.events, ring_bytes);
  impl->skel->rodata->wakeup_bytes = ring_bytes / 16;
  if (!config.trace_tls) {
    for (bpf_program* p : {impl->skel->progs.ssl_read_enter, impl->skel->progs.ssl_read_exit,
                           impl->skel->progs.ssl_write_enter, impl->skel->progs.ssl_write_exit,
                           impl->skel->progs.ssl_read_ex_enter, impl->skel->progs.ssl_read_ex_exit,
                           impl->skel->progs.ssl_write_ex_enter, impl->skel->progs.ssl_write_ex_exit}) {
      bpf_program__set_autoload(p, false);
    }
  }
  if (int err = socket_trace_bpf__load(impl->skel); err != 0) {
    return UnavailableError(std::string("eBPF unavailable: load failed (verifier or privilege): ") +
                            strerror(-err));
  }
  // Uprobes are attached per library by RescanTls.
  for (bpf_program* p : {impl->skel->progs.ssl_read_enter, impl->skel->progs.ssl_read_exit,
                         impl->skel->progs.ssl_write_enter, impl->skel->progs.ssl_write_exit,
                         impl->skel->progs.ssl_read_ex_enter, impl->skel->progs.ssl_read_ex_exit,
                         impl->skel->progs.ssl_write_ex_enter, impl->skel->progs.ssl_write_ex_exit}) {
    bpf_program__set_autoattach(p, false);
  }
  // The skeleton attaches the raw syscall-exit tracepoint program and the process-exit one.
  if (int err = socket_trace_bpf__attach(impl->skel); err != 0) {
    return UnavailableError(std::string("eBPF unavailable: attaching syscall tracepoints failed: ") +
                            strerror(-err));
  }
  impl->rb = ring_buffer__new(bpf_map__fd(impl->skel->maps.events), &Impl::HandleRecord, impl.get(), nullptr);
  if (!impl->rb) return UnavailableError(std::string("eBPF unavailable: ring buffer: ") + strerror(errno));

  impl->last_kernel.assign(SONDE_STAT_COUNT, 0);
  if (config.metrics) {
    for (uint32_t i = 0; i < SONDE_STAT_COUNT; ++i) {
      impl->kernel_counters.push_back(config.metrics->GetCounter(
          "sonde_agent_ebpf_kernel_total", "eBPF in-kernel event, drop and filter counters",
          {{"counter", kStatNames[i]}}));
    }
    impl->events_counter = config.metrics->GetCounter("sonde_agent_ebpf_events_read_total",
                                                      "eBPF records read from the ring buffer");
    impl->malformed_counter = config.metrics->GetCounter("sonde_agent_ebpf_malformed_total",
                                                         "eBPF records with an unknown layout");
  }
  if (config.trace_tls) impl->RescanTls();
  return std::unique_ptr<EbpfSource>(new EbpfSource(std::move(impl)));
}

Status EbpfSource::Run(EventSink& sink, const std::atomic<bool>& stop) {
  Impl& s = *impl_;
  s.sink = &sink;
  uint64_t last_idle = 0, last_stats = 0, last_tls = ClockNs(CLOCK_MONOTONIC);
  while (!stop.load(std::memory_order_relaxed)) {
    uint64_t before_events = s.stats.events, before_malformed = s.stats.malformed;
    // The kernel side only wakes us when the ring is filling up; otherwise drain on a timer.
    s.budget = kRecordsPerRound;
    int n = ring_buffer__poll(s.rb, 10 /* ms */);
    if (n >= 0) n = ring_buffer__consume(s.rb);
    if (n == Impl::kBudgetSpent) n = 0;
    if (n < 0 && n != -EINTR) {
      s.sink = nullptr;
      return InternalError(std::string("ebpf ring buffer poll: ") + strerror(-n));
    }
    if (s.events_counter) s.events_counter->Inc(s.stats.events - before_events);
    if (s.malformed_counter) s.malformed_counter->Inc(s.stats.malformed - before_malformed);
    uint64_t mono = ClockNs(CLOCK_MONOTONIC);
    if (mono - last_idle >= s.config.idle_interval_ns) {
      last_idle = mono;
      sink.OnIdle(mono + s.mono_to_wall_ns);
    }
    if (mono - last_stats >= 1'000'000'000) {
      last_stats = mono;
      s.PublishKernelCounters();
    }
    if (s.config.trace_tls && mono - last_tls >= s.config.tls_rescan_interval_ns) {
      last_tls = mono;
      s.RescanTls();
    }
  }
  // Drain what is already buffered so short runs (tests) see every event.
  s.budget = 0;
  ring_buffer__consume(s.rb);
  s.PublishKernelCounters();
  sink.OnIdle(ClockNs(CLOCK_REALTIME));
  s.sink = nullptr;
  return Status::Ok();
}

SourceStats EbpfSource::stats() const { return impl_->stats; }

Status EbpfSource::IgnoreConnection(uint32_t pid, int32_t fd, uint64_t generation) {
  uint64_t key = sonde_conn_key(pid, fd);
  impl_->skel->bss->have_ignored = 1;  // the kernel starts looking ignored connections up
  if (bpf_map_update_elem(bpf_map__fd(impl_->skel->maps.ignored_conns), &key, &generation, BPF_ANY) != 0) {
    return ResourceExhaustedError(std::string("ignored_conns map: ") + strerror(errno));
  }
  return Status::Ok();
}

std::vector<uint64_t> EbpfSource::KernelCounters() const { return impl_->ReadKernelCounters(); }

size_t EbpfSource::RescanTls() { return impl_->RescanTls(); }

#else  // !SONDE_HAVE_BPF_SKELETON

struct EbpfSource::Impl {};

StatusOr<std::unique_ptr<EbpfSource>> EbpfSource::Create(const EbpfSourceConfig&) {
  return UnavailableError("eBPF unavailable: this agent was built without BPF programs (bpftool/clang/BTF missing at build time)");
}
Status EbpfSource::Run(EventSink&, const std::atomic<bool>&) { return UnavailableError("eBPF unavailable"); }
SourceStats EbpfSource::stats() const { return {}; }
Status EbpfSource::IgnoreConnection(uint32_t, int32_t, uint64_t) { return UnavailableError("eBPF unavailable"); }
std::vector<uint64_t> EbpfSource::KernelCounters() const { return {}; }
size_t EbpfSource::RescanTls() { return 0; }

#endif  // SONDE_HAVE_BPF_SKELETON

EbpfSource::EbpfSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EbpfSource::~EbpfSource() = default;

}  // namespace sonde::agent::capture
