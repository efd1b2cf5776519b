// Per-syscall cost probe for the eBPF overhead benchmark: a forked child (so the agent's own-pid
// filter does not hide it) runs a tight loop of small write()+read() pairs and reports the mean
// CPU nanoseconds per syscall (user + kernel, including the BPF programs). Compared with and
// without the programs attached it gives the cost the tracepoints add to each traced syscall.
#pragma once

#include <cstdint>
#include <string_view>

namespace sonde::bench {

enum class SyscallTarget {
  kTcpLoopback,  // a connected 127.0.0.1 TCP pair: traced, payload captured
  kUdpLoopback,  // a connected 127.0.0.1 UDP pair: traced, payload captured
  kUnixSocket,   // socketpair(AF_UNIX): filtered in the kernel (not inet)
  kPipe,         // a pipe: filtered in the kernel (not a socket)
  kGetppid,      // getppid(): a syscall that is not traced at all (what every other syscall pays)
};

std::string_view TargetName(SyscallTarget t);

// Mean ns per syscall (write or read, `bytes` each) over `pairs` write+read pairs, measured in a
// forked child. Returns a negative value on failure.
double MeasureNsPerSyscall(SyscallTarget target, uint32_t pairs, uint32_t bytes);

}  // namespace sonde::bench
