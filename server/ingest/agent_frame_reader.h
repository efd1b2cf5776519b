// Reads an AgentFrame the way protobuf parses it, except that a Batch's records are only checked
// (never parsed into messages): the ingest server spools the agent's record bytes as they came.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "server/storage/record_batch_wire.h"
#include "sonde/control/v1/control.pb.h"

namespace sonde::server::ingest {

// One frame's body. Not copyable: `records` and `split` may point into `merged`.
struct AgentFrameView {
  enum class Body { kNone, kRegister, kHeartbeat, kBatch };

  AgentFrameView() = default;
  AgentFrameView(const AgentFrameView&) = delete;
  AgentFrameView& operator=(const AgentFrameView&) = delete;

  Body body = Body::kNone;
  control::v1::Register register_;   // kRegister (parsed: small)
  control::v1::Heartbeat heartbeat;  // kHeartbeat (parsed: small)
  uint64_t batch_seq = 0;            // kBatch
  // kBatch: the serialized RecordBatch (a view into the payload, or into `merged` when the frame
  // carried it in several pieces, which protobuf merges by concatenation) and its records.
  std::string_view records;
  storage::RecordBatchWire split;
  std::string merged;

  uint64_t RecordCount() const { return split.RecordCount() + split.processes.size(); }
};

// False exactly when protobuf would reject `payload` as a sonde.control.v1.AgentFrame (a Batch's
// records included: bad wire bytes, strings that are not UTF-8). Views in *out point into
// `payload`, which must outlive them. Oneof semantics as protobuf: the last body field wins and
// repeated occurrences of the same one merge.
bool ReadAgentFrame(std::string_view payload, AgentFrameView* out);

}  // namespace sonde::server::ingest
