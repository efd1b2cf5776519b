// Kafka framing and the little body parsing records need: request header, first topic of
// Produce/Fetch, and response error codes, for classic and flexible (compact) versions.
#include "agent/protocols/kafka/parser.h"

#include <algorithm>
#include <limits>

namespace sonde::agent::protocols::kafka {
namespace {

constexpr int16_t kMaxApiKey = 74;
constexpr int16_t kMaxApiVersion = 20;
constexpr size_t kMaxNameBytes = 256;

// Big-endian reader; any read past the end (or a malformed length) sets !ok().
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool ok() const { return ok_; }
  int64_t Int(size_t n) {
    if (!Need(n)) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = v << 8 | static_cast<uint8_t>(b_[p_ + i]);
    p_ += n;
    // sign-extend
    const int shift = static_cast<int>(64 - 8 * n);
    return static_cast<int64_t>(v << shift) >> shift;
  }
  uint64_t UVarint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
      if (!Need(1)) return 0;
      const uint8_t c = static_cast<uint8_t>(b_[p_++]);
      v |= static_cast<uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
    }
    ok_ = false;
    return 0;
  }
  // STRING / NULLABLE_STRING (int16 length) or COMPACT_(NULLABLE_)STRING (uvarint length + 1).
  std::string_view String(bool compact) {
    int64_t len = compact ? static_cast<int64_t>(UVarint()) - 1 : Int(2);
    if (len < 0) return {};  // null
    if (!Need(static_cast<size_t>(len))) return {};
    std::string_view s = b_.substr(p_, static_cast<size_t>(len));
    p_ += static_cast<size_t>(len);
    return s;
  }
  int64_t ArrayLength(bool compact) {
    return compact ? static_cast<int64_t>(UVarint()) - 1 : Int(4);
  }
  void Skip(size_t n) {
    if (Need(n)) p_ += n;
  }
  void SkipTaggedFields() {
    const uint64_t n = UVarint();
    for (uint64_t i = 0; i < n && ok_; ++i) {
      UVarint();
      Skip(static_cast<size_t>(std::min<uint64_t>(UVarint(), std::numeric_limits<uint32_t>::max())));
    }
  }
  std::string_view Rest() const { return p_ <= b_.size() ? b_.substr(p_) : std::string_view(); }

 private:
  bool Need(size_t n) {
    if (!ok_ || p_ > b_.size() || b_.size() - p_ < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  std::string_view b_;
  size_t p_ = 0;
  bool ok_ = true;
};

int32_t Be32(std::string_view b) {
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint8_t>(b[0])) << 24 |
                              static_cast<uint32_t>(static_cast<uint8_t>(b[1])) << 16 |
                              static_cast<uint32_t>(static_cast<uint8_t>(b[2])) << 8 |
                              static_cast<uint8_t>(b[3]));
}

bool Flexible(int16_t key, int16_t version) { return version >= FirstFlexibleVersion(key); }

// First topic name of a Produce request body; *acks receives the acks field.
std::string ProduceTopic(int16_t version, std::string_view body, int16_t* acks) {
  Reader r(body);
  const bool compact = Flexible(0, version);
  if (version >= 3) r.String(compact);  // transactional_id
  *acks = static_cast<int16_t>(r.Int(2));
  r.Int(4);  // timeout_ms
  if (r.ArrayLength(compact) < 1) return {};
  std::string_view name = r.String(compact);
  return r.ok() ? std::string(name.substr(0, kMaxNameBytes)) : std::string();
}

std::string FetchTopic(int16_t version, std::string_view body) {
  Reader r(body);
  const bool compact = Flexible(1, version);
  if (version < 15) r.Int(4);  // replica_id (v15+ moved it to a tagged field)
  r.Int(4);                    // max_wait_ms
  r.Int(4);                    // min_bytes
  if (version >= 3) r.Int(4);  // max_bytes
  if (version >= 4) r.Int(1);  // isolation_level
  if (version >= 7) r.Int(8);  // session_id, session_epoch
  if (r.ArrayLength(compact) < 1) return {};
  if (version >= 13) {         // topics are identified by id from v13
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id;
    for (int i = 0; i < 16; ++i) {
      const int64_t b = r.Int(1);
      id += kHex[(b >> 4) & 0xf];
      id += kHex[b & 0xf];
    }
    return r.ok() ? id : std::string();
  }
  std::string_view name = r.String(compact);
  return r.ok() ? std::string(name.substr(0, kMaxNameBytes)) : std::string();
}

// Topics listed first in Metadata and a few group APIs are not needed for records; keep it small.

}  // namespace

std::string_view ApiName(int16_t api_key) {
  static constexpr std::string_view kNames[] = {
      "Produce", "Fetch", "ListOffsets", "Metadata", "LeaderAndIsr", "StopReplica",
      "UpdateMetadata", "ControlledShutdown", "OffsetCommit", "OffsetFetch", "FindCoordinator",
      "JoinGroup", "Heartbeat", "LeaveGroup", "SyncGroup", "DescribeGroups", "ListGroups",
      "SaslHandshake", "ApiVersions", "CreateTopics", "DeleteTopics", "DeleteRecords",
      "InitProducerId", "OffsetForLeaderEpoch", "AddPartitionsToTxn", "AddOffsetsToTxn",
      "EndTxn", "WriteTxnMarkers", "TxnOffsetCommit", "DescribeAcls", "CreateAcls",
      "DeleteAcls", "DescribeConfigs", "AlterConfigs", "AlterReplicaLogDirs",
      "DescribeLogDirs", "SaslAuthenticate", "CreatePartitions", "CreateDelegationToken",
      "RenewDelegationToken", "ExpireDelegationToken", "DescribeDelegationToken",
      "DeleteGroups", "ElectLeaders", "IncrementalAlterConfigs", "AlterPartitionReassignments",
      "ListPartitionReassignments", "OffsetDelete", "DescribeClientQuotas",
      "AlterClientQuotas", "DescribeUserScramCredentials", "AlterUserScramCredentials",
      "Vote", "BeginQuorumEpoch", "EndQuorumEpoch", "DescribeQuorum", "AlterPartition",
      "UpdateFeatures", "Envelope", "FetchSnapshot", "DescribeCluster", "DescribeProducers",
      "BrokerRegistration", "BrokerHeartbeat", "UnregisterBroker", "DescribeTransactions",
      "ListTransactions", "AllocateProducerIds", "ConsumerGroupHeartbeat"};
  if (api_key < 0 || static_cast<size_t>(api_key) >= std::size(kNames)) return {};
  return kNames[api_key];
}

int16_t FirstFlexibleVersion(int16_t api_key) {
  switch (api_key) {
    case 0: return 9;    // Produce
    case 1: return 12;   // Fetch
    case 2: return 6;    // ListOffsets
    case 3: return 9;    // Metadata
    case 8: return 8;    // OffsetCommit
    case 9: return 6;    // OffsetFetch
    case 10: return 3;   // FindCoordinator
    case 11: return 6;   // JoinGroup
    case 12: return 4;   // Heartbeat
    case 13: return 4;   // LeaveGroup
    case 14: return 4;   // SyncGroup
    case 15: return 5;   // DescribeGroups
    case 16: return 3;   // ListGroups
    case 18: return 3;   // ApiVersions
    case 19: return 5;   // CreateTopics
    case 20: return 4;   // DeleteTopics
    case 22: return 2;   // InitProducerId
    case 36: return 2;   // SaslAuthenticate
    default: return api_key > 36 ? 0 : std::numeric_limits<int16_t>::max();
  }
}

int16_t ResponseErrorCode(int16_t api_key, int16_t api_version, std::string_view body) {
  const bool compact = Flexible(api_key, api_version);
  Reader r(body);
  // Flexible responses have a tagged-field header, except ApiVersions (kept v0 for bootstrapping).
  if (compact && api_key != 18) r.SkipTaggedFields();
  int16_t code = 0;
  switch (api_key) {
    case 0: {  // Produce: topics[ name, partitions[ index, error_code ... ] ]
      if (r.ArrayLength(compact) < 1) return 0;
      r.String(compact);
      if (r.ArrayLength(compact) < 1) return 0;
      r.Int(4);
      code = static_cast<int16_t>(r.Int(2));
      break;
    }
    case 1: {  // Fetch: [throttle] [error_code session_id] responses[ topic, partitions[...] ]
      if (api_version >= 1) r.Int(4);
      if (api_version >= 7) {
        code = static_cast<int16_t>(r.Int(2));
        if (code != 0) break;
        r.Int(4);
      }
      if (r.ArrayLength(compact) < 1) return 0;
      if (api_version >= 13) {
        r.Skip(16);
      } else {
        r.String(compact);
      }
      if (r.ArrayLength(compact) < 1) return 0;
      r.Int(4);
      code = static_cast<int16_t>(r.Int(2));
      break;
    }
    case 17:  // SaslHandshake, ApiVersions: error_code first
    case 18:
      code = static_cast<int16_t>(r.Int(2));
      break;
    case 10:  // FindCoordinator (v1+), JoinGroup (v2+), Heartbeat, LeaveGroup, SyncGroup (v1+)
    case 12:
    case 13:
    case 14:
    case 11: {
      const int16_t throttle_from = api_key == 11 ? 2 : 1;
      if (api_key == 10 && api_version >= 4) return 0;  // per-coordinator errors from v4
      if (api_version >= throttle_from) r.Int(4);
      code = static_cast<int16_t>(r.Int(2));
      break;
    }
    case 22:  // InitProducerId, SaslAuthenticate: throttle then error
      r.Int(4);
      code = static_cast<int16_t>(r.Int(2));
      break;
    case 36:
      code = static_cast<int16_t>(r.Int(2));
      break;
    default:
      return 0;
  }
  return r.ok() ? code : 0;
}

size_t Traits::FindFrameBoundary(MessageType type, std::string_view buf, size_t start,
                                 State* /*state*/) {
  for (size_t p = start; p + 12 <= buf.size(); ++p) {
    const int32_t size = Be32(buf.substr(p));
    if (size < 8 || size > kMaxMessageBytes) continue;
    if (type == MessageType::kResponse) return p;  // nothing else to check without the request
    const int16_t key = static_cast<int16_t>(Be32(buf.substr(p + 2)) & 0xffff);
    const int16_t version = static_cast<int16_t>(Be32(buf.substr(p + 4)) & 0xffff);
    if (key >= 0 && key <= kMaxApiKey && version >= 0 && version <= kMaxApiVersion) return p;
  }
  return std::string_view::npos;
}

ParseState Traits::ParseFrame(MessageType type, std::string_view* buf, Frame* frame,
                              State* /*state*/) {
  if (buf->size() < 4) return ParseState::kNeedsMoreData;
  const int32_t size = Be32(*buf);
  const bool request = type != MessageType::kResponse;
  if (size < (request ? 10 : 4) || size > kMaxMessageBytes) return ParseState::kInvalid;
  // Validate the request header as soon as it is there, so non-Kafka streams fail fast.
  if (request && buf->size() >= 14) {
    Reader h(buf->substr(4, 10));
    const int16_t key = static_cast<int16_t>(h.Int(2));
    const int16_t version = static_cast<int16_t>(h.Int(2));
    h.Int(4);
    const int16_t client_len = static_cast<int16_t>(h.Int(2));
    if (key < 0 || key > kMaxApiKey || version < 0 || version > kMaxApiVersion ||
        client_len < -1 || client_len > size - 10) {
      return ParseState::kInvalid;
    }
  }
  if (buf->size() - 4 < static_cast<size_t>(size)) return ParseState::kNeedsMoreData;
  std::string_view msg = buf->substr(4, static_cast<size_t>(size));
  Reader r(msg);
  if (request) {
    frame->api_key = static_cast<int16_t>(r.Int(2));
    frame->api_version = static_cast<int16_t>(r.Int(2));
    frame->correlation_id = static_cast<int32_t>(r.Int(4));
    frame->client_id = std::string(r.String(false).substr(0, kMaxNameBytes));
    if (Flexible(frame->api_key, frame->api_version)) r.SkipTaggedFields();
    if (!r.ok()) return ParseState::kInvalid;
    std::string_view body = r.Rest();
    if (frame->api_key == 0) {
      int16_t acks = -1;
      frame->topic = ProduceTopic(frame->api_version, body, &acks);
      frame->expects_response = acks != 0;
    } else if (frame->api_key == 1) {
      frame->topic = FetchTopic(frame->api_version, body);
    }
  } else {
    frame->correlation_id = static_cast<int32_t>(r.Int(4));
  }
  frame->payload.assign(msg.substr(0, std::min(msg.size(), kMaxPayloadKept)));
  frame->frame_bytes = 4 + static_cast<size_t>(size);
  buf->remove_prefix(frame->frame_bytes);
  return ParseState::kSuccess;
}

}  // namespace sonde::agent::protocols::kafka

namespace sonde::agent::protocols::kafka {

namespace {

// Highest request version per api key (Apache Kafka 3.7 request schemas, plus one for newer
// clients); -1 for keys that are not client requests we know.
int16_t MaxKnownVersion(int16_t api_key) {
  static constexpr int16_t kMax[] = {
      11, 16, 8, 12, 7, 4, 8, 3, 9, 9,  // 0-9
      5,  9,  4, 5,  5, 5, 5, 1, 3, 7,  // 10-19
      6,  2,  4, 4,  4, 3, 3, 1, 3, 3,  // 20-29
      3,  3,  4, 2,  2, 4, 2, 3, 3, 2,  // 30-39
      2,  3,  2, 2,  1, 0, 0, 0, 1, 1,  // 40-49
      0,  0,  0, 0,  0, 1, 3, 1, 0, 0,  // 50-59
      1,  0,  3, 1,  0, 0, 1, 0, 0};    // 60-68
  if (api_key < 0 || static_cast<size_t>(api_key) >= std::size(kMax)) return -1;
  return static_cast<int16_t>(kMax[api_key] + 1);
}

// The fixed request header at the start of `data` (>= 14 bytes): a known api key with a version
// in its range, a non-negative correlation id, and a client id that fits the message and is
// printable. `size` is the request size field.
bool PlausibleRequestHeader(std::string_view data, int32_t* size) {
  Reader h(data.substr(0, 14));
  *size = static_cast<int32_t>(h.Int(4));
  const auto key = static_cast<int16_t>(h.Int(2));
  const auto version = static_cast<int16_t>(h.Int(2));
  const auto correlation = static_cast<int32_t>(h.Int(4));
  const auto client_len = static_cast<int16_t>(h.Int(2));
  if (*size < 10 || *size > kMaxMessageBytes) return false;
  if (version < 0 || version > MaxKnownVersion(key) || correlation < 0) return false;
  if (client_len < -1 || client_len > *size - 10) return false;
  if (client_len > 0) {
    const size_t n = std::min(data.size() - 14, static_cast<size_t>(client_len));
    for (char c : data.substr(14, n)) {
      if (c < 0x20 || c > 0x7e) return false;
    }
  }
  return true;
}

// Whether `body` holds an int16-length-prefixed printable string (a topic, group or transaction
// id: nearly every request body names one).
bool HasNamedString(std::string_view body) {
  for (size_t i = 0; i + 3 <= body.size(); ++i) {
    const size_t n = static_cast<size_t>(static_cast<uint8_t>(body[i])) << 8 |
                     static_cast<uint8_t>(body[i + 1]);
    if (n == 0 || n > 249 || i + 2 + n > body.size()) continue;
    bool printable = true;
    for (char c : body.substr(i + 2, n)) printable = printable && c > 0x20 && c < 0x7f;
    if (printable) return true;
  }
  return false;
}

}  // namespace

InferResult Infer(flow::StreamDirection dir, std::string_view data, const flow::ConnectionInfo&) {
  // Responses carry nothing but a correlation id: only requests can be recognised.
  if (dir != flow::StreamDirection::kRequest) return InferResult::kNo;
  if (data.size() < 14) return InferResult::kMaybe;
  int32_t size = 0;
  if (!PlausibleRequestHeader(data, &size)) return InferResult::kNo;
  State state;
  Frame frame;
  std::string_view buf = data;
  const ParseState s = Traits::ParseFrame(MessageType::kRequest, &buf, &frame, &state);
  if (s == ParseState::kInvalid) return InferResult::kNo;
  if (s == ParseState::kNeedsMoreData) return InferResult::kMaybe;
  // Without a client id the header is mostly zeros, as zero-filled binary data is: then the body
  // must name something.
  if (frame.client_id.empty()) {
    const size_t header = 14 + frame.client_id.size();
    if (!HasNamedString(data.substr(header, static_cast<size_t>(size) + 4 - header))) {
      return InferResult::kNo;
    }
  }
  // The request must fill the chunk exactly, or be followed by another plausible request.
  if (buf.empty()) return InferResult::kYes;
  if (buf.size() < 14) return InferResult::kMaybe;
  int32_t next_size = 0;
  return PlausibleRequestHeader(buf, &next_size) ? InferResult::kYes : InferResult::kNo;
}

}  // namespace sonde::agent::protocols::kafka
