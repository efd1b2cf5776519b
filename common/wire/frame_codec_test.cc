#include "common/wire/frame_codec.h"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace sonde::wire {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(FrameCodecTest, RoundTripCompressedAndPlain) {
  std::string payload(10000, 'a');
  for (bool compress : {false, true}) {
    std::string frame = EncodeFrame(payload, compress);
    auto h = DecodeHeader(Bytes(frame));
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    EXPECT_EQ(h->compressed, compress);
    auto body = DecodePayload(*h, std::string_view(frame).substr(kHeaderBytes));
    ASSERT_TRUE(body.ok());
    EXPECT_EQ(*body, payload);
  }
}

TEST(FrameCodecTest, RejectsGarbage) {
  EXPECT_EQ(DecodeHeader(Bytes("GET / HTTP/1.1\r\n")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeHeader(Bytes("SND1")).status().code(), StatusCode::kDataLoss);
  std::string huge = EncodeFrame("x", false);
  huge[8] = '\x7f';  // length far above the limit
  EXPECT_EQ(DecodeHeader(Bytes(huge)).status().code(), StatusCode::kOutOfRange);
  FrameHeader h{5, true};
  EXPECT_FALSE(DecodePayload(h, "hello").ok());  // not zstd
}

TEST(FrameCodecTest, SocketRoundTripAndTimeout) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ASSERT_TRUE(WriteFrame(sv[0], "hello agent", true).ok());
  auto got = ReadFrame(sv[1], 1000);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "hello agent");
  EXPECT_EQ(ReadFrame(sv[1], 50).status().code(), StatusCode::kDeadlineExceeded);
  close(sv[0]);
  EXPECT_EQ(ReadFrame(sv[1], 1000).status().code(), StatusCode::kUnavailable);
  close(sv[1]);
}

}  // namespace
}  // namespace sonde::wire
