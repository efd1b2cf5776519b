// RecordTagger: the hook through which storage gets the server-filled tag id columns of each
// record (AutoTagging + SmartEncoding live in server/enrich; storage only needs the numbers).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "server/storage/record_sides.h"
#include "server/storage/storage_backend.h"

namespace sonde::server::storage {

class RecordTagger {
 public:
  virtual ~RecordTagger() = default;

  // Names of the UInt32 columns Tag() fills, in the order of its values per record
  // (e.g. region_id_0 ... process_name_id_1). Constant for the tagger's lifetime.
  virtual const std::vector<std::string>& Columns() const = 0;

  // Tags every record of `batch` and appends Columns().size() values per record to *ids, records
  // in this order: l7_request_logs, l4_flow_logs, network_metrics, application_metrics. Also
  // consumes the batch's ProcessInfo records (they only feed tagging). Called from the storage
  // writer thread; errors are transient (the dictionary store is unreachable) and retried.
  virtual Status Tag(const AgentBatch& batch, std::vector<uint32_t>* ids) = 0;

  // Tag() for a caller that already read the batch's sides while encoding its rows: `sides` holds
  // exactly what ExtractSides(batch) gives (two per record, same order). Same results and effects
  // as Tag(); the default ignores `sides` and calls it.
  virtual Status TagSides(const AgentBatch& batch, std::span<const RecordSide> sides, std::vector<uint32_t>* ids) {
    (void)sides;
    return Tag(batch, ids);
  }
};

}  // namespace sonde::server::storage
