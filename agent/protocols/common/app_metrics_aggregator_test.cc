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

// Reaches into the aggregator to put counters near their 32-bit limit (4 billion records would
// take minutes to add).
class AppMetricsAggregatorTestPeer {
 public:
  static void SetCounts(AppMetricsAggregator* agg, uint32_t granularity_s, uint32_t value) {
    agg->Drain();
    for (auto& [key, interval] : agg->intervals_) {
      if (interval.granularity_s != granularity_s) continue;
      for (uint32_t i = 0; i < interval.size; ++i) {
        for (uint32_t& count : interval.at(i).count) count = value;
      }
    }
  }
};

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

// Keys are interned per minute: endpoints of every length (empty, short, longer than any
// small-string buffer) must come back exactly, each with its own counts, in first-seen order.
TEST(AppMetricsAggregatorTest, ManyDistinctEndpointsOfEveryLength) {
  testing::CollectingSink sink;
  AppMetricsAggregator agg(&sink, 0);
  std::vector<std::string> endpoints = {"", "/", std::string(15, 'a'), std::string(16, 'a'),
                                        std::string(300, 'z')};
  for (int i = 0; i < 3000; ++i) {
    endpoints.push_back("/path/" + std::to_string(i) + std::string(i % 50, 'x'));
  }
  // Endpoint i gets i % 7 + 1 records, in an order that revisits old endpoints.
  std::vector<uint64_t> want(endpoints.size(), 0);
  for (int round = 0; round < 7; ++round) {
    for (size_t i = 0; i < endpoints.size(); ++i) {
      if (static_cast<int>(i % 7) < round) continue;
      agg.Add(Record(1, endpoints[i], 30, i));
      ++want[i];
    }
  }
  agg.FlushAll();
  ASSERT_EQ(sink.app.size(), 2 * endpoints.size());  // one second, one minute
  for (size_t g = 0; g < 2; ++g) {
    for (size_t i = 0; i < endpoints.size(); ++i) {
      const v1::ApplicationMetric& m = sink.app[g * endpoints.size() + i];
      ASSERT_EQ(m.granularity_s(), g == 0 ? 1u : 60u);
      ASSERT_EQ(m.endpoint(), endpoints[i]) << i;
      ASSERT_EQ(m.requests(), want[i]) << i;
      ASSERT_EQ(m.latency_sum_us(), want[i] * i) << i;
      ASSERT_EQ(m.server_port(), 8080u);
      ASSERT_EQ(m.protocol(), 6u);
      ASSERT_EQ(m.l7_protocol(), common::v1::L7_PROTOCOL_HTTP1);
      ASSERT_EQ(m.is_ipv4(), 1u);
    }
  }
}

// Every key field tells buckets apart, including the ones interned together (port, protocols,
// signal source and endpoint) and address pairs that differ only in where one ends.
TEST(AppMetricsAggregatorTest, EveryKeyFieldSeparatesBuckets) {
  testing::CollectingSink sink;
  AppMetricsAggregator agg(&sink, 0);
  std::vector<v1::L7RequestLog> recs;
  v1::L7RequestLog base = Record(1, "/k", 10, 5);
  recs.push_back(base);
  recs.push_back(base);
  recs.back().set_server_port(8081);
  recs.push_back(base);
  recs.back().set_protocol(17);
  recs.push_back(base);
  recs.back().set_l7_protocol(common::v1::L7_PROTOCOL_REDIS);
  recs.push_back(base);
  recs.back().set_signal_source(common::v1::SIGNAL_SOURCE_EBPF);
  recs.push_back(base);
  recs.back().set_ip4_1(0x0a000002);
  recs.push_back(base);
  recs.back().set_endpoint("/k2");
  // IPv6: the same 32 bytes split differently, one address only on either side.
  for (const auto& [a, b] : std::vector<std::pair<std::string, std::string>>{
           {std::string(16, '\x01'), std::string(16, '\x02')},
           {std::string(15, '\x01'), std::string(1, '\x01') + std::string(16, '\x02')},
           {"", std::string(16, '\x02')},
           {std::string(16, '\x01'), ""}}) {
    recs.push_back(base);
    recs.back().set_is_ipv4(0);
    recs.back().set_ip4_0(0);
    recs.back().set_ip4_1(0);
    recs.back().set_ip6_0(a);
    recs.back().set_ip6_1(b);
  }
  for (int round = 0; round < 2; ++round) {
    for (const v1::L7RequestLog& r : recs) agg.Add(r);
  }
  agg.FlushAll();
  ASSERT_EQ(sink.app.size(), 2 * recs.size());
  for (size_t g = 0; g < 2; ++g) {
    for (size_t i = 0; i < recs.size(); ++i) {
      const v1::ApplicationMetric& m = sink.app[g * recs.size() + i];
      const v1::L7RequestLog& r = recs[i];
      EXPECT_EQ(m.requests(), 2u) << i;
      EXPECT_EQ(m.server_port(), r.server_port()) << i;
      EXPECT_EQ(m.protocol(), r.protocol()) << i;
      EXPECT_EQ(m.l7_protocol(), r.l7_protocol()) << i;
      EXPECT_EQ(m.signal_source(), r.signal_source()) << i;
      EXPECT_EQ(m.is_ipv4(), r.is_ipv4()) << i;
      EXPECT_EQ(m.ip4_0(), r.ip4_0()) << i;
      EXPECT_EQ(m.ip4_1(), r.ip4_1()) << i;
      EXPECT_EQ(m.ip6_0(), r.ip6_0()) << i;
      EXPECT_EQ(m.ip6_1(), r.ip6_1()) << i;
      EXPECT_EQ(m.endpoint(), r.endpoint()) << i;
    }
  }
}

// One key in every second of a minute: the minute row holds the exact sums and the max of
// its 60 second rows, whichever second held the max.
TEST(AppMetricsAggregatorTest, SecondsFoldIntoTheirMinuteExactly) {
  testing::CollectingSink sink;
  AppMetricsAggregator agg(&sink, 0);
  uint64_t latency_sum = 0, max_latency = 0, responses = 0;
  for (uint64_t second = 120; second < 180; ++second) {
    for (uint64_t i = 0; i < 1 + second % 3; ++i) {
      const uint64_t latency_us = (second * 7919 + i * 104729) % 100003;
      agg.Add(Record(9, "/minute", second, latency_us));
      latency_sum += latency_us;
      max_latency = std::max(max_latency, latency_us);
      ++responses;
    }
    agg.Add(Record(9, "/minute", second, 0, common::v1::RESPONSE_STATUS_TIMEOUT));
    agg.Advance((second + 1) * 1'000'000'000ULL);  // emits the second (and the last, the minute)
    ASSERT_EQ(sink.app.size(), second - 120 + (second == 179 ? 2 : 1));
  }
  EXPECT_EQ(sink.app[59].time(), 179u);
  EXPECT_EQ(sink.app[59].granularity_s(), 1u);
  const v1::ApplicationMetric& m = sink.app.back();
  EXPECT_EQ(m.granularity_s(), 60u);
  EXPECT_EQ(m.time(), 120u);
  EXPECT_EQ(m.requests(), responses + 60);
  EXPECT_EQ(m.responses(), responses);
  EXPECT_EQ(m.latency_count(), responses);
  EXPECT_EQ(m.timeouts(), 60u);
  EXPECT_EQ(m.latency_sum_us(), latency_sum);
  EXPECT_EQ(m.latency_max_us(), max_latency);
  EXPECT_EQ(agg.open_intervals(), 0u);
}

// The key dictionaries belong to their minute: emitting it frees them, so a long-running
// agent holds only the keys of open minutes.
TEST(AppMetricsAggregatorTest, DictionariesAreFreedWithTheirMinute) {
  testing::CollectingSink sink;
  AppMetricsAggregator agg(&sink, 0);
  EXPECT_EQ(agg.dictionary_bytes(), 0u);
  for (int i = 0; i < 2000; ++i) {
    v1::L7RequestLog r = Record(1, "/a/long/endpoint/number/" + std::to_string(i), 60 + i % 60, 1);
    if (i % 2 == 0) {
      r.set_is_ipv4(0);
      r.set_ip6_0(std::string(15, '\0') + static_cast<char>(i));
      r.set_ip6_1(std::string(16, '\x20'));
    }
    agg.Add(r);
  }
  const size_t first_minute = agg.dictionary_bytes();
  EXPECT_GT(first_minute, 2000u * 24);  // at least every endpoint's bytes
  agg.Add(Record(1, "/next", 120, 1));  // the next minute: a small dictionary of its own
  EXPECT_GT(agg.dictionary_bytes(), first_minute);
  agg.Advance(121'000'000'000ULL);  // minute 60 and its seconds closed, minute 120 open
  EXPECT_GT(agg.dictionary_bytes(), 0u);
  EXPECT_LT(agg.dictionary_bytes(), first_minute / 10);
  agg.FlushAll();
  EXPECT_EQ(agg.dictionary_bytes(), 0u);
  ASSERT_EQ(sink.app.size(), 2000u + 1u + 2000u + 1u);  // seconds, minute 60, minute 120
  EXPECT_EQ(sink.app[2000].endpoint(), "/next");
  EXPECT_EQ(sink.app[2000 + 1 + 2000].endpoint(), "/next");
}

// Counters past 32 bits stay exact, in a second and when seconds fold into their minute.
TEST(AppMetricsAggregatorTest, CountsCarryPast32Bits) {
  testing::CollectingSink sink;
  AppMetricsAggregator agg(&sink, 0);
  agg.Add(Record(1, "/big", 10, 5));
  AppMetricsAggregatorTestPeer::SetCounts(&agg, 1, 0xffffffffu);  // every counter
  agg.Add(Record(1, "/big", 10, 6));  // requests and responses carry
  agg.Add(Record(1, "/big", 10, 7));
  AppMetricsAggregatorTestPeer::SetCounts(&agg, 60, 0xfffffffeu);
  agg.Advance(11'000'000'000ULL);  // emits the second, folding it into the minute
  ASSERT_EQ(sink.app.size(), 1u);
  constexpr uint64_t k32 = uint64_t{1} << 32;
  const v1::ApplicationMetric& s = sink.app[0];
  EXPECT_EQ(s.requests(), k32 + 1);
  EXPECT_EQ(s.responses(), k32 + 1);
  EXPECT_EQ(s.latency_count(), k32 + 1);
  EXPECT_EQ(s.client_errors(), k32 - 1);
  EXPECT_EQ(s.timeouts(), k32 - 1);
  EXPECT_EQ(s.latency_sum_us(), 18u);
  EXPECT_EQ(s.latency_max_us(), 7u);
  agg.Add(Record(1, "/big", 12, 1));  // another second of the same minute
  AppMetricsAggregatorTestPeer::SetCounts(&agg, 1, 0xffffffffu);
  agg.FlushAll();
  ASSERT_EQ(sink.app.size(), 3u);
  EXPECT_EQ(sink.app[1].requests(), k32 - 1);
  const v1::ApplicationMetric& m = sink.app[2];
  EXPECT_EQ(m.granularity_s(), 60u);
  // 0xfffffffe set on the minute, then both seconds.
  EXPECT_EQ(m.requests(), (k32 - 2) + (k32 + 1) + (k32 - 1));
  EXPECT_EQ(m.responses(), (k32 - 2) + (k32 + 1) + (k32 - 1));
  EXPECT_EQ(m.latency_count(), m.responses());
  EXPECT_EQ(m.server_errors(), (k32 - 2) + (k32 - 1) + (k32 - 1));
  EXPECT_EQ(m.latency_sum_us(), 19u);
}

}  // namespace
}  // namespace sonde::agent::protocols
