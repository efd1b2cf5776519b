// Pairs Kafka responses with requests by correlation id; Produce with acks=0 has no response.
#pragma once

#include <deque>
#include <vector>

#include "agent/protocols/common/parser.h"
#include "agent/protocols/kafka/types.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::protocols::kafka {

void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
            const StitchContext& ctx, RecordBuffer* out);

}  // namespace sonde::agent::protocols::kafka
