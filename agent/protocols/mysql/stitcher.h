// Pairs MySQL command packets with the packets of their response (OK, ERR, result sets,
// prepare replies), tracking the handshake and prepared statements in State.
#pragma once

#include <deque>
#include <vector>

#include "agent/protocols/common/parser.h"
#include "agent/protocols/mysql/types.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::protocols::mysql {

void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
            const StitchContext& ctx, RecordBuffer* out);

}  // namespace sonde::agent::protocols::mysql
