// In-order delivery of one TCP direction with bounded out-of-order buffering.
#include "agent/flow/stream_reassembler.h"

#include <algorithm>

namespace sonde::agent::flow {

void StreamReassembler::InitAt(uint32_t seq) {
  initialized_ = true;
  next_seq_ = seq;
}

void StreamReassembler::DeliverAt(uint64_t timestamp_ns, uint64_t abs,
                                  std::span<const uint8_t> captured, uint32_t wire_bytes,
                                  const Deliver& deliver) {
  // Precondition: abs <= next_abs_ < abs + wire_bytes. Trim what was already delivered.
  uint64_t skip = next_abs_ - abs;
  uint32_t seq = next_seq_;
  std::span<const uint8_t> data =
      skip < captured.size() ? captured.subspan(static_cast<size_t>(skip)) : std::span<const uint8_t>();
  uint64_t advance = wire_bytes - skip;
  if (!data.empty()) {
    ReassembledChunk chunk{timestamp_ns, seq, data, pending_gap_};
    deliver(chunk);
    pending_gap_ = 0;
    delivered_bytes_ += data.size();
  }
  // The uncaptured tail (snap length) is a gap before the next chunk.
  uint64_t missing = advance - data.size();
  pending_gap_ += static_cast<uint32_t>(missing);
  gap_bytes_total_ += missing;
  next_abs_ += advance;
  next_seq_ += static_cast<uint32_t>(advance);
}

StreamReassembler::SegmentOutcome StreamReassembler::AddSegment(
    uint64_t timestamp_ns, uint32_t seq, std::span<const uint8_t> captured, uint32_t wire_bytes,
    uint32_t max_buffer_bytes, ReassemblyBudget* budget, const Deliver& deliver) {
  if (wire_bytes == 0) return SegmentOutcome::kOld;
  if (captured.size() > wire_bytes) captured = captured.first(wire_bytes);
  if (!initialized_) InitAt(seq);
  uint64_t abs = AbsOf(seq);
  if (abs + wire_bytes <= next_abs_) return SegmentOutcome::kOld;
  if (abs <= next_abs_) {
    DeliverAt(timestamp_ns, abs, captured, wire_bytes, deliver);
    Drain(budget, deliver);
    return SegmentOutcome::kDelivered;
  }
  // Ahead of the next expected byte: buffer if the bounds allow, else skip the hole now.
  if (!pending_) pending_ = std::make_unique<std::map<uint64_t, Pending>>();
  bool fits = buffered_bytes_ + captured.size() <= max_buffer_bytes &&
              (budget == nullptr || budget->used_bytes + captured.size() <= budget->max_total_bytes);
  if (!fits) {
    SkipToFirstPending(budget, deliver);  // deliver what we hold, with its gaps
    if (abs > next_abs_) {
      uint64_t gap = abs - next_abs_;
      pending_gap_ += static_cast<uint32_t>(gap);
      gap_bytes_total_ += gap;
      next_seq_ += static_cast<uint32_t>(gap);
      next_abs_ = abs;
    }
    if (abs + wire_bytes > next_abs_) DeliverAt(timestamp_ns, abs, captured, wire_bytes, deliver);
    Drain(budget, deliver);
    return SegmentOutcome::kForcedGap;
  }
  if (pending_->empty()) hole_since_ns_ = timestamp_ns;
  auto [it, inserted] = pending_->try_emplace(abs);
  if (inserted || it->second.wire_bytes < wire_bytes) {
    if (!inserted) {
      buffered_bytes_ -= it->second.data.size();
      if (budget) budget->used_bytes -= it->second.data.size();
    }
    it->second.timestamp_ns = timestamp_ns;
    it->second.wire_bytes = wire_bytes;
    it->second.data.assign(captured.begin(), captured.end());
    buffered_bytes_ += captured.size();
    if (budget) budget->used_bytes += captured.size();
  }
  return SegmentOutcome::kBuffered;
}

void StreamReassembler::Drain(ReassemblyBudget* budget, const Deliver& deliver) {
  if (!pending_) return;
  while (!pending_->empty()) {
    auto it = pending_->begin();
    if (it->first > next_abs_) break;
    Pending p = std::move(it->second);
    uint64_t abs = it->first;
    pending_->erase(it);
    buffered_bytes_ -= p.data.size();
    if (budget) budget->used_bytes -= p.data.size();
    if (abs + p.wire_bytes > next_abs_) {
      DeliverAt(p.timestamp_ns, abs, p.data, p.wire_bytes, deliver);
    }
  }
  if (!pending_->empty()) hole_since_ns_ = pending_->begin()->second.timestamp_ns;
}

void StreamReassembler::SkipToFirstPending(ReassemblyBudget* budget, const Deliver& deliver) {
  while (pending_ && !pending_->empty()) {
    uint64_t first = pending_->begin()->first;
    if (first > next_abs_) {
      uint64_t gap = first - next_abs_;
      pending_gap_ += static_cast<uint32_t>(gap);
      gap_bytes_total_ += gap;
      next_seq_ += static_cast<uint32_t>(gap);
      next_abs_ = first;
    }
    Drain(budget, deliver);
  }
}

void StreamReassembler::FlushHoles(uint64_t now_ns, uint64_t hole_timeout_ns,
                                   ReassemblyBudget* budget, const Deliver& deliver) {
  if (!pending_ || pending_->empty()) return;
  if (hole_timeout_ns != 0 && now_ns < hole_since_ns_ + hole_timeout_ns) return;
  SkipToFirstPending(budget, deliver);
}

}  // namespace sonde::agent::flow
