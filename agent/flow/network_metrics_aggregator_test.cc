// NetworkMetricsAggregator: rows in first-seen order across the row chunks, the same rows with
// and without row hints (stale and foreign hints included), and against a std::map reference.
#include "agent/flow/network_metrics_aggregator.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "agent/flow/testing/collecting_sink.h"

namespace sonde::agent::flow {
namespace {

NetworkKey Key(uint32_t n) {
  NetworkKey k;
  k.client_ip = net::IpAddress::V4(0x0a000000u + n);
  k.server_ip = net::IpAddress::V4(0x7f000001u);
  k.server_port = static_cast<uint16_t>(80 + n % 3);
  k.protocol = 6;
  return k;
}

TEST(NetworkMetricsAggregatorTest, HintsChangeNothingAndRowsKeepFirstSeenOrder) {
  testing::CollectingSink plain_sink, hinted_sink;
  NetworkMetricsAggregator plain(&plain_sink), hinted(&hinted_sink);
  constexpr uint32_t kKeys = 700;  // rows span the 64-, 128-, 256- and 512-row chunks
  std::vector<NetworkRowHint> hints(kKeys);
  std::map<std::tuple<uint32_t, uint32_t, uint32_t>, uint64_t> packets;  // (g, start, key)
  std::map<std::pair<uint32_t, uint32_t>, std::vector<uint32_t>> first_seen;  // (g, start)
  std::mt19937 rng(3);
  uint64_t now = 100'000'000'000ull;
  for (int step = 0; step < 20000; ++step) {
    now += rng() % 2'000'000;  // ~1 ms apart: intervals close along the way
    const uint32_t k = rng() % kKeys;
    NetworkCounters d;
    d.packets_0 = 1 + rng() % 3;
    plain.Add(Key(k), now, d);
    // Every 7th add uses another key's hint: detected, and the right row is used.
    NetworkRowHint* hint = &hints[step % 7 == 0 ? (k + 1) % kKeys : k];
    hinted.Add(Key(k), now, d, hint);
    const uint32_t s = static_cast<uint32_t>(now / 1'000'000'000ull);
    for (const auto& [g, start] : {std::pair<uint32_t, uint32_t>{1, s}, {60, s - s % 60}}) {
      uint64_t& n = packets[{g, start, k}];
      if (n == 0) first_seen[{g, start}].push_back(k);
      n += d.packets_0;
    }
    if (step % 5000 == 0) {
      plain.Advance(now);
      hinted.Advance(now);
    }
  }
  plain.FlushAll();
  hinted.FlushAll();
  ASSERT_EQ(plain_sink.net.size(), packets.size());
  ASSERT_EQ(hinted_sink.net.size(), plain_sink.net.size());
  for (size_t i = 0; i < plain_sink.net.size(); ++i) {
    ASSERT_EQ(hinted_sink.net[i].SerializeAsString(), plain_sink.net[i].SerializeAsString()) << i;
    const auto& m = plain_sink.net[i];
    const uint32_t k = m.ip4_0() - 0x0a000000u;
    EXPECT_EQ(m.packets_0(), (packets[{m.granularity_s(), m.time(), k}])) << i;
  }
  // Within one interval, rows come in the order their keys first showed up.
  std::map<std::pair<uint32_t, uint32_t>, std::vector<uint32_t>> emitted;
  for (const auto& m : plain_sink.net) {
    emitted[{m.granularity_s(), m.time()}].push_back(m.ip4_0() - 0x0a000000u);
  }
  EXPECT_GT(emitted.size(), 2u);
  EXPECT_EQ(emitted, first_seen);
}

}  // namespace
}  // namespace sonde::agent::flow
