// Pairs Dubbo responses with requests by request id; one-way requests have no response.
#pragma once

#include <deque>
#include <vector>

#include "agent/protocols/common/parser.h"
#include "agent/protocols/dubbo/types.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::protocols::dubbo {

void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
            const StitchContext& ctx, RecordBuffer* out);

}  // namespace sonde::agent::protocols::dubbo
