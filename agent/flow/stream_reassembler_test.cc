// StreamReassembler: ordering, overlap trimming, bounded buffering, gap markers, wraparound.
#include "agent/flow/stream_reassembler.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace sonde::agent::flow {
namespace {

struct Collected {
  std::string data;
  std::vector<uint32_t> gaps;
  std::vector<uint32_t> seqs;
};

class StreamReassemblerTest : public ::testing::Test {
 protected:
  StreamReassembler::SegmentOutcome Add(uint32_t seq, std::string_view s, uint32_t wire = 0,
                                        uint32_t max_buffer = 1 << 20, uint64_t ts = 1) {
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    return r_.AddSegment(ts, seq, bytes, wire ? wire : static_cast<uint32_t>(s.size()), max_buffer,
                         &budget_, deliver_);
  }
  StreamReassembler r_;
  ReassemblyBudget budget_;
  Collected out_;
  std::function<void(const ReassembledChunk&)> deliver_ = [this](const ReassembledChunk& c) {
    out_.data.append(reinterpret_cast<const char*>(c.data.data()), c.data.size());
    out_.gaps.push_back(c.gap_bytes_before);
    out_.seqs.push_back(c.tcp_seq);
  };
};

TEST_F(StreamReassemblerTest, InOrderAndReordered) {
  r_.InitAt(1000);
  EXPECT_EQ(Add(1000, "abc"), StreamReassembler::SegmentOutcome::kDelivered);
  EXPECT_EQ(Add(1006, "ghi"), StreamReassembler::SegmentOutcome::kBuffered);
  EXPECT_EQ(budget_.used_bytes, 3u);
  EXPECT_EQ(Add(1003, "def"), StreamReassembler::SegmentOutcome::kDelivered);
  EXPECT_EQ(out_.data, "abcdefghi");
  EXPECT_EQ(out_.seqs, (std::vector<uint32_t>{1000, 1003, 1006}));
  EXPECT_EQ(budget_.used_bytes, 0u);
  EXPECT_EQ(r_.buffered_bytes(), 0u);
}

TEST_F(StreamReassemblerTest, RetransmissionsAndOverlapsAreTrimmed) {
  r_.InitAt(0);
  Add(0, "hello");
  EXPECT_EQ(Add(0, "hello"), StreamReassembler::SegmentOutcome::kOld);
  Add(3, "lo world");
  EXPECT_EQ(out_.data, "hello world");
}

TEST_F(StreamReassemblerTest, OverflowSkipsTheHoleWithAGapMarker) {
  r_.InitAt(0);
  Add(0, "ab");
  Add(10, "xyz", 0, /*max_buffer=*/4);
  // Buffer limit 4: this one does not fit, so the hole [2,10) is skipped.
  EXPECT_EQ(Add(13, "uvw", 0, 4), StreamReassembler::SegmentOutcome::kForcedGap);
  EXPECT_EQ(out_.data, "abxyzuvw");
  EXPECT_EQ(out_.gaps, (std::vector<uint32_t>{0, 8, 0}));
  EXPECT_EQ(r_.gap_bytes(), 8u);
}

TEST_F(StreamReassemblerTest, HoleTimeout) {
  r_.InitAt(0);
  Add(5, "late", 0, 1 << 20, /*ts=*/100);
  r_.FlushHoles(150, 100, &budget_, deliver_);
  EXPECT_TRUE(out_.data.empty());
  r_.FlushHoles(300, 100, &budget_, deliver_);
  EXPECT_EQ(out_.data, "late");
  EXPECT_EQ(out_.gaps, (std::vector<uint32_t>{5}));
}

TEST_F(StreamReassemblerTest, SnapLengthTailBecomesGap) {
  r_.InitAt(0);
  Add(0, "abcd", /*wire=*/10);
  Add(10, "next");
  EXPECT_EQ(out_.data, "abcdnext");
  EXPECT_EQ(out_.gaps, (std::vector<uint32_t>{0, 6}));
}

TEST_F(StreamReassemblerTest, SequenceWraparound) {
  r_.InitAt(0xFFFFFFFE);
  Add(0, "cd");
  Add(0xFFFFFFFE, "ab");
  Add(2, "e");
  EXPECT_EQ(out_.data, "abcde");
}

TEST_F(StreamReassemblerTest, InitializesFromFirstSegment) {
  Add(555, "mid");
  Add(558, "stream");
  EXPECT_EQ(out_.data, "midstream");
}

}  // namespace
}  // namespace sonde::agent::flow
