// Pairs MQTT exchanges in both directions: CONNECT/CONNACK, PINGREQ/PINGRESP,
// (UN)SUBSCRIBE/(UN)SUBACK, PUBLISH with PUBACK (QoS 1) or PUBREC..PUBCOMP (QoS 2).
#pragma once

#include <deque>
#include <vector>

#include "agent/protocols/common/parser.h"
#include "agent/protocols/mqtt/types.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::protocols::mqtt {

void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
            const StitchContext& ctx, RecordBuffer* out);

}  // namespace sonde::agent::protocols::mqtt
