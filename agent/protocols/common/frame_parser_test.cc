// FrameParser: buffering, gaps, resync, give-up, datagrams, metadata stamping.
#include "agent/protocols/common/frame_parser.h"

#include <gtest/gtest.h>

#include "agent/protocols/common/testing/line_protocol.h"

namespace sonde::agent::protocols {
namespace {

using testing::LineTraits;

flow::StreamChunk Chunk(std::string_view s, uint64_t ts, uint32_t seq = 0, uint32_t gap = 0) {
  flow::StreamChunk c;
  c.timestamp_ns = ts;
  c.tcp_seq = seq;
  c.data = {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  c.gap_bytes_before = gap;
  return c;
}

class FrameParserTest : public ::testing::Test {
 protected:
  FrameParserTest() : counters_(ParserCounters::Create(&registry_, "LINE")) {}
  std::vector<v1::L7RequestLog> Stitch(FrameParser<LineTraits>* p, uint64_t now, bool closed = false) {
    StitchContext ctx{now, options_.request_timeout_ns, closed};
    RecordBuffer out;
    p->Stitch(ctx, &out);
    return out.ToVector();
  }
  metrics::Registry registry_;
  ParserCounters counters_;
  ParserOptions options_;
};

TEST_F(FrameParserTest, SplitFramesAcrossChunksKeepFirstChunkMetadata) {
  FrameParser<LineTraits> p(options_, &counters_);
  p.OnData(flow::StreamDirection::kRequest, Chunk("Q 1 /a/12", 1000000, 100));
  p.OnData(flow::StreamDirection::kRequest, Chunk("3\nQ 2 /b\n", 2000000, 109));
  p.OnData(flow::StreamDirection::kResponse, Chunk("A 1 200\nA 2 503\n", 5000000, 7000));
  auto recs = Stitch(&p, 5000000);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].request_resource(), "/a/123");
  EXPECT_EQ(recs[0].endpoint(), "/a/{id}");
  EXPECT_EQ(recs[0].req_tcp_seq(), 100u);
  EXPECT_EQ(recs[0].start_time_us(), 1000u);
  EXPECT_EQ(recs[0].request_length(), 11);
  EXPECT_EQ(recs[0].response_duration(), 4000u);
  EXPECT_EQ(recs[1].req_tcp_seq(), 111u);  // second frame starts 2 bytes into the second chunk
  EXPECT_EQ(recs[1].start_time_us(), 2000u);
  EXPECT_EQ(recs[1].resp_tcp_seq(), 7008u);
  EXPECT_EQ(recs[1].response_code(), 503);
  EXPECT_EQ(recs[1].response_status(), common::v1::RESPONSE_STATUS_SERVER_ERROR);
}

// Regression: once a chunk was consumed completely, the next frame was stamped with that old
// chunk's timestamp (its marker stayed at the front) while its tcp_seq was right, so response
// times were wrong and timestamp-ordered pairing shifted (packetbeat mysql_with_whitespaces).
TEST_F(FrameParserTest, FrameAfterFullyConsumedChunkGetsItsOwnTimestamp) {
  FrameParser<LineTraits> p(options_, &counters_);
  p.OnData(flow::StreamDirection::kRequest, Chunk("Q 1 /a\n", 1'000'000, 100));
  p.OnData(flow::StreamDirection::kResponse, Chunk("A 1 200\n", 2'000'000, 500));
  p.OnData(flow::StreamDirection::kRequest, Chunk("Q 2 /b\n", 40'000'000, 107));
  p.OnData(flow::StreamDirection::kResponse, Chunk("A 2 200\n", 78'000'000, 508));
  // Fully consumed again, then a frame split over two chunks: it keeps its first chunk's time.
  p.OnData(flow::StreamDirection::kRequest, Chunk("Q 3 /", 90'000'000, 114));
  p.OnData(flow::StreamDirection::kRequest, Chunk("c\n", 95'000'000, 119));
  p.OnData(flow::StreamDirection::kResponse, Chunk("A 3 200\n", 99'000'000, 516));
  auto recs = Stitch(&p, 99'000'000);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].start_time_us(), 1000u);
  EXPECT_EQ(recs[0].response_duration(), 1000u);
  EXPECT_EQ(recs[1].start_time_us(), 40000u);
  EXPECT_EQ(recs[1].req_tcp_seq(), 107u);
  EXPECT_EQ(recs[1].resp_tcp_seq(), 508u);
  EXPECT_EQ(recs[1].response_duration(), 38000u);
  EXPECT_EQ(recs[2].start_time_us(), 90000u);
  EXPECT_EQ(recs[2].req_tcp_seq(), 114u);
  EXPECT_EQ(recs[2].response_duration(), 9000u);
}

TEST_F(FrameParserTest, GapDropsPartialFrameAndResyncs) {
  FrameParser<LineTraits> p(options_, &counters_);
  p.OnData(flow::StreamDirection::kRequest, Chunk("Q 1 /lost-ta", 1, 1));
  p.OnData(flow::StreamDirection::kRequest, Chunk("il\nQ 2 /ok\n", 2, 50, 20));
  p.OnData(flow::StreamDirection::kResponse, Chunk("A 2 200\n", 3, 9));
  auto recs = Stitch(&p, 3);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].request_resource(), "/ok");
  EXPECT_EQ(counters_.gaps->Value(), 1u);
  EXPECT_EQ(counters_.resync_skipped_bytes->Value(), 3u);
}

TEST_F(FrameParserTest, GarbageIsCountedAndSkipped) {
  FrameParser<LineTraits> p(options_, &counters_);
  p.OnData(flow::StreamDirection::kRequest, Chunk("xx\nQ 1 /a\n", 1));
  EXPECT_EQ(counters_.invalid_frames->Value(), 1u);
  p.OnData(flow::StreamDirection::kResponse, Chunk("A 1 404\n", 2));
  auto recs = Stitch(&p, 2);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].response_status(), common::v1::RESPONSE_STATUS_CLIENT_ERROR);
}

TEST_F(FrameParserTest, GivesUpAfterRepeatedFailures) {
  options_.max_consecutive_failures = 3;
  FrameParser<LineTraits> p(options_, &counters_);
  for (int i = 0; i < 5; ++i) p.OnData(flow::StreamDirection::kRequest, Chunk("zz\n", 1));
  EXPECT_TRUE(p.gave_up());
  EXPECT_EQ(counters_.gave_up->Value(), 1u);
  EXPECT_EQ(counters_.invalid_frames->Value(), 3u);
}

TEST_F(FrameParserTest, BufferBoundDropsAndResyncs) {
  options_.max_buffer_bytes = 64;
  FrameParser<LineTraits> p(options_, &counters_);
  // An unterminated line below the parser's own limit keeps growing until the bound hits.
  p.OnData(flow::StreamDirection::kRequest, Chunk("Q 1 " + std::string(50, 'a'), 1));
  p.OnData(flow::StreamDirection::kRequest, Chunk(std::string(30, 'b') + "\nQ 2 /x\n", 2));
  EXPECT_EQ(counters_.buffer_overflows->Value(), 1u);
  p.OnData(flow::StreamDirection::kResponse, Chunk("A 2 200\n", 3));
  auto recs = Stitch(&p, 3);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].request_resource(), "/x");
}

TEST_F(FrameParserTest, TimeoutAndCloseAndUnpaired) {
  options_.request_timeout_ns = 1000;
  FrameParser<LineTraits> p(options_, &counters_);
  p.OnData(flow::StreamDirection::kRequest, Chunk("Q 1 /slow\n", 100));
  EXPECT_TRUE(Stitch(&p, 500).empty());
  EXPECT_TRUE(p.has_pending());
  auto recs = Stitch(&p, 1200);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].response_status(), common::v1::RESPONSE_STATUS_TIMEOUT);
  EXPECT_EQ(recs[0].response_length(), -1);
  p.OnData(flow::StreamDirection::kResponse, Chunk("A 9 200\n", 1300));
  EXPECT_TRUE(Stitch(&p, 1300).empty());
  EXPECT_EQ(counters_.unpaired_responses->Value(), 1u);
  p.OnData(flow::StreamDirection::kRequest, Chunk("Q 2 /open\n", 1400));
  recs = Stitch(&p, 1400, /*closed=*/true);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].response_status(), common::v1::RESPONSE_STATUS_TIMEOUT);
  EXPECT_FALSE(p.has_pending());
}

TEST_F(FrameParserTest, DatagramsAreParsedIndividually) {
  FrameParser<LineTraits> p(options_, &counters_);
  flow::StreamChunk c = Chunk("Q 1 /trunc", 1);
  c.is_datagram = true;
  p.OnData(flow::StreamDirection::kRequest, c);
  EXPECT_EQ(counters_.truncated_datagrams->Value(), 1u);
  c = Chunk("Q 2 /ok\n", 2);
  c.is_datagram = true;
  p.OnData(flow::StreamDirection::kRequest, c);
  p.OnData(flow::StreamDirection::kResponse, Chunk("A 2 200\n", 3));
  auto recs = Stitch(&p, 3);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].request_resource(), "/ok");
}

}  // namespace
}  // namespace sonde::agent::protocols
