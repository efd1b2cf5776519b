// PcapFileSource: timestamps, link types, and bad files (missing, garbage, truncated).
#include "agent/capture/pcap/pcap_file_source.h"

#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <vector>

namespace sonde::agent::capture {
namespace {

struct Recorder : EventSink {
  void OnPacket(const PacketView& p) override {
    ts.push_back(p.timestamp_ns);
    sizes.push_back(p.data.size());
    wire.push_back(p.wire_length);
    link = p.link_type;
  }
  void OnIdle(uint64_t now) override { idle = now; }
  std::vector<uint64_t> ts;
  std::vector<size_t> sizes;
  std::vector<uint32_t> wire;
  LinkType link = LinkType::kNull;
  uint64_t idle = 0;
};

std::string TempPath(const char* name) {
  return (std::filesystem::temp_directory_path() / (std::string("sonde_pcap_") + name)).string();
}

// Writes `n` Ethernet frames of 60 bytes with microsecond timestamps 1.000001 s apart.
std::string WritePcap(const char* name, int n, int dlt = DLT_EN10MB) {
  std::string path = TempPath(name);
  pcap_t* dead = pcap_open_dead(dlt, 65535);
  pcap_dumper_t* d = pcap_dump_open(dead, path.c_str());
  std::vector<u_char> frame(60, 0xab);
  for (int i = 0; i < n; ++i) {
    pcap_pkthdr h{};
    h.ts.tv_sec = 1000 + i;
    h.ts.tv_usec = i + 1;
    h.caplen = h.len = 60;
    pcap_dump(reinterpret_cast<u_char*>(d), &h, frame.data());
  }
  pcap_dump_close(d);
  pcap_close(dead);
  return path;
}

TEST(PcapFileSourceTest, ReplaysPacketsWithTimestamps) {
  std::string path = WritePcap("ok.pcap", 3);
  PcapFileSource src(path);
  Recorder rec;
  std::atomic<bool> stop{false};
  ASSERT_TRUE(src.Run(rec, stop).ok());
  ASSERT_EQ(rec.ts.size(), 3u);
  EXPECT_EQ(rec.ts[0], 1000'000'001'000ull);
  EXPECT_EQ(rec.ts[2], 1002'000'003'000ull);
  EXPECT_EQ(rec.idle, rec.ts[2]);
  EXPECT_EQ(rec.link, LinkType::kEthernet);
  EXPECT_EQ(src.stats().events, 3u);
  EXPECT_EQ(src.stats().bytes, 180u);
  std::filesystem::remove(path);
}

// A record whose wire length is below its captured length (seen in captures from some tools):
// the captured bytes are kept and the wire length is taken to be at least the captured length.
TEST(PcapFileSourceTest, WireLengthBelowCapturedLengthKeepsThePacket) {
  std::string path = TempPath("short_len.pcap");
  pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
  pcap_dumper_t* d = pcap_dump_open(dead, path.c_str());
  std::vector<u_char> frame(60, 0xab);
  pcap_pkthdr h{};
  h.ts.tv_sec = 1000;
  h.caplen = 60;
  h.len = 14;
  pcap_dump(reinterpret_cast<u_char*>(d), &h, frame.data());
  pcap_dump_close(d);
  pcap_close(dead);
  PcapFileSource src(path);
  Recorder rec;
  std::atomic<bool> stop{false};
  ASSERT_TRUE(src.Run(rec, stop).ok());
  ASSERT_EQ(rec.sizes.size(), 1u);
  EXPECT_EQ(rec.sizes[0], 60u);
  EXPECT_EQ(rec.wire[0], 60u);
  EXPECT_EQ(src.stats().malformed, 0u);
  std::filesystem::remove(path);
}

TEST(PcapFileSourceTest, LinuxSllLinkType) {
  std::string path = WritePcap("sll.pcap", 1, DLT_LINUX_SLL);
  PcapFileSource src(path);
  Recorder rec;
  std::atomic<bool> stop{false};
  ASSERT_TRUE(src.Run(rec, stop).ok());
  EXPECT_EQ(rec.link, LinkType::kLinuxSll);
  std::filesystem::remove(path);
}

TEST(PcapFileSourceTest, MissingFile) {
  PcapFileSource src("/nonexistent/sonde.pcap");
  Recorder rec;
  std::atomic<bool> stop{false};
  Status s = src.Run(rec, stop);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
}

TEST(PcapFileSourceTest, GarbageFile) {
  std::string path = TempPath("garbage.pcap");
  std::ofstream(path) << "this is not a capture file at all, just text";
  PcapFileSource src(path);
  Recorder rec;
  std::atomic<bool> stop{false};
  Status s = src.Run(rec, stop);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(path), std::string::npos);
  std::filesystem::remove(path);
}

TEST(PcapFileSourceTest, TruncatedFileKeepsWhatWasRead) {
  std::string path = WritePcap("trunc.pcap", 4);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 30);
  PcapFileSource src(path);
  Recorder rec;
  std::atomic<bool> stop{false};
  ASSERT_TRUE(src.Run(rec, stop).ok());
  EXPECT_EQ(rec.ts.size(), 3u);
  EXPECT_EQ(src.stats().malformed, 1u);
  std::filesystem::remove(path);
}

TEST(PcapFileSourceTest, CorruptRecordHeader) {
  std::string path = WritePcap("corrupt.pcap", 4);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(24 + 16 + 60 + 8);  // caplen field of the second record
    uint32_t huge = 0x7FFFFFFF;
    f.write(reinterpret_cast<const char*>(&huge), 4);
  }
  PcapFileSource src(path);
  Recorder rec;
  std::atomic<bool> stop{false};
  Status s = src.Run(rec, stop);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(rec.ts.size(), 1u);
  EXPECT_EQ(src.stats().malformed, 1u);
  std::filesystem::remove(path);
}

// A sink that takes batches gets every packet, in order, a batch of up to 32 at a time.
TEST(PcapFileSourceTest, MappedFileDeliversBatchesInOrder) {
  struct BatchRecorder : EventSink {
    void OnPacket(const PacketView&) override { ++singles; }
    void OnPackets(std::span<const PacketView> ps) override {
      batches.push_back(ps.size());
      for (const PacketView& p : ps) ts.push_back(p.timestamp_ns);
    }
    std::vector<size_t> batches;
    std::vector<uint64_t> ts;
    int singles = 0;
  };
  std::string path = WritePcap("batches.pcap", 70);
  PcapFileSource src(path);
  BatchRecorder rec;
  std::atomic<bool> stop{false};
  ASSERT_TRUE(src.Run(rec, stop).ok());
  EXPECT_EQ(rec.singles, 0);
  EXPECT_EQ(rec.batches, (std::vector<size_t>{32, 32, 6}));
  ASSERT_EQ(rec.ts.size(), 70u);
  for (size_t i = 0; i < rec.ts.size(); ++i) {
    EXPECT_EQ(rec.ts[i], (1000 + i) * 1'000'000'000ull + (i + 1) * 1000) << i;
  }
  std::filesystem::remove(path);
}

TEST(PcapFileSourceTest, StopFlagEndsEarly) {
  std::string path = WritePcap("stop.pcap", 5);
  PcapFileSource src(path);
  Recorder rec;
  std::atomic<bool> stop{true};
  ASSERT_TRUE(src.Run(rec, stop).ok());
  EXPECT_TRUE(rec.ts.empty());
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace sonde::agent::capture

namespace sonde::agent::capture {
namespace {

// Classic pcap written byte by byte: big-endian, nanosecond magic, snapshot length 40.
std::string BigEndianNanoPcap(const char* name, const std::vector<uint32_t>& caplens) {
  std::string b;
  auto be32 = [&b](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>((v >> s) & 0xff));
  };
  auto be16 = [&b](uint16_t v) {
    b.push_back(static_cast<char>(v >> 8));
    b.push_back(static_cast<char>(v & 0xff));
  };
  be32(0xa1b23c4d);
  be16(2);
  be16(4);
  be32(0);
  be32(0);
  be32(40);  // snapshot length
  be32(1);   // Ethernet
  uint32_t i = 0;
  for (uint32_t caplen : caplens) {
    be32(2000 + i);
    be32(7 + i);  // nanoseconds
    be32(caplen);
    be32(60);
    b.append(caplen <= 1000 ? caplen : 0, static_cast<char>(0xcd));
    ++i;
  }
  std::string path = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream(path, std::ios::binary) << b;
  return path;
}

TEST(PcapFileSourceTest, BigEndianNanosecondsAndSnapshotLength) {
  // The second record claims more captured bytes than the snapshot length: the first 40 are kept
  // and the rest skipped, as libpcap does.
  std::string path = BigEndianNanoPcap("sonde_pcap_be_ns.pcap", {40, 50, 40});
  PcapFileSource src(path);
  Recorder rec;
  std::atomic<bool> stop{false};
  ASSERT_TRUE(src.Run(rec, stop).ok());
  ASSERT_EQ(rec.ts.size(), 3u);
  EXPECT_EQ(rec.ts[0], 2000'000'000'007ull);
  EXPECT_EQ(rec.ts[2], 2002'000'000'009ull);
  EXPECT_EQ(rec.sizes[1], 40u);
  EXPECT_EQ(rec.wire[1], 60u);
  EXPECT_EQ(rec.link, LinkType::kEthernet);
  EXPECT_EQ(src.stats().malformed, 0u);
  std::filesystem::remove(path);
}

TEST(PcapFileSourceTest, ImpossibleCapturedLengthIsDataLoss) {
  std::string path = BigEndianNanoPcap("sonde_pcap_bad_caplen.pcap", {40, 300000});
  PcapFileSource src(path);
  Recorder rec;
  std::atomic<bool> stop{false};
  Status s = src.Run(rec, stop);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(rec.ts.size(), 1u);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace sonde::agent::capture
