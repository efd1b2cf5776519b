// Tight write()/read() loop in a child process, timed in thread CPU time.
#include "bench/ebpf/syscall_cost.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace sonde::bench {
namespace {

// CPU time of this thread: on a busy machine wall time mostly measures the run queue.
uint64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// A connected pair of inet sockets on loopback; false on failure.
bool InetPair(int type, int fds[2]) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (type == SOCK_STREAM) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return false;
    }
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fds[0], reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return false;
    fds[1] = accept(lfd, nullptr, nullptr);
    close(lfd);
    int one = 1;
    setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fds[1] >= 0;
  }
  fds[0] = socket(AF_INET, SOCK_DGRAM, 0);
  fds[1] = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in b = a;
  if (bind(fds[1], reinterpret_cast<sockaddr*>(&b), sizeof(b)) != 0 ||
      getsockname(fds[1], reinterpret_cast<sockaddr*>(&b), &len) != 0 ||
      bind(fds[0], reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fds[0], reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return false;
  }
  return connect(fds[0], reinterpret_cast<sockaddr*>(&b), sizeof(b)) == 0 &&
         connect(fds[1], reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
}

// Two getppid() per pair, so the result compares with the write+read loops.
double UntracedLoop(uint32_t pairs) {
  for (uint32_t i = 0; i < 2000; ++i) syscall(SYS_getppid);
  const uint64_t t0 = NowNs();
  for (uint32_t i = 0; i < 2 * pairs; ++i) syscall(SYS_getppid);
  return static_cast<double>(NowNs() - t0) / (2.0 * pairs);
}

double ChildLoop(SyscallTarget target, uint32_t pairs, uint32_t bytes) {
  if (target == SyscallTarget::kGetppid) return UntracedLoop(pairs);
  int fds[2] = {-1, -1};
  bool ok = false;
  switch (target) {
    case SyscallTarget::kTcpLoopback: ok = InetPair(SOCK_STREAM, fds); break;
    case SyscallTarget::kUdpLoopback: ok = InetPair(SOCK_DGRAM, fds); break;
    case SyscallTarget::kUnixSocket: ok = socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0; break;
    case SyscallTarget::kPipe: {
      int p[2];
      ok = pipe(p) == 0;
      fds[0] = p[1];  // write end
      fds[1] = p[0];  // read end
      break;
    }
    case SyscallTarget::kGetppid: break;
  }
  if (!ok) return -1;
  std::vector<char> buf(bytes, 'x');
  // Warm-up, then the timed loop. Each read gets exactly what the write before it sent.
  for (uint32_t i = 0; i < 1000; ++i) {
    if (write(fds[0], buf.data(), bytes) != static_cast<ssize_t>(bytes)) return -1;
    if (read(fds[1], buf.data(), bytes) != static_cast<ssize_t>(bytes)) return -1;
  }
  const uint64_t t0 = NowNs();
  for (uint32_t i = 0; i < pairs; ++i) {
    if (write(fds[0], buf.data(), bytes) != static_cast<ssize_t>(bytes)) return -1;
    if (read(fds[1], buf.data(), bytes) != static_cast<ssize_t>(bytes)) return -1;
  }
  const uint64_t elapsed = NowNs() - t0;
  return static_cast<double>(elapsed) / (2.0 * pairs);
}

}  // namespace

std::string_view TargetName(SyscallTarget t) {
  switch (t) {
    case SyscallTarget::kTcpLoopback: return "tcp loopback";
    case SyscallTarget::kUdpLoopback: return "udp loopback";
    case SyscallTarget::kUnixSocket: return "unix socketpair";
    case SyscallTarget::kPipe: return "pipe";
    case SyscallTarget::kGetppid: return "getppid";
  }
  return "?";
}

double MeasureNsPerSyscall(SyscallTarget target, uint32_t pairs, uint32_t bytes) {
  int result[2];
  if (pipe(result) != 0) return -1;
  pid_t child = fork();
  if (child < 0) return -1;
  if (child == 0) {
    close(result[0]);
    // One CPU for the loop (the agent's reader runs on the other): loopback TCP otherwise runs
    // its receive path on whichever CPU, and the loop's cost swings by more than what is measured.
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(0, &cpus);
    sched_setaffinity(0, sizeof(cpus), &cpus);
    double ns = ChildLoop(target, pairs, bytes);
    if (write(result[1], &ns, sizeof(ns)) != sizeof(ns)) _exit(1);
    _exit(0);
  }
  close(result[1]);
  double ns = -1;
  if (read(result[0], &ns, sizeof(ns)) != sizeof(ns)) ns = -1;
  close(result[0]);
  waitpid(child, nullptr, 0);
  return ns;
}

}  // namespace sonde::bench
