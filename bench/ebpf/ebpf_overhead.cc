// eBPF overhead benchmark, side by side without and with the eBPF source + socket tracker +
// L7 analyzer running in this process: (1) ns added per traced syscall (tight write/read loops
// in a child on TCP/UDP loopback, and on a unix socket and a pipe that the kernel filters out,
// and what an untraced syscall pays), (2) wrk against a local nginx: throughput ratio, added
// mean latency, agent CPU per 1000 requests. Beside the agent, the same measurements with empty
// programs on the hooks (floor.bpf.c): the share of the cost no tracer on these hooks can avoid.
// Needs root, nginx and wrk.
//   ebpf_overhead [seconds=5] [connections=16] [rounds=3]
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include "agent/capture/ebpf/ebpf_source.h"
#include "agent/capture/ebpf/socket_tracker.h"
#include "agent/protocols/common/l7_analyzer.h"
#include "bench/ebpf/syscall_cost.h"

#ifdef SONDE_HAVE_FLOOR_SKELETON
#include <bpf/libbpf.h>

#include "floor.skel.h"
#endif

extern char** environ;

namespace {

using namespace sonde::agent;
namespace fs = std::filesystem;
constexpr uint16_t kPort = 17281;

struct WrkResult {
  double requests = 0, seconds = 0, rps = 0, latency_us = 0;
};

double ToMicros(double v, const std::string& unit) {
  if (unit == "ms") return v * 1000;
  if (unit == "s") return v * 1e6;
  return v;  // us
}

WrkResult RunWrk(int seconds, int connections) {
  const std::string cmd = "wrk -t1 -c" + std::to_string(connections) + " -d" + std::to_string(seconds) +
                          "s http://127.0.0.1:" + std::to_string(kPort) + "/index.html 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (p && fgets(buf, sizeof(buf), p)) out += buf;
  if (p) pclose(p);
  WrkResult r;
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"((\d+) requests in ([\d.]+)(ms|s|m))"))) {
    r.requests = std::stod(m[1]);
    r.seconds = std::stod(m[2]) * (m[3] == "ms" ? 0.001 : m[3] == "m" ? 60 : 1);
    r.rps = r.requests / r.seconds;
  }
  if (std::regex_search(out, m, std::regex(R"(Latency\s+([\d.]+)(us|ms|s))"))) {
    r.latency_us = ToMicros(std::stod(m[1]), m[2]);
  }
  if (r.requests == 0) std::fprintf(stderr, "wrk output not understood:\n%s\n", out.c_str());
  return r;
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

bool WaitForPort(uint16_t port) {
  for (int i = 0; i < 100; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

struct Traced {
  std::unique_ptr<capture::EbpfSource> source;
  std::unique_ptr<protocols::L7Analyzer> analyzer;
  std::unique_ptr<metadata::ProcessCache> processes;
  std::unique_ptr<tracing::SyscallTraceIds> trace_ids;
  std::unique_ptr<capture::SocketTracker> tracker;
  std::atomic<bool> stop{false};
  std::thread thread;

  ~Traced() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
};

// The agent's eBPF pipeline (as in sonde-agent live mode, records dropped instead of exported).
std::unique_ptr<Traced> StartAgent() {
  auto created = capture::EbpfSource::Create({});
  if (!created.ok()) {
    std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
    return nullptr;
  }
  auto t = std::make_unique<Traced>();
  t->source = std::move(created).value();
  t->analyzer = std::make_unique<protocols::L7Analyzer>(nullptr, nullptr);
  t->processes = std::make_unique<metadata::ProcessCache>();
  t->trace_ids = std::make_unique<tracing::SyscallTraceIds>();
  t->tracker = std::make_unique<capture::SocketTracker>(*t->analyzer, t->processes.get(), t->trace_ids.get(), nullptr);
  capture::EbpfSource* source = t->source.get();
  t->tracker->SetIgnoreHook([source](uint32_t pid, int32_t fd, uint64_t generation) {
    (void)source->IgnoreConnection(pid, fd, generation).ok();
  });
  Traced* raw = t.get();
  t->thread = std::thread([raw] { (void)raw->source->Run(*raw->tracker, raw->stop).ok(); });
  return t;
}

// Empty programs on one kind of hook; detached when destroyed.
enum class Floor { kRawExit, kTracepoints };

struct FloorLinks {
#ifdef SONDE_HAVE_FLOOR_SKELETON
  floor_bpf* skel = nullptr;
  std::vector<bpf_link*> links;
  ~FloorLinks() {
    for (bpf_link* l : links) bpf_link__destroy(l);
    if (skel) floor_bpf__destroy(skel);
  }
#endif
};

std::unique_ptr<FloorLinks> StartFloor(Floor floor) {
#ifdef SONDE_HAVE_FLOOR_SKELETON
  auto f = std::make_unique<FloorLinks>();
  f->skel = floor_bpf__open_and_load();
  if (!f->skel) return nullptr;
  if (floor == Floor::kRawExit) {
    bpf_link* l = bpf_program__attach(f->skel->progs.floor_exit);
    if (!l) return nullptr;
    f->links.push_back(l);
    return f;
  }
  for (const char* name : {"read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg",
                           "recvmmsg", "sendmmsg", "sendfile64", "connect", "accept", "accept4", "close",
                           "shutdown"}) {
    for (bool enter : {true, false}) {
      const std::string tp = std::string(enter ? "sys_enter_" : "sys_exit_") + name;
      bpf_link* l = bpf_program__attach_tracepoint(enter ? f->skel->progs.floor_tp_enter : f->skel->progs.floor_tp_exit,
                                                   "syscalls", tp.c_str());
      if (!l) return nullptr;
      f->links.push_back(l);
    }
  }
  return f;
#else
  (void)floor;
  return nullptr;
#endif
}

constexpr sonde::bench::SyscallTarget kTargets[] = {
    sonde::bench::SyscallTarget::kTcpLoopback, sonde::bench::SyscallTarget::kUdpLoopback,
    sonde::bench::SyscallTarget::kUnixSocket, sonde::bench::SyscallTarget::kPipe,
    sonde::bench::SyscallTarget::kGetppid};
constexpr size_t kNumTargets = sizeof(kTargets) / sizeof(kTargets[0]);

// Best (lowest) of `rounds` runs per target: the loop is deterministic, noise only adds.
void MeasureSyscalls(int rounds, double out[kNumTargets]) {
  for (size_t i = 0; i < kNumTargets; ++i) {
    out[i] = 1e18;
    for (int r = 0; r < rounds; ++r) {
      const double ns = sonde::bench::MeasureNsPerSyscall(kTargets[i], 200000, 64);
      if (ns > 0 && ns < out[i]) out[i] = ns;
    }
  }
}

}  // namespace

// What runs beside the workload in one measurement.
enum class Variant { kBaseline, kFloorRawExit, kFloorTracepoints, kAgent };
constexpr Variant kVariants[] = {Variant::kBaseline, Variant::kFloorRawExit, Variant::kFloorTracepoints,
                                 Variant::kAgent};
constexpr size_t kNumVariants = sizeof(kVariants) / sizeof(kVariants[0]);

const char* VariantName(Variant v) {
  switch (v) {
    case Variant::kBaseline: return "baseline (no eBPF)";
    case Variant::kFloorRawExit: return "floor: empty raw sys_exit";
    case Variant::kFloorTracepoints: return "floor: empty syscalls/*";
    case Variant::kAgent: return "sonde eBPF pipeline";
  }
  return "?";
}

// Starts what `v` runs; false when it cannot (the floor skeleton is optional).
struct Running {
  std::unique_ptr<Traced> agent;
  std::unique_ptr<FloorLinks> floor;
};
bool Start(Variant v, Running& r) {
  switch (v) {
    case Variant::kBaseline: return true;
    case Variant::kFloorRawExit: r.floor = StartFloor(Floor::kRawExit); return r.floor != nullptr;
    case Variant::kFloorTracepoints: r.floor = StartFloor(Floor::kTracepoints); return r.floor != nullptr;
    case Variant::kAgent: r.agent = StartAgent(); return r.agent != nullptr;
  }
  return false;
}

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 5;
  const int connections = argc > 2 ? std::atoi(argv[2]) : 16;
  const int rounds = argc > 3 ? std::max(1, std::atoi(argv[3])) : 3;

  // (1) Per-syscall cost, each variant in turn.
  double ns[kNumVariants][kNumTargets];
  bool have[kNumVariants] = {};
  for (size_t v = 0; v < kNumVariants; ++v) {
    Running running;
    have[v] = Start(kVariants[v], running);
    if (!have[v]) {
      if (kVariants[v] == Variant::kAgent) return 1;
      std::fprintf(stderr, "%s: not available, skipped\n", VariantName(kVariants[v]));
      continue;
    }
    MeasureSyscalls(rounds, ns[v]);
  }
  std::printf("ebpf overhead: per-syscall cost (64-byte write+read loops, best of %d x 200000 pairs), "
              "ns added per syscall over the baseline\n  %-16s %9s", rounds, "target", "baseline");
  for (size_t v = 1; v < kNumVariants; ++v) std::printf(" %26s", VariantName(kVariants[v]));
  std::printf("\n");
  for (size_t i = 0; i < kNumTargets; ++i) {
    std::printf("  %-16s %6.1f ns", std::string(sonde::bench::TargetName(kTargets[i])).c_str(), ns[0][i]);
    for (size_t v = 1; v < kNumVariants; ++v) {
      if (have[v]) {
        std::printf(" %23.1f ns", ns[v][i] - ns[0][i]);
      } else {
        std::printf(" %26s", "-");
      }
    }
    std::printf("\n");
  }
  std::fflush(stdout);
  if (seconds <= 0) return 0;

  // (2) wrk against nginx.
  const fs::path dir = fs::temp_directory_path() / ("sonde_ebpf_bench_" + std::to_string(getpid()));
  fs::create_directories(dir / "html");
  fs::permissions(dir, fs::perms::all);
  std::ofstream(dir / "html" / "index.html") << std::string(612, 'b');
  std::ofstream(dir / "nginx.conf") << "worker_processes 1;\ndaemon off;\npid " << dir.string()
                                    << "/nginx.pid;\nerror_log " << dir.string() << "/error.log;\n"
                                    << "events { worker_connections 1024; }\nhttp { access_log off;\n"
                                    << "  server { listen 127.0.0.1:" << kPort << "; root " << dir.string()
                                    << "/html; }\n}\n";
  std::string nginx_bin = "/usr/sbin/nginx", p_flag = "-p", p_dir = dir.string(), c_flag = "-c",
              conf = (dir / "nginx.conf").string();
  char* nginx_argv[] = {nginx_bin.data(), p_flag.data(), p_dir.data(), c_flag.data(), conf.data(), nullptr};
  pid_t nginx = -1;
  if (posix_spawn(&nginx, nginx_argv[0], nullptr, nullptr, nginx_argv, environ) != 0 || !WaitForPort(kPort)) {
    std::fprintf(stderr, "cannot start nginx\n");
    return 1;
  }

  RunWrk(1, connections);  // warm-up
  WrkResult sum[kNumVariants];
  double cpu = 0;
  uint64_t drops = 0;
  for (int r = 0; r < rounds; ++r) {
    std::string line = "  round " + std::to_string(r + 1) + ":";  // printed whole: logs interleave
    for (size_t v = 0; v < kNumVariants; ++v) {
      if (!have[v]) continue;
      Running running;
      if (!Start(kVariants[v], running)) continue;
      const double cpu0 = CpuSeconds();
      const WrkResult w = RunWrk(seconds, connections);
      if (running.agent) {
        cpu += CpuSeconds() - cpu0;
        running.agent->stop = true;
        running.agent->thread.join();
        const auto counters = running.agent->source->KernelCounters();
        drops += counters.size() > 1 ? counters[1] : 0;
      }
      line += "  " + std::string(VariantName(kVariants[v])) + " " + std::to_string(static_cast<long>(w.rps)) + " req/s";
      sum[v].requests += w.requests;
      sum[v].seconds += w.seconds;
      sum[v].latency_us += w.latency_us / rounds;
    }
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  auto rps = [&](size_t v) { return sum[v].seconds > 0 ? sum[v].requests / sum[v].seconds : 0; };
  const double base_rps = rps(0);
  std::printf("ebpf overhead: wrk -t1 -c%d, %d x %ds per variant against nginx (612-byte page)\n", connections,
              rounds, seconds);
  for (size_t v = 0; v < kNumVariants; ++v) {
    if (!have[v]) continue;
    std::printf("  %-27s %10.0f req/s  ratio %.3f  mean latency %8.1f us (%+.1f us)\n", VariantName(kVariants[v]),
                rps(v), base_rps > 0 ? rps(v) / base_rps : 0, sum[v].latency_us,
                sum[v].latency_us - sum[0].latency_us);
  }
  const size_t agent = kNumVariants - 1;
  std::printf("  throughput ratio (traced/baseline): %.3f\n", base_rps > 0 ? rps(agent) / base_rps : 0);
  std::printf("  added mean latency: %.1f us per request\n", sum[agent].latency_us - sum[0].latency_us);
  std::printf("  agent user-space CPU: %.3f s = %.2f ms per 1000 requests\n", cpu,
              sum[agent].requests > 0 ? cpu * 1000 / (sum[agent].requests / 1000) : 0);
  std::printf("  ring buffer drops %llu\n", static_cast<unsigned long long>(drops));
  std::printf("  ns per traced syscall (tcp loopback): %.1f\n", ns[agent][0] - ns[0][0]);

  kill(nginx, SIGTERM);
  waitpid(nginx, nullptr, 0);
  fs::remove_all(dir);
  return 0;
}
