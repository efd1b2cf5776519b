// Per-frame bookkeeping every protocol frame carries; FrameParser fills it, stitchers read it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sonde::agent::protocols {

// Protocol frames may derive from FrameMeta (the Traits contract only requires timestamp_ns,
// tcp_seq and frame_bytes; deriving also carries the eBPF thread and syscall trace id).
// FrameParser overwrites these fields after each successful ParseFrame.
struct FrameMeta {
  uint64_t timestamp_ns = 0;      // capture time of the chunk holding the frame's first byte
  uint32_t tcp_seq = 0;           // TCP sequence number of the frame's first byte (0 if unknown)
  size_t frame_bytes = 0;         // bytes the frame occupied on the wire
  uint32_t tid = 0;               // eBPF: thread that did the I/O
  uint64_t syscall_trace_id = 0;  // eBPF: trace key of that syscall
};

}  // namespace sonde::agent::protocols
