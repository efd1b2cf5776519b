// Pairs PostgreSQL request batches (a Query, or extended-protocol messages up to Sync, or the
// startup) with the responses up to their ReadyForQuery.
#pragma once

#include <deque>
#include <vector>

#include "agent/protocols/common/parser.h"
#include "agent/protocols/postgres/types.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::protocols::postgres {

void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
            const StitchContext& ctx, RecordBuffer* out);

}  // namespace sonde::agent::protocols::postgres
