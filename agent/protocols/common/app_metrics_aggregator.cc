// RED metric aggregation over L7 records.
#include "agent/protocols/common/app_metrics_aggregator.h"

#include <algorithm>

namespace sonde::agent::protocols {

AppMetricsAggregator::AppMetricsAggregator(exporting::RecordSink* sink, uint64_t delay_ns)
    : sink_(sink), delay_ns_(delay_ns) {}

void AppMetricsAggregator::Add(const v1::L7RequestLog& rec) {
  const uint64_t t_s = std::max(rec.end_time_us(), rec.start_time_us()) / 1000000;
  for (uint32_t g : {1u, 60u}) {
    Key k{g,
          static_cast<uint32_t>(t_s / g * g),
          static_cast<int>(rec.signal_source()),
          rec.is_ipv4(),
          rec.ip4_0(),
          rec.ip4_1(),
          rec.ip6_0(),
          rec.ip6_1(),
          rec.server_port(),
          rec.protocol(),
          static_cast<int>(rec.l7_protocol()),
          rec.endpoint()};
    auto [it, inserted] = buckets_.try_emplace(std::move(k));
    v1::ApplicationMetric& m = it->second;
    if (inserted) {
      m.set_time(it->first.time);
      m.set_granularity_s(g);
      m.set_signal_source(rec.signal_source());
      m.set_is_ipv4(rec.is_ipv4());
      m.set_ip4_0(rec.ip4_0());
      m.set_ip4_1(rec.ip4_1());
      m.set_ip6_0(rec.ip6_0());
      m.set_ip6_1(rec.ip6_1());
      m.set_server_port(rec.server_port());
      m.set_protocol(rec.protocol());
      m.set_l7_protocol(rec.l7_protocol());
      m.set_endpoint(rec.endpoint());
    }
    if (rec.request_length() >= 0) m.set_requests(m.requests() + 1);
    switch (rec.response_status()) {
      case common::v1::RESPONSE_STATUS_TIMEOUT:
        m.set_timeouts(m.timeouts() + 1);
        break;
      case common::v1::RESPONSE_STATUS_CLIENT_ERROR:
        m.set_client_errors(m.client_errors() + 1);
        break;
      case common::v1::RESPONSE_STATUS_SERVER_ERROR:
        m.set_server_errors(m.server_errors() + 1);
        break;
      default:
        break;
    }
    if (rec.response_status() != common::v1::RESPONSE_STATUS_TIMEOUT &&
        rec.response_length() >= 0) {
      m.set_responses(m.responses() + 1);
      m.set_latency_sum_us(m.latency_sum_us() + rec.response_duration());
      m.set_latency_count(m.latency_count() + 1);
      m.set_latency_max_us(std::max<uint64_t>(m.latency_max_us(), rec.response_duration()));
    }
  }
}

void AppMetricsAggregator::Advance(uint64_t now_ns) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    const uint64_t end_ns =
        (static_cast<uint64_t>(it->first.time) + it->first.granularity_s) * 1000000000ULL;
    if (end_ns + delay_ns_ <= now_ns) {
      Emit(it->first, std::move(it->second));
      it = buckets_.erase(it);
    } else {
      ++it;
    }
  }
}

void AppMetricsAggregator::FlushAll() {
  for (auto& [k, m] : buckets_) Emit(k, std::move(m));
  buckets_.clear();
}

void AppMetricsAggregator::Emit(const Key& key, v1::ApplicationMetric&& m) {
  if (sink_ != nullptr) sink_->Emit(std::move(m));
}

}  // namespace sonde::agent::protocols
