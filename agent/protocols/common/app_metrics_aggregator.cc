// RED metric aggregation over L7 records.
#include "agent/protocols/common/app_metrics_aggregator.h"

#include <algorithm>
#include <functional>
#include <vector>

namespace sonde::agent::protocols {

AppMetricsAggregator::AppMetricsAggregator(exporting::RecordSink* sink, uint64_t delay_ns)
    : sink_(sink), delay_ns_(delay_ns) {}

size_t AppMetricsAggregator::KeyHash::operator()(const Key& k) const {
  auto mix = [](size_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ULL; };
  size_t h = 0xcbf29ce484222325ULL;
  h = mix(h, (uint64_t{k.granularity_s} << 32) | k.time);
  h = mix(h, (uint64_t{k.ip4_0} << 32) | k.ip4_1);
  h = mix(h, (uint64_t{k.server_port} << 32) | (k.protocol << 16) |
                 static_cast<uint32_t>(k.l7_protocol) << 4 | k.is_ipv4 << 3 |
                 static_cast<uint32_t>(k.signal_source));
  h = mix(h, std::hash<std::string_view>()(k.endpoint));
  if (!k.ip6_0.empty()) h = mix(h, std::hash<std::string_view>()(k.ip6_0));
  if (!k.ip6_1.empty()) h = mix(h, std::hash<std::string_view>()(k.ip6_1));
  return h;
}

void AppMetricsAggregator::Add(const v1::L7RequestLog& rec) {
  const uint64_t t_s = std::max(rec.end_time_us(), rec.start_time_us()) / 1000000;
  for (uint32_t g : {1u, 60u}) {
    Key k{g,
          static_cast<uint32_t>(t_s / g * g),
          static_cast<int>(rec.signal_source()),
          rec.is_ipv4(),
          rec.ip4_0(),
          rec.ip4_1(),
          rec.server_port(),
          rec.protocol(),
          static_cast<int>(rec.l7_protocol()),
          rec.ip6_0(),
          rec.ip6_1(),
          rec.endpoint()};
    Interval& interval = intervals_[{g, k.time}];
    auto it = interval.index.find(k);
    if (it == interval.index.end()) {
      v1::ApplicationMetric& m = interval.metrics.emplace_back();
      m.set_time(k.time);
      m.set_granularity_s(g);
      m.set_signal_source(rec.signal_source());
      m.set_is_ipv4(rec.is_ipv4());
      m.set_ip4_0(rec.ip4_0());
      m.set_ip4_1(rec.ip4_1());
      if (!rec.ip6_0().empty()) m.set_ip6_0(rec.ip6_0());
      if (!rec.ip6_1().empty()) m.set_ip6_1(rec.ip6_1());
      m.set_server_port(rec.server_port());
      m.set_protocol(rec.protocol());
      m.set_l7_protocol(rec.l7_protocol());
      m.set_endpoint(rec.endpoint());
      Key stable = k;  // views into the stored metric, not into the record
      stable.ip6_0 = m.ip6_0();
      stable.ip6_1 = m.ip6_1();
      stable.endpoint = m.endpoint();
      it = interval.index.emplace(stable, interval.metrics.size() - 1).first;
      ++buckets_;
    }
    v1::ApplicationMetric& m = interval.metrics[it->second];
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

void AppMetricsAggregator::EmitInterval(Interval* interval) {
  buckets_ -= interval->metrics.size();
  for (v1::ApplicationMetric& m : interval->metrics) {
    if (sink_ != nullptr) sink_->Emit(std::move(m));
  }
}

void AppMetricsAggregator::Advance(uint64_t now_ns) {
  // Intervals are ordered by granularity, then start: scan each granularity's closed prefix.
  for (auto it = intervals_.begin(); it != intervals_.end();) {
    const auto [g, time] = it->first;
    const uint64_t end_ns = (static_cast<uint64_t>(time) + g) * 1000000000ULL;
    if (end_ns + delay_ns_ <= now_ns) {
      EmitInterval(&it->second);
      it = intervals_.erase(it);
    } else {
      it = intervals_.lower_bound({g + 1, 0});  // later intervals of g are open too
    }
  }
}

void AppMetricsAggregator::FlushAll() {
  for (auto& [key, interval] : intervals_) EmitInterval(&interval);
  intervals_.clear();
}

}  // namespace sonde::agent::protocols
