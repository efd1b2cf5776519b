// RED aggregation: buckets per key and interval, both granularities, emission order and timing.
#include "agent/protocols/common/app_metrics_aggregator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <tuple>
#include <string>
#include <vector>

#include "agent/protocols/common/testing/collecting_sink.h"

namespace sonde::agent::protocols {
namespace {

v1::L7RequestLog Record(uint32_t client, std::string endpoint, uint64_t end_s, uint64_t latency_us,
                        common::v1::ResponseStatus status = common::v1::RESPONSE_STATUS_OK) {
  v1::L7RequestLog r;
  r.set_is_ipv4(1);
  r.set_ip4_0(client);
  r.set_ip4_1(0x0a000001);
  r.set_server_port(8080);
  r.set_protocol(6);
  r.set_l7_protocol(common::v1::L7_PROTOCOL_HTTP1);
  r.set_endpoint(std::move(endpoint));
  r.set_start_time_us(end_s * 1'000'000 - latency_us);
  r.set_end_time_us(end_s * 1'000'000);
  r.set_request_length(10);
  r.set_response_length(status == common::v1::RESPONSE_STATUS_TIMEOUT ? -1 : 20);
  r.set_response_status(status);
  r.set_response_duration(latency_us);
  return r;
}

TEST(AppMetricsAggregatorTest, CountsPerKeyAndIntervalInFirstSeenOrder) {
  testing::CollectingSink sink;
  AppMetricsAggregator agg(&sink, 0);
  agg.Add(Record(1, "/a", 120, 100));
  agg.Add(Record(2, "/a", 120, 300));
  agg.Add(Record(1, "/a", 120, 50, common::v1::RESPONSE_STATUS_SERVER_ERROR));
  agg.Add(Record(1, "/b", 121, 70, common::v1::RESPONSE_STATUS_CLIENT_ERROR));
  agg.Add(Record(1, "/a", 121, 0, common::v1::RESPONSE_STATUS_TIMEOUT));
  EXPECT_EQ(agg.open_intervals(), 2u + 2u + 3u);  // second 120: 2, second 121: 2, minute: 3
  agg.Advance(121'000'000'000ULL);  // second 120 closed
  ASSERT_EQ(sink.app.size(), 2u);
  const v1::ApplicationMetric& a = sink.app[0];
  EXPECT_EQ(a.granularity_s(), 1u);
  EXPECT_EQ(a.time(), 120u);
  EXPECT_EQ(a.ip4_0(), 1u);
  EXPECT_EQ(a.endpoint(), "/a");
  EXPECT_EQ(a.requests(), 2u);
  EXPECT_EQ(a.responses(), 2u);
  EXPECT_EQ(a.server_errors(), 1u);
  EXPECT_EQ(a.latency_sum_us(), 150u);
  EXPECT_EQ(a.latency_count(), 2u);
  EXPECT_EQ(a.latency_max_us(), 100u);
  EXPECT_EQ(sink.app[1].ip4_0(), 2u);
  EXPECT_EQ(sink.app[1].latency_max_us(), 300u);

  agg.FlushAll();
  ASSERT_EQ(sink.app.size(), 2u + 2u + 3u);
  // Second 121 first (granularity 1 sorts first), then the minute.
  EXPECT_EQ(sink.app[2].endpoint(), "/b");
  EXPECT_EQ(sink.app[2].client_errors(), 1u);
  EXPECT_EQ(sink.app[3].endpoint(), "/a");
  EXPECT_EQ(sink.app[3].timeouts(), 1u);
  EXPECT_EQ(sink.app[3].responses(), 0u);
  EXPECT_EQ(sink.app[3].latency_count(), 0u);
  const v1::ApplicationMetric& m = sink.app[4];
  EXPECT_EQ(m.granularity_s(), 60u);
  EXPECT_EQ(m.time(), 120u);
  EXPECT_EQ(m.ip4_0(), 1u);
  EXPECT_EQ(m.endpoint(), "/a");
  EXPECT_EQ(m.requests(), 3u);
  EXPECT_EQ(m.responses(), 2u);
  EXPECT_EQ(m.timeouts(), 1u);
  EXPECT_EQ(sink.app[5].ip4_0(), 2u);
  EXPECT_EQ(sink.app[6].endpoint(), "/b");
  EXPECT_EQ(agg.open_intervals(), 0u);
}

TEST(AppMetricsAggregatorTest, Ipv6AddressesAreKeys) {
  testing::CollectingSink sink;
  AppMetricsAggregator agg(&sink, 0);
  for (char last : {'\x01', '\x02', '\x01'}) {
    v1::L7RequestLog r = Record(0, "/", 10, 5);
    r.set_is_ipv4(0);
    r.set_ip6_0(std::string(15, '\0') + last);
    r.set_ip6_1(std::string(16, '\x20'));
    agg.Add(r);
  }
  agg.FlushAll();
  ASSERT_EQ(sink.app.size(), 4u);  // two clients, two granularities
  EXPECT_EQ(sink.app[0].ip6_0(), std::string(15, '\0') + '\x01');
  EXPECT_EQ(sink.app[0].requests(), 2u);
  EXPECT_EQ(sink.app[0].ip6_1(), std::string(16, '\x20'));
  EXPECT_EQ(sink.app[1].requests(), 1u);
  EXPECT_EQ(sink.app[2].granularity_s(), 60u);
  EXPECT_EQ(sink.app[2].requests(), 2u);
}

TEST(AppMetricsAggregatorTest, ManyKeysAndALateRecord) {
  testing::CollectingSink sink;
  AppMetricsAggregator agg(&sink, 0);
  constexpr uint32_t kClients = 5000;  // several index growths and entry chunks
  for (uint32_t round = 0; round < 2; ++round) {
    for (uint32_t c = 0; c < kClients; ++c) agg.Add(Record(c, "/x", 60, c));
  }
  agg.Advance(61'000'000'000ULL);  // second 60 closed, minute 60 open
  ASSERT_EQ(sink.app.size(), kClients);
  for (uint32_t c = 0; c < kClients; ++c) {
    ASSERT_EQ(sink.app[c].ip4_0(), c);
    ASSERT_EQ(sink.app[c].requests(), 2u);
    ASSERT_EQ(sink.app[c].latency_sum_us(), 2u * c);
  }
  agg.Add(Record(7, "/x", 60, 1));  // late for its second: a new 1 s row, same minute row
  agg.FlushAll();
  ASSERT_EQ(sink.app.size(), kClients + 1 + kClients);
  EXPECT_EQ(sink.app[kClients].granularity_s(), 1u);
  EXPECT_EQ(sink.app[kClients].requests(), 1u);
  EXPECT_EQ(sink.app[kClients + 1 + 7].granularity_s(), 60u);
  EXPECT_EQ(sink.app[kClients + 1 + 7].requests(), 3u);
}

// Whatever Advance and FlushAll emit holds every record added before them, in first-seen
// order, per second (a guard for any deferred or batched counting of records).
TEST(AppMetricsAggregatorTest, AdvanceAndFlushCountEveryRecordAddedBefore) {
  testing::CollectingSink sink;
  AppMetricsAggregator agg(&sink, 0);
  std::map<std::pair<uint32_t, std::string>, uint64_t> want;  // (second, key) -> requests
  std::vector<std::pair<uint32_t, std::string>> first_seen;
  size_t emitted_before = 0;
  for (uint32_t second = 100; second < 106; ++second) {
    for (uint32_t i = 0; i < 3 + second % 4; ++i) {  // 3..6 records: fewer than the ring
      const uint32_t client = (i * 7 + second) % 5;
      const std::string endpoint = std::string(1 + (i * 13 + second) % 40, 'e');
      agg.Add(Record(client, endpoint, second, i));
      const auto key = std::make_pair(second, std::to_string(client) + endpoint);
      if (want[key]++ == 0) first_seen.push_back(key);
    }
    agg.Advance((second + 1) * 1'000'000'000ULL);  // closes `second`
    std::vector<std::pair<uint32_t, std::string>> rows;
    for (size_t k = emitted_before; k < sink.app.size(); ++k) {
      const v1::ApplicationMetric& m = sink.app[k];
      ASSERT_EQ(m.granularity_s(), 1u);
      ASSERT_EQ(m.time(), second);
      const auto key = std::make_pair(m.time(), std::to_string(m.ip4_0()) + m.endpoint());
      EXPECT_EQ(m.requests(), want[key]) << key.second;
      rows.push_back(key);
    }
    std::vector<std::pair<uint32_t, std::string>> expected;
    for (const auto& key : first_seen) {
      if (key.first == second) expected.push_back(key);
    }
    EXPECT_EQ(rows, expected);
    emitted_before = sink.app.size();
  }
  agg.Add(Record(1, "/late-but-counted", 106, 1));
  agg.FlushAll();
  ASSERT_GE(sink.app.size(), emitted_before + 2);
  EXPECT_EQ(sink.app[emitted_before].endpoint(), "/late-but-counted");
  EXPECT_EQ(agg.open_intervals(), 0u);
}

// 60 s rows are folded from their 1 s rows when those are emitted: whatever the order of
// records, Advance calls (one closing seconds and their minute at once, or seconds only) and late
// records (for an emitted second, and for an emitted minute), the rows of each granularity must
// sum to the records, and each interval's max must be the records' max.
TEST(AppMetricsAggregatorTest, MinuteRowsHoldEverySecondsRecords) {
  testing::CollectingSink sink;
  AppMetricsAggregator agg(&sink, 0);
  struct Sums {
    uint64_t requests = 0, responses = 0, client_errors = 0, server_errors = 0, timeouts = 0;
    uint64_t latency_sum_us = 0, latency_count = 0, latency_max_us = 0;
    bool operator==(const Sums&) const = default;
  };
  // (granularity, interval start, client, endpoint) -> sums
  using Key = std::tuple<uint32_t, uint32_t, uint32_t, std::string>;
  std::map<Key, Sums> want, got;
  const std::string endpoints[] = {"GET", "SET", "/a", "/b/c"};
  uint64_t state = 99;
  auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(state >> 33);
  };
  uint64_t second = 55;  // the first minute [0, 60) closes early on
  for (int i = 0; i < 20000; ++i) {
    const uint32_t r = next();
    if (r % 53 == 0) ++second;
    uint64_t end_s = second;
    if (r % 61 == 0 && second >= 3) end_s = second - 3;  // late: often for an emitted second
    if (r % 1009 == 0 && second >= 70) end_s = second - 70;  // late for an emitted minute
    const uint32_t client = (r >> 8) % 3;
    const std::string& endpoint = endpoints[(r >> 12) % 4];
    const auto status = static_cast<common::v1::ResponseStatus>((r >> 20) % 4);
    const uint64_t latency_us = r % 100000;
    v1::L7RequestLog rec = Record(client, endpoint, end_s, latency_us, status);
    if ((r >> 24) % 7 == 0) rec.set_request_length(-1);
    agg.Add(rec);
    for (uint32_t g : {1u, 60u}) {
      Sums& w = want[{g, static_cast<uint32_t>(end_s / g * g), client, endpoint}];
      if (rec.request_length() >= 0) ++w.requests;
      if (status == common::v1::RESPONSE_STATUS_TIMEOUT) ++w.timeouts;
      if (status == common::v1::RESPONSE_STATUS_CLIENT_ERROR) ++w.client_errors;
      if (status == common::v1::RESPONSE_STATUS_SERVER_ERROR) ++w.server_errors;
      if (status != common::v1::RESPONSE_STATUS_TIMEOUT) {
        ++w.responses;
        w.latency_sum_us += latency_us;
        ++w.latency_count;
        w.latency_max_us = std::max(w.latency_max_us, latency_us);
      }
    }
    if (r % 37 == 0) agg.Advance(second * 1'000'000'000ULL);  // closes seconds only
    if (r % 3001 == 0) agg.Advance((second / 60 * 60 + 60) * 1'000'000'000ULL);  // and a minute
  }
  agg.FlushAll();
  EXPECT_EQ(agg.open_intervals(), 0u);
  for (const v1::ApplicationMetric& m : sink.app) {
    Sums& s = got[{m.granularity_s(), m.time(), m.ip4_0(), m.endpoint()}];
    s.requests += m.requests();
    s.responses += m.responses();
    s.client_errors += m.client_errors();
    s.server_errors += m.server_errors();
    s.timeouts += m.timeouts();
    s.latency_sum_us += m.latency_sum_us();
    s.latency_count += m.latency_count();
    s.latency_max_us = std::max(s.latency_max_us, m.latency_max_us());
  }
  ASSERT_EQ(got.size(), want.size());
  ASSERT_GT(want.size(), 100u);
  for (const auto& [key, w] : want) {
    const auto it = got.find(key);
    ASSERT_NE(it, got.end()) << std::get<0>(key) << " " << std::get<1>(key);
    EXPECT_TRUE(it->second == w) << "granularity " << std::get<0>(key) << " time "
                                 << std::get<1>(key) << " client " << std::get<2>(key) << " "
                                 << std::get<3>(key) << ": requests " << it->second.requests
                                 << " want " << w.requests;
  }
}

}  // namespace
}  // namespace sonde::agent::protocols
