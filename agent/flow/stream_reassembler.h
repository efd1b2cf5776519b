// StreamReassembler: one direction of a TCP connection turned into in-order bytes. Segments
// ahead of the next expected byte wait in a bounded buffer; when the buffer is full or a hole
// stays open too long, the hole is skipped and reported as gap_bytes_before on the next chunk.
#pragma once

#include <cstdint>
#include <type_traits>
#include <map>
#include <memory>
#include <span>
#include <vector>

namespace sonde::agent::flow {

struct ReassembledChunk {
  uint64_t timestamp_ns = 0;
  uint32_t tcp_seq = 0;
  std::span<const uint8_t> data;
  uint32_t gap_bytes_before = 0;
};

struct ReassemblyBudget {
  uint64_t max_total_bytes = 256ull << 20;  // shared by every reassembler using this budget
  uint64_t used_bytes = 0;
};

// A non-owning reference to a callable taking a ReassembledChunk: unlike std::function it never
// allocates, so building one per packet is free. The callable must outlive the call it is
// passed to (a lambda written in the argument list does).
class DeliverRef {
 public:
  template <typename F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, DeliverRef>)
  DeliverRef(F&& f)  // NOLINT(google-explicit-constructor): used like std::function
      : object_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* o, const ReassembledChunk& c) { (*static_cast<std::remove_reference_t<F>*>(o))(c); }) {}
  void operator()(const ReassembledChunk& c) const { call_(object_, c); }

 private:
  void* object_;
  void (*call_)(void*, const ReassembledChunk&);
};

class StreamReassembler {
 public:
  using Deliver = DeliverRef;
  enum class SegmentOutcome : uint8_t { kDelivered, kBuffered, kOld, kForcedGap };

  // The first byte of the stream is `seq` (the SYN's seq + 1).
  void InitAt(uint32_t seq);
  bool initialized() const { return initialized_; }

  // `wire_bytes` is the segment's payload length from its headers; `captured` may be shorter
  // (snap length): the missing tail becomes a gap. `max_buffer_bytes` bounds this direction.
  SegmentOutcome AddSegment(uint64_t timestamp_ns, uint32_t seq, std::span<const uint8_t> captured,
                            uint32_t wire_bytes, uint32_t max_buffer_bytes,
                            ReassemblyBudget* budget, const Deliver& deliver);

  // Skips holes older than `hole_timeout_ns`; with hole_timeout_ns == 0 flushes everything.
  void FlushHoles(uint64_t now_ns, uint64_t hole_timeout_ns, ReassemblyBudget* budget,
                  const Deliver& deliver);

  size_t buffered_bytes() const { return buffered_bytes_; }
  uint64_t delivered_bytes() const { return delivered_bytes_; }
  uint64_t gap_bytes() const { return gap_bytes_total_; }

 private:
  struct Pending {
    uint64_t timestamp_ns = 0;
    uint32_t wire_bytes = 0;
    std::vector<uint8_t> data;
  };
  uint64_t AbsOf(uint32_t seq) const {
    return next_abs_ + static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(seq - next_seq_)));
  }
  void DeliverAt(uint64_t timestamp_ns, uint64_t abs, std::span<const uint8_t> captured,
                 uint32_t wire_bytes, const Deliver& deliver);
  void Drain(ReassemblyBudget* budget, const Deliver& deliver);
  void SkipToFirstPending(ReassemblyBudget* budget, const Deliver& deliver);

  bool initialized_ = false;
  uint32_t next_seq_ = 0;        // sequence number of the next byte to deliver
  uint64_t next_abs_ = 1u << 31; // the same position as a 64-bit offset (never wraps)
  uint32_t pending_gap_ = 0;     // bytes skipped since the last delivered chunk
  uint64_t hole_since_ns_ = 0;
  size_t buffered_bytes_ = 0;
  uint64_t delivered_bytes_ = 0;
  uint64_t gap_bytes_total_ = 0;
  std::unique_ptr<std::map<uint64_t, Pending>> pending_;  // allocated on first out-of-order data
};

}  // namespace sonde::agent::flow
