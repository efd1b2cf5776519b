// ExtractSides over a batch's wire bytes (the spool's batches) or its parsed messages.
#include "server/storage/record_sides.h"

#include <algorithm>
#include <cstring>

#include <google/protobuf/descriptor.h>

#include "server/storage/record_batch_wire.h"

namespace sonde::server::storage {
namespace {

net::IpAddress AddressOf(uint32_t is_ipv4, uint32_t ip4, const std::string& ip6) {
  if (is_ipv4 != 0 || ip6.size() != 16) return net::IpAddress::V4(ip4);
  return net::IpAddress::V6(reinterpret_cast<const uint8_t*>(ip6.data()));
}

template <typename Records>
void AddSides(const Records& records, bool with_pid, std::vector<RecordSide>* out) {
  for (const auto& m : records) {
    uint32_t pid0 = 0, pid1 = 0;
    if constexpr (requires { m.process_id_0(); }) {
      pid0 = with_pid ? m.process_id_0() : 0;
      pid1 = with_pid ? m.process_id_1() : 0;
    }
    out->push_back({AddressOf(m.is_ipv4(), m.ip4_0(), m.ip6_0()), m.time(), pid0});
    out->push_back({AddressOf(m.is_ipv4(), m.ip4_1(), m.ip6_1()), m.time(), pid1});
  }
}

// What a side needs, by field number, for one record kind (from the descriptors, once).
enum Slot : uint8_t { kNone, kTime, kIsIpv4, kIp4_0, kIp4_1, kIp6_0, kIp6_1, kPid0, kPid1 };
constexpr size_t kMaxField = 64;

struct SidePlan {
  std::array<std::array<Slot, kMaxField>, 4> slot_of{};  // [kind][field number]
};

SidePlan MakeSidePlan() {
  SidePlan plan;
  const google::protobuf::Descriptor* kinds[4] = {
      agent::v1::L7RequestLog::descriptor(), agent::v1::L4FlowLog::descriptor(),
      agent::v1::NetworkMetric::descriptor(), agent::v1::ApplicationMetric::descriptor()};
  const std::pair<const char*, Slot> wanted[] = {{"time", kTime},   {"is_ipv4", kIsIpv4},     {"ip4_0", kIp4_0},
                                                 {"ip4_1", kIp4_1}, {"ip6_0", kIp6_0},        {"ip6_1", kIp6_1},
                                                 {"process_id_0", kPid0}, {"process_id_1", kPid1}};
  for (size_t k = 0; k < 4; ++k) {
    for (const auto& [name, slot] : wanted) {
      const auto* f = kinds[k]->FindFieldByName(name);
      if (f != nullptr && static_cast<size_t>(f->number()) < kMaxField) {
        plan.slot_of[k][static_cast<size_t>(f->number())] = slot;
      }
    }
  }
  return plan;
}

const SidePlan& Plan() {
  static const SidePlan plan = MakeSidePlan();
  return plan;
}

// The two sides of one serialized record. Proto3 semantics: the last value of a field wins, a
// field with an unexpected wire type is an unknown field; uint32 fields keep their low 32 bits.
// A malformed record (the encoder drops it) still yields two (zero) sides to keep the order.
void AddWireSides(std::string_view record, const std::array<Slot, kMaxField>& slot_of,
                  std::vector<RecordSide>* out) {
  uint32_t v[kPid1 + 1] = {};
  std::string_view ip6_0, ip6_1;
  WireReader r(record);
  bool ok = true;
  while (ok && !r.done()) {
    uint32_t number, wire_type;
    if (!r.ReadTag(&number, &wire_type)) {
      ok = false;
      break;
    }
    const Slot slot = number < kMaxField ? slot_of[number] : kNone;
    if (slot == kIp6_0 || slot == kIp6_1) {
      if (wire_type == WireReader::kLengthDelimited) {
        ok = r.ReadLengthDelimited(slot == kIp6_0 ? &ip6_0 : &ip6_1);
        continue;
      }
    } else if (slot != kNone && wire_type == WireReader::kVarint) {
      uint64_t x;
      ok = r.ReadVarint(&x);
      v[slot] = static_cast<uint32_t>(x);
      continue;
    }
    ok = r.SkipValue(number, wire_type);
  }
  if (!ok) {
    out->push_back(ZeroSide());
    out->push_back(ZeroSide());
    return;
  }
  auto address = [&](uint32_t ip4, std::string_view ip6) {
    if (v[kIsIpv4] != 0 || ip6.size() != 16) return net::IpAddress::V4(ip4);
    return net::IpAddress::V6(reinterpret_cast<const uint8_t*>(ip6.data()));
  };
  out->push_back({address(v[kIp4_0], ip6_0), v[kTime], v[kPid0]});
  out->push_back({address(v[kIp4_1], ip6_1), v[kTime], v[kPid1]});
}

// Room for `more` sides; grows geometrically so that appending batch after batch stays linear.
void Reserve(std::vector<RecordSide>* out, size_t more) {
  const size_t need = out->size() + more;
  if (need > out->capacity()) out->reserve(std::max(need, 2 * out->capacity()));
}

}  // namespace

void AppendWireSides(size_t kind, std::string_view record, std::vector<RecordSide>* out) {
  if (kind >= 4) {
    out->push_back(ZeroSide());
    out->push_back(ZeroSide());
    return;
  }
  AddWireSides(record, Plan().slot_of[kind], out);
}

Status ExtractSides(const AgentBatch& batch, std::vector<RecordSide>* out) {
  if (!batch.wire.empty()) {
    RecordBatchWire split;
    if (!SplitRecordBatch(batch.wire, &split)) return InvalidArgumentError("malformed RecordBatch bytes");
    Reserve(out, 2 * split.RecordCount());
    const SidePlan& plan = Plan();
    for (size_t k = 0; k < 4; ++k) {
      for (std::string_view record : split.records[k]) AddWireSides(record, plan.slot_of[k], out);
    }
    return Status::Ok();
  }
  const auto& r = batch.records;
  Reserve(out, 2 * static_cast<size_t>(r.l7_request_logs_size() + r.l4_flow_logs_size() +
                                       r.network_metrics_size() + r.application_metrics_size()));
  AddSides(r.l7_request_logs(), true, out);
  AddSides(r.l4_flow_logs(), true, out);
  AddSides(r.network_metrics(), false, out);
  AddSides(r.application_metrics(), false, out);
  return Status::Ok();
}

}  // namespace sonde::server::storage
