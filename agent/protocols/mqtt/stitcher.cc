// MQTT stitching: frames of both directions are merged in time order; exchanges wait in
// State::pending until their answer (or a timeout) arrives.
#include "agent/protocols/mqtt/stitcher.h"

#include "agent/protocols/common/record_util.h"
#include "agent/protocols/mqtt/parser.h"

namespace sonde::agent::protocols::mqtt {
namespace {

using ::sonde::common::v1::ResponseStatus;

std::string_view TypeName(PacketType t) {
  static constexpr std::string_view kNames[] = {
      "RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
      "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"};
  return kNames[static_cast<uint8_t>(t) & 0xf];
}

std::string VersionName(uint8_t level) {
  switch (level) {
    case 3: return "3.1";
    case 4: return "3.1.1";
    case 5: return "5.0";
    default: return std::to_string(level);
  }
}

// CONNACK return codes of 3.1.x, and 5.0 reason codes (>= 0x80).
ResponseStatus CodeStatus(PacketType request, int32_t code) {
  if (code < 0 || code == 0) return ::sonde::common::v1::RESPONSE_STATUS_OK;
  if (code < 0x80) {
    if (request == PacketType::kConnect) {
      return code == 3 ? ::sonde::common::v1::RESPONSE_STATUS_SERVER_ERROR
                       : ::sonde::common::v1::RESPONSE_STATUS_CLIENT_ERROR;
    }
    return ::sonde::common::v1::RESPONSE_STATUS_OK;  // e.g. 0x10 no matching subscribers
  }
  switch (code) {
    case 0x80: case 0x83: case 0x88: case 0x89: case 0x97:
      return ::sonde::common::v1::RESPONSE_STATUS_SERVER_ERROR;
    default:
      return ::sonde::common::v1::RESPONSE_STATUS_CLIENT_ERROR;
  }
}

void Emit(const Pending& p, bool answered, bool timed_out, uint64_t now_ns, const State& s,
          RecordBuffer* out) {
  const Frame& q = p.request;
  v1::L7RequestLog& r = out->Add();
  r.set_l7_protocol(Traits::kProtocol);
  r.set_version(VersionName(q.type == PacketType::kConnect ? q.protocol_level : s.protocol_level));
  r.set_request_type(std::string(TypeName(q.type)));
  r.set_request_domain(q.type == PacketType::kConnect ? q.client_id : s.client_id);
  r.set_request_resource(q.topic);
  r.set_endpoint(q.topic.empty() ? r.request_type() : q.topic);
  r.set_request_id(q.packet_id);
  r.set_request_length(static_cast<int64_t>(q.frame_bytes));
  r.set_req_tcp_seq(q.tcp_seq);
  if (q.type == PacketType::kPublish) r.set_response_result("qos=" + std::to_string(q.qos));
  if (answered) {
    FillTiming(q.timestamp_ns, p.last_ts_ns, &r);
    r.set_response_length(static_cast<int64_t>(p.response_bytes));
    r.set_resp_tcp_seq(p.resp_tcp_seq);
    r.set_response_code(p.code < 0 ? 0 : p.code);
    r.set_response_status(CodeStatus(q.type, p.code));
  } else {
    FillTiming(q.timestamp_ns, timed_out ? now_ns : q.timestamp_ns, &r);
    r.set_response_length(-1);
    r.set_response_status(timed_out ? ::sonde::common::v1::RESPONSE_STATUS_TIMEOUT
                                    : ::sonde::common::v1::RESPONSE_STATUS_OK);
  }
}

// The request kind an answer of type `t` belongs to.
PacketType RequestFor(PacketType t) {
  switch (t) {
    case PacketType::kConnack: return PacketType::kConnect;
    case PacketType::kPingresp: return PacketType::kPingreq;
    case PacketType::kSuback: return PacketType::kSubscribe;
    case PacketType::kUnsuback: return PacketType::kUnsubscribe;
    default: return PacketType::kPublish;  // PUBACK, PUBREC, PUBCOMP
  }
}

void Process(const Frame& f, State* s, const StitchContext& ctx, RecordBuffer* out) {
  switch (f.type) {
    case PacketType::kConnect:
    case PacketType::kPingreq:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
    case PacketType::kPublish: {
      if (f.type == PacketType::kPublish && f.qos == 0) {
        Emit(Pending{f}, false, false, ctx.now_ns, *s, out);  // nothing answers QoS 0
        return;
      }
      // A retransmission (DUP) replaces the earlier copy.
      for (auto it = s->pending.begin(); it != s->pending.end(); ++it) {
        if (it->request.type == f.type && it->request.packet_id == f.packet_id &&
            it->request.from_client == f.from_client && f.packet_id != 0) {
          s->pending.erase(it);
          break;
        }
      }
      if (s->pending.size() >= kMaxPending) {
        Emit(s->pending.front(), false, true, ctx.now_ns, *s, out);
        s->pending.pop_front();
      }
      s->pending.push_back(Pending{f});
      return;
    }
    case PacketType::kDisconnect:
      Emit(Pending{f}, false, false, ctx.now_ns, *s, out);
      return;
    case PacketType::kConnack:
    case PacketType::kPingresp:
    case PacketType::kSuback:
    case PacketType::kUnsuback:
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubcomp: {
      const PacketType want = RequestFor(f.type);
      const bool by_id = want != PacketType::kConnect && want != PacketType::kPingreq;
      for (auto it = s->pending.begin(); it != s->pending.end(); ++it) {
        const Frame& q = it->request;
        if (q.type != want || q.from_client == f.from_client) continue;
        if (by_id && q.packet_id != f.packet_id) continue;
        if (want == PacketType::kPublish) {
          // QoS 1 ends at PUBACK; QoS 2 at PUBCOMP after PUBREC (or a failing PUBREC).
          if ((f.type == PacketType::kPuback) != (q.qos == 1)) continue;
          if (f.type == PacketType::kPubcomp && !it->got_pubrec) continue;
        }
        if (it->response_bytes == 0) it->resp_tcp_seq = f.tcp_seq;
        it->response_bytes += f.frame_bytes;
        it->last_ts_ns = f.timestamp_ns;
        if (f.code >= 0 && it->code < 0) it->code = f.code;
        if (f.type == PacketType::kPubrec && f.code < 0x80) {
          it->got_pubrec = true;
          return;
        }
        Emit(*it, true, false, ctx.now_ns, *s, out);
        s->pending.erase(it);
        return;
      }
      ++s->unpaired_responses, CountUnpairedResponses(ctx);
      return;
    }
    default:  // PUBREL (part of a QoS 2 flow we already track), AUTH
      return;
  }
}

}  // namespace

void Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
            const StitchContext& ctx, RecordBuffer* out) {
  // Merge both directions in capture order (ties: client first).
  while (!requests->empty() || !responses->empty()) {
    const bool take_client =
        responses->empty() ||
        (!requests->empty() && requests->front().timestamp_ns <= responses->front().timestamp_ns);
    FrameQueue<Frame>* q = take_client ? requests : responses;
    Frame f = std::move(q->front());
    q->pop_front();
    f.from_client = take_client;
    Process(f, state, ctx, out);
  }
  while (!state->pending.empty()) {
    const Pending& p = state->pending.front();
    const uint64_t ts = p.request.timestamp_ns;
    if (!IsTimedOut(ts, ctx)) break;
    Emit(p, false, true, ctx.now_ns, *state, out);
    state->pending.pop_front();
  }
}

void Traits::Stitch(FrameQueue<Frame>* requests, FrameQueue<Frame>* responses, State* state,
                    const StitchContext& ctx, RecordBuffer* out) {
  mqtt::Stitch(requests, responses, state, ctx, out);
}

}  // namespace sonde::agent::protocols::mqtt
