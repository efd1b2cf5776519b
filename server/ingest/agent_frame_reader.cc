// ReadAgentFrame: a wire walk over AgentFrame/Batch with a full validity check of the records.
#include "server/ingest/agent_frame_reader.h"

#include <vector>

namespace sonde::server::ingest {

using storage::WireReader;

namespace {

constexpr uint32_t kRegisterField = 1, kHeartbeatField = 2, kBatchField = 3;  // AgentFrame
constexpr uint32_t kBatchSeqField = 1, kRecordsField = 2;                      // Batch

template <typename Message>
bool ParsePieces(const std::vector<std::string_view>& pieces, Message* m) {
  m->Clear();
  for (std::string_view p : pieces) {
    if (!m->MergeFromString(std::string(p))) return false;  // rare frames: a copy is fine
  }
  return true;
}

// Reads the pieces of one run of the same oneof field into *out (its body). Protobuf parses every
// occurrence, including those a later, different oneof field replaces, so each run is checked.
bool ReadBody(uint32_t field, const std::vector<std::string_view>& pieces, AgentFrameView* out) {
  out->batch_seq = 0;
  out->records = {};
  out->split.Clear();
  out->merged.clear();
  switch (field) {
    case kRegisterField:
      out->body = AgentFrameView::Body::kRegister;
      return ParsePieces(pieces, &out->register_);
    case kHeartbeatField:
      out->body = AgentFrameView::Body::kHeartbeat;
      return ParsePieces(pieces, &out->heartbeat);
    case kBatchField:
      break;
    default:
      out->body = AgentFrameView::Body::kNone;  // the caller answers "empty or unknown AgentFrame"
      return true;
  }
  out->body = AgentFrameView::Body::kBatch;
  std::vector<std::string_view> records;
  for (std::string_view piece : pieces) {
    WireReader b(piece);
    while (!b.done()) {
      uint32_t number, wire_type;
      if (!b.ReadTag(&number, &wire_type)) return false;
      if (number == kBatchSeqField && wire_type == WireReader::kVarint) {
        if (!b.ReadVarint(&out->batch_seq)) return false;
      } else if (number == kRecordsField && wire_type == WireReader::kLengthDelimited) {
        std::string_view v;
        if (!b.ReadLengthDelimited(&v)) return false;
        records.push_back(v);
      } else if (!b.SkipValue(number, wire_type)) {
        return false;
      }
    }
  }
  if (records.size() == 1) {
    out->records = records[0];
  } else if (records.size() > 1) {
    // Each piece must be a RecordBatch on its own (a field cannot straddle two of them).
    for (std::string_view piece : records) {
      if (!storage::CheckRecordBatch(piece, &out->split)) return false;
      out->merged.append(piece);
    }
    out->records = out->merged;
  }
  return storage::CheckRecordBatch(out->records, &out->split);
}

}  // namespace

bool ReadAgentFrame(std::string_view payload, AgentFrameView* out) {
  // The occurrences of the oneof field seen last; a switch to another one checks and drops them.
  uint32_t current = 0;
  std::vector<std::string_view> pieces;
  WireReader r(payload);
  while (!r.done()) {
    uint32_t number, wire_type;
    if (!r.ReadTag(&number, &wire_type)) return false;
    if (number >= kRegisterField && number <= kBatchField && wire_type == WireReader::kLengthDelimited) {
      std::string_view v;
      if (!r.ReadLengthDelimited(&v)) return false;
      if (number != current) {
        if (current != 0 && !ReadBody(current, pieces, out)) return false;
        pieces.clear();
        current = number;
      }
      pieces.push_back(v);
    } else if (!r.SkipValue(number, wire_type)) {
      return false;
    }
  }
  return ReadBody(current, pieces, out);
}

}  // namespace sonde::server::ingest
