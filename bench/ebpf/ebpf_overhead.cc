// eBPF overhead benchmark: wrk against a local nginx, first without and then with the eBPF
// source + socket tracker running in this process. Prints the throughput ratio, the added mean
// latency and the agent's CPU per 1000 requests. Needs root, nginx and wrk.
//   ebpf_overhead [seconds=5] [connections=16]
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include "agent/capture/ebpf/ebpf_source.h"
#include "agent/capture/ebpf/socket_tracker.h"

extern char** environ;

namespace {

using namespace sonde::agent;
namespace fs = std::filesystem;
constexpr uint16_t kPort = 17281;

class CountingHandler : public flow::StreamHandler {
 public:
  void OnData(const flow::ConnectionInfo&, flow::StreamDirection, const flow::StreamChunk& c) override {
    ++chunks;
    bytes += c.data.size();
  }
  void OnClose(const flow::ConnectionInfo&, uint64_t) override { ++closes; }
  void OnTick(uint64_t) override {}
  sonde::common::v1::L7Protocol ProtocolOf(uint64_t) const override {
    return sonde::common::v1::L7_PROTOCOL_UNKNOWN;
  }
  uint64_t chunks = 0, bytes = 0, closes = 0;
};

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

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 5;
  const int connections = argc > 2 ? std::atoi(argv[2]) : 16;
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
  const WrkResult base = RunWrk(seconds, connections);

  auto source = capture::EbpfSource::Create({});
  if (!source.ok()) {
    std::fprintf(stderr, "%s\n", source.status().ToString().c_str());
    kill(nginx, SIGTERM);
    waitpid(nginx, nullptr, 0);
    fs::remove_all(dir);
    return 1;
  }
  CountingHandler handler;
  sonde::agent::metadata::ProcessCache processes;
  sonde::agent::tracing::SyscallTraceIds trace_ids;
  capture::SocketTracker tracker(handler, &processes, &trace_ids, nullptr);
  std::atomic<bool> stop{false};
  std::thread agent([&] { (void)(*source)->Run(tracker, stop).ok(); });
  const double cpu0 = CpuSeconds();
  const WrkResult traced = RunWrk(seconds, connections);
  const double cpu = CpuSeconds() - cpu0;
  stop = true;
  agent.join();
  const auto counters = (*source)->KernelCounters();

  std::printf("ebpf overhead: wrk -t1 -c%d -d%ds against nginx (612-byte page)\n", connections, seconds);
  std::printf("  baseline : %10.0f req/s  mean latency %8.1f us\n", base.rps, base.latency_us);
  std::printf("  with eBPF: %10.0f req/s  mean latency %8.1f us\n", traced.rps, traced.latency_us);
  std::printf("  throughput ratio (traced/baseline): %.3f\n", base.rps > 0 ? traced.rps / base.rps : 0);
  std::printf("  added mean latency: %.1f us\n", traced.latency_us - base.latency_us);
  std::printf("  agent user-space CPU: %.3f s = %.2f ms per 1000 requests\n", cpu,
              traced.requests > 0 ? cpu * 1000 / (traced.requests / 1000) : 0);
  std::printf("  chunks delivered %llu, ring buffer drops %llu\n", static_cast<unsigned long long>(handler.chunks),
              static_cast<unsigned long long>(counters.size() > 1 ? counters[1] : 0));

  kill(nginx, SIGTERM);
  waitpid(nginx, nullptr, 0);
  fs::remove_all(dir);
  return 0;
}
