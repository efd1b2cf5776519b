// FrameParser<Traits>: the generic per-connection parser. Buffers each direction (bounded),
// resynchronises after gaps and garbage, parses frames through the protocol's Traits, and
// stitches them into records. See parser.h for the Traits contract.
#pragma once

#include <algorithm>
#include <concepts>
#include <deque>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "agent/protocols/common/connection_parser.h"
#include "agent/protocols/common/frame_meta.h"
#include "agent/protocols/common/parser.h"

namespace sonde::agent::protocols {

template <typename Traits>
class FrameParser final : public ConnectionParser {
 public:
  using Frame = typename Traits::Frame;
  using State = typename Traits::State;

  // `counters` must outlive the parser.
  FrameParser(const ParserOptions& options, const ParserCounters* counters)
      : options_(options), counters_(counters) {}

  void OnData(flow::StreamDirection dir, const flow::StreamChunk& in) override {
    if (gave_up_) return;
    Direction& d = dirs_[static_cast<size_t>(dir)];
    const MessageType type =
        dir == flow::StreamDirection::kRequest ? MessageType::kRequest : MessageType::kResponse;
    // Optional Traits::Unwrap(type, bytes, gap, state, out) -> bool: a transport layer under the
    // frames (MySQL's compressed protocol). When it returns true, `out` replaces the chunk's
    // bytes (possibly empty while a wrapper packet is incomplete).
    flow::StreamChunk chunk = in;
    if constexpr (requires(std::string* o, State* s) {
                    { Traits::Unwrap(MessageType::kRequest, std::string_view{}, false, s, o) } -> std::same_as<bool>;
                  }) {
      unwrapped_.clear();
      const std::string_view bytes(reinterpret_cast<const char*>(in.data.data()), in.data.size());
      if (!in.is_datagram &&
          Traits::Unwrap(type, bytes, in.gap_bytes_before > 0, &state_, &unwrapped_)) {
        chunk.data = {reinterpret_cast<const uint8_t*>(unwrapped_.data()), unwrapped_.size()};
      }
    }
    if (chunk.gap_bytes_before > 0 && !chunk.is_datagram) {
      counters_->gaps->Inc();
      d.Clear();
      d.resync = true;
    }
    if (!chunk.is_datagram && d.size() + chunk.data.size() > options_.max_buffer_bytes) {
      counters_->buffer_overflows->Inc();
      d.Clear();
      d.resync = true;
      if (chunk.data.size() > options_.max_buffer_bytes) return;
    }
    if (chunk.is_datagram) d.Clear();
    // Protocols framed differently over UDP and TCP (DNS) opt in with a `bool datagram` member.
    if constexpr (requires { state_.datagram; }) state_.datagram = chunk.is_datagram;
    // Nothing buffered (the usual case): frames are parsed straight from the chunk and only an
    // incomplete tail is copied into the buffer.
    const bool in_place = d.size() == 0;
    if (in_place) {
      d.AttachInPlace(chunk);
    } else {
      d.Append(chunk);
    }
    ParseLoop(type, chunk.is_datagram, &d);
    if (chunk.is_datagram) {
      if (d.size() > 0) counters_->truncated_datagrams->Inc();
      d.Clear();
    }
    d.DetachInPlace();
  }

  void Stitch(const StitchContext& ctx, RecordBuffer* out) override {
    // Optional Traits::ParseTruncatedFrame(type, buf, frame, state): when the connection ends
    // with an incomplete frame left in a direction, the protocol may still make one frame of it
    // (a head cut short by the capture). Called once per direction, requests first.
    if constexpr (requires(std::string_view* b, Frame* f, State* s) {
                    Traits::ParseTruncatedFrame(MessageType::kRequest, b, f, s);
                  }) {
      if (ctx.connection_closed && !gave_up_) {
        for (size_t i = 0; i < 2; ++i) {
          Direction& d = dirs_[i];
          if (d.resync || d.size() == 0) continue;
          Frame frame{};
          std::string_view view = d.view();
          std::string_view rest = view;
          const ParseState s = Traits::ParseTruncatedFrame(
              i == 0 ? MessageType::kRequest : MessageType::kResponse, &rest, &frame, &state_);
          const size_t used = view.size() - std::min(view.size(), rest.size());
          if (s == ParseState::kSuccess && used > 0) {
            counters_->truncated_frames->Inc();
            d.Stamp(&frame, used);
            d.frames.push_back(std::move(frame));
          }
          d.Clear();
        }
      }
    }
    uint64_t unpaired = 0;
    StitchContext c = ctx;
    c.unpaired_responses = &unpaired;
    Traits::Stitch(&dirs_[0].frames, &dirs_[1].frames, &state_, c, out);
    if (unpaired > 0) counters_->unpaired_responses->Inc(unpaired);
    if (ctx.connection_closed) {
      // Nothing can pair with what is left.
      dirs_[0].frames.clear();
      dirs_[1].frames.clear();
    }
  }

  bool gave_up() const override { return gave_up_; }
  bool has_pending() const override {
    return !dirs_[0].frames.empty() || !dirs_[1].frames.empty();
  }

  bool idle() const override {
    // Optional Traits::kStatelessBetweenMessages (DNS): State holds nothing across messages.
    // Optional Traits::Idle(const State&) -> bool: the State is as a fresh parser's (HTTP/1
    // between exchanges).
    bool state_idle = false;
    if constexpr (requires { Traits::kStatelessBetweenMessages; }) {
      state_idle = Traits::kStatelessBetweenMessages;
    }
    if constexpr (requires(const State& s) {
                    { Traits::Idle(s) } -> std::same_as<bool>;
                  }) {
      state_idle = state_idle || Traits::Idle(state_);
    }
    if (!state_idle) return false;
    for (const Direction& d : dirs_) {
      if (d.size() > 0 || !d.frames.empty() || d.resync || d.failures > 0) return false;
    }
    return !gave_up_;
  }

  void Reset() override {
    // Optional State::Reset(): clears in place (a fresh State may allocate, e.g. a std::deque).
    if constexpr (requires { state_.Reset(); }) {
      state_.Reset();
    } else {
      state_ = State{};
    }
    for (Direction& d : dirs_) d.Reset();
    unwrapped_.clear();
    gave_up_ = false;
  }

  State* state() { return &state_; }

 private:
  // Where the bytes at a stream position came from.
  struct Marker {
    uint64_t pos = 0;  // stream position of the chunk's first byte in this buffer
    uint64_t timestamp_ns = 0;
    uint32_t tcp_seq = 0;
    uint32_t tid = 0;
    uint64_t syscall_trace_id = 0;
  };

  static constexpr size_t kKeptBufferBytes = 16 * 1024;

  struct Direction {
    std::string buf;
    size_t head = 0;        // bytes of buf already consumed
    uint64_t head_pos = 0;  // stream position of buf[head]
    FrameQueue<Marker> markers;
    FrameQueue<Frame> frames;
    bool resync = false;
    uint32_t failures = 0;

    // While `in_place`, the unconsumed bytes are `ext` (a view of the chunk being handled) and
    // buf is empty; DetachInPlace copies what is left into buf before the chunk goes away.
    std::string_view ext;
    bool in_place = false;

    size_t size() const { return in_place ? ext.size() : buf.size() - head; }
    void Reset() {
      // A buffer that grew large is released; a small one is kept for the next connection.
      if (buf.capacity() > kKeptBufferBytes) {
        std::string().swap(buf);
      } else {
        buf.clear();
      }
      head = 0;
      head_pos = 0;
      markers.clear();
      frames.clear();
      ext = {};
      in_place = false;
      resync = false;
      failures = 0;
    }
    std::string_view view() const { return in_place ? ext : std::string_view(buf).substr(head); }

    void Clear() {
      head_pos += size();
      buf.clear();
      head = 0;
      markers.clear();
      ext = {};
    }
    void AttachInPlace(const flow::StreamChunk& c) {
      if (c.data.empty()) return;
      markers.push_back({head_pos, c.timestamp_ns, c.tcp_seq, c.tid, c.syscall_trace_id});
      ext = std::string_view(reinterpret_cast<const char*>(c.data.data()), c.data.size());
      in_place = true;
    }
    void DetachInPlace() {
      if (!in_place) return;
      in_place = false;
      buf.assign(ext);
      head = 0;
      ext = {};
    }
    void Append(const flow::StreamChunk& c) {
      if (c.data.empty()) return;
      markers.push_back({head_pos + size(), c.timestamp_ns, c.tcp_seq, c.tid, c.syscall_trace_id});
      buf.append(reinterpret_cast<const char*>(c.data.data()), c.data.size());
    }
    void Consume(size_t n) {
      n = std::min(n, size());
      head_pos += n;
      while (markers.size() > 1 && markers[1].pos <= head_pos) markers.pop_front();
      if (in_place) {
        ext.remove_prefix(n);
        if (ext.empty()) markers.clear();  // as below: the next bytes bring their own marker
        return;
      }
      head += n;
      if (head == buf.size()) {
        // Nothing left: the next bytes come with their own marker. Keeping the old front marker
        // here stamped the next frame with the previous chunk's timestamp.
        buf.clear();
        head = 0;
        markers.clear();
      } else if (head > 4096 && head > buf.size() / 2) {
        buf.erase(0, head);
        head = 0;
      }
    }
    // Fills the frame's metadata for a frame starting at the current head.
    void Stamp(Frame* f, size_t bytes) const {
      Marker m = markers.empty() ? Marker{} : markers.front();
      f->timestamp_ns = m.timestamp_ns;
      f->tcp_seq = m.tcp_seq == 0 ? 0 : static_cast<uint32_t>(m.tcp_seq + (head_pos - m.pos));
      f->frame_bytes = bytes;
      if constexpr (std::is_base_of_v<FrameMeta, Frame>) {
        f->tid = m.tid;
        f->syscall_trace_id = m.syscall_trace_id;
      }
    }
  };

  void ParseLoop(MessageType type, bool datagram, Direction* d) {
    // Every iteration consumes at least one byte or stops, so this loop is bounded.
    while (!gave_up_ && d->size() > 0) {
      std::string_view view = d->view();
      if (d->resync) {
        size_t b = Traits::FindFrameBoundary(type, view, 0, &state_);
        if (b == std::string_view::npos || b > view.size()) {
          counters_->resync_skipped_bytes->Inc(view.size());
          d->Clear();
          return;
        }
        counters_->resync_skipped_bytes->Inc(b);
        d->Consume(b);
        d->resync = false;
        continue;
      }
      // Parsed in place at the back of the queue (dropped again unless it becomes a frame):
      // building it aside and moving it in cost a move of every string member per frame.
      Frame& frame = d->frames.emplace_back();
      std::string_view rest = view;
      ParseState s = Traits::ParseFrame(type, &rest, &frame, &state_);
      size_t used = view.size() >= rest.size() ? view.size() - rest.size() : 0;
      if ((s == ParseState::kSuccess || s == ParseState::kIgnored) && used == 0) {
        s = ParseState::kInvalid;  // a parser that makes no progress is treated as invalid
      }
      if (s != ParseState::kSuccess) d->frames.pop_back();
      switch (s) {
        case ParseState::kNeedsMoreData:
          return;
        case ParseState::kInvalid: {
          counters_->invalid_frames->Inc();
          if (++d->failures >= options_.max_consecutive_failures) {
            counters_->gave_up->Inc();
            gave_up_ = true;
            return;
          }
          if (datagram) {
            d->Clear();
            return;
          }
          size_t b = Traits::FindFrameBoundary(type, view, 1, &state_);
          if (b == std::string_view::npos || b > view.size() || b == 0) b = view.size();
          counters_->resync_skipped_bytes->Inc(b);
          d->Consume(b);
          break;
        }
        case ParseState::kIgnored:
          d->failures = 0;
          d->Consume(used);
          break;
        case ParseState::kSuccess:
          d->failures = 0;
          d->Stamp(&frame, used);
          if (d->frames.size() > options_.max_pending_frames) {
            d->frames.pop_front();
            counters_->frames_dropped->Inc();
          }
          d->Consume(used);
          break;
      }
    }
  }

  ParserOptions options_;
  const ParserCounters* counters_;
  State state_{};
  Direction dirs_[2];
  std::string unwrapped_;  // Traits::Unwrap output for the chunk being handled
  bool gave_up_ = false;
};

}  // namespace sonde::agent::protocols
