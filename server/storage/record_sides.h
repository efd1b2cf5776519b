// The two sides (client, server) of every record of an AgentBatch, as AutoTagging needs them:
// the record's second, the side's address and its process id. Storage extracts them so that
// taggers never depend on how a batch is held (parsed messages or the spool's wire bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/net/ip_address.h"
#include "server/storage/storage_backend.h"

namespace sonde::server::storage {

struct RecordSide {
  net::IpAddress ip;
  uint32_t time_s = 0;
  uint32_t pid = 0;  // 0 for metric records and when the agent did not know it
};

// Appends two sides per record (client then server) to *out, records in the RecordTagger order:
// l7_request_logs, l4_flow_logs, network_metrics, application_metrics.
Status ExtractSides(const AgentBatch& batch, std::vector<RecordSide>* out);

// The two sides ExtractSides gives for one serialized record of `kind` (an index into
// RecordBatchWire::records), appended to *out; two zero sides when the record is malformed.
void AppendWireSides(size_t kind, std::string_view record, std::vector<RecordSide>* out);

// The two zero sides ExtractSides gives for a malformed record.
inline RecordSide ZeroSide() { return {net::IpAddress::V4(0), 0, 0}; }

}  // namespace sonde::server::storage
