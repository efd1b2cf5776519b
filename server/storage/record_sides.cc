// ExtractSides over the parsed messages of a batch.
#include "server/storage/record_sides.h"

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

}  // namespace

Status ExtractSides(const AgentBatch& batch, std::vector<RecordSide>* out) {
  const auto& r = batch.records;
  out->reserve(out->size() + 2 * static_cast<size_t>(r.l7_request_logs_size() + r.l4_flow_logs_size() +
                                                     r.network_metrics_size() +
                                                     r.application_metrics_size()));
  AddSides(r.l7_request_logs(), true, out);
  AddSides(r.l4_flow_logs(), true, out);
  AddSides(r.network_metrics(), false, out);
  AddSides(r.application_metrics(), false, out);
  return Status::Ok();
}

}  // namespace sonde::server::storage
