// Pairs Redis requests and replies in order (Redis answers strictly in order, pipelined or not);
// pub/sub pushes become records of their own.
#pragma once

#include <deque>
#include <vector>

#include "agent/protocols/common/parser.h"
#include "agent/protocols/redis/types.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::protocols::redis {

void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
            const StitchContext& ctx, RecordBuffer* out);

}  // namespace sonde::agent::protocols::redis
