// ClockedSink: forwards every packet and idle tick unchanged, one by one or batched, and keeps
// the newest time seen (out-of-order packets and idle ticks included) and the packet count.
#include "agent/capture/clocked_sink.h"

#include <gtest/gtest.h>

#include <vector>

namespace sonde::agent::capture {
namespace {

struct Log : EventSink {
  void OnPacket(const PacketView& p) override { singles.push_back(p.timestamp_ns); }
  void OnPackets(std::span<const PacketView> ps) override {
    batches.push_back(ps.size());
    for (const PacketView& p : ps) batched.push_back(p.timestamp_ns);
  }
  void OnIdle(uint64_t now) override { idles.push_back(now); }
  std::vector<uint64_t> singles, batched, idles;
  std::vector<size_t> batches;
};

TEST(ClockedSinkTest, ForwardsEverythingAndKeepsTheNewestTime) {
  Log next;
  ClockedSink clocked(&next);
  EXPECT_EQ(clocked.last_ns(), 0u);
  PacketView p;
  p.timestamp_ns = 50;
  clocked.OnPacket(p);
  std::vector<PacketView> batch(3);
  batch[0].timestamp_ns = 70;
  batch[1].timestamp_ns = 60;  // out of order: the newest stays 70
  batch[2].timestamp_ns = 65;
  clocked.OnPackets(batch);
  EXPECT_EQ(clocked.last_ns(), 70u);
  clocked.OnIdle(40);  // older than the newest packet
  EXPECT_EQ(clocked.last_ns(), 70u);
  clocked.OnIdle(90);
  EXPECT_EQ(clocked.last_ns(), 90u);
  EXPECT_EQ(clocked.packets(), 4u);
  EXPECT_EQ(next.singles, (std::vector<uint64_t>{50}));
  EXPECT_EQ(next.batches, (std::vector<size_t>{3}));  // a batch stays a batch
  EXPECT_EQ(next.batched, (std::vector<uint64_t>{70, 60, 65}));
  EXPECT_EQ(next.idles, (std::vector<uint64_t>{40, 90}));
}

}  // namespace
}  // namespace sonde::agent::capture
