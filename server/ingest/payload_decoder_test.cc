// PayloadDecoder gives wire::DecodePayload's answers (payloads and error codes) while reusing its
// buffer across frames of growing and shrinking sizes.
#include "server/ingest/payload_decoder.h"

#include <gtest/gtest.h>

#include <random>

namespace sonde::server::ingest {
namespace {

struct Frame {
  wire::FrameHeader header;
  std::string body;
};

Frame Split(const std::string& frame) {
  auto h = wire::DecodeHeader(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(frame.data()), wire::kHeaderBytes));
  EXPECT_TRUE(h.ok());
  return {*h, frame.substr(wire::kHeaderBytes)};
}

void ExpectSame(PayloadDecoder* d, const wire::FrameHeader& h, const std::string& body) {
  auto want = wire::DecodePayload(h, body);
  auto got = d->Decode(h, body);
  ASSERT_EQ(got.ok(), want.ok()) << (want.ok() ? got.status().ToString() : want.status().ToString());
  if (!want.ok()) {
    EXPECT_EQ(got.status().code(), want.status().code());
    EXPECT_EQ(got.status().message(), want.status().message());
    return;
  }
  EXPECT_EQ(std::string(*got), *want);
}

TEST(PayloadDecoderTest, SameAnswersAsDecodePayload) {
  std::mt19937_64 rng(5);
  PayloadDecoder decoder;
  for (size_t size : {100000u, 10u, 300000u, 0u, 5000u, 300000u, 64u}) {
    std::string payload;
    for (size_t i = 0; i < size; ++i) payload.push_back(static_cast<char>('a' + rng() % (i % 7 == 0 ? 26 : 3)));
    for (bool compress : {true, false}) {
      Frame f = Split(wire::EncodeFrame(payload, compress));
      ExpectSame(&decoder, f.header, f.body);
      if (!f.header.compressed) continue;
      // Damaged: truncated, a flipped byte in the middle, garbage, two frames back to back.
      ExpectSame(&decoder, f.header, f.body.substr(0, f.body.size() - 1));
      wire::FrameHeader shorter = f.header;
      shorter.payload_bytes = static_cast<uint32_t>(f.body.size() / 2);
      ExpectSame(&decoder, shorter, f.body.substr(0, f.body.size() / 2));
      std::string flipped = f.body;
      flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x5a);
      ExpectSame(&decoder, f.header, flipped);
      std::string garbage(f.body.size(), 'x');
      ExpectSame(&decoder, f.header, garbage);
      wire::FrameHeader twice = f.header;
      twice.payload_bytes = static_cast<uint32_t>(2 * f.body.size());
      ExpectSame(&decoder, twice, f.body + f.body);
    }
  }
}

}  // namespace
}  // namespace sonde::server::ingest
