// MQTT tests: framing, both-direction pairing (QoS 1/2, broker->client PUBLISH), and a golden
// replay of a capture recorded from a real mosquitto broker (testdata/record.sh).
#include "agent/protocols/mqtt/parser.h"

#include <gtest/gtest.h>

#include "agent/protocols/redis/pcap_replay.h"

namespace sonde::agent::protocols::mqtt {
namespace {

std::string Bin(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s += static_cast<char>(b);
  return s;
}

TEST(MqttParser, FixedHeaderAndFields) {
  State st;
  const std::string publish = Bin({0x32, 0x0b, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x05, 'h', 'e', 'l', 'l'});
  for (size_t n = 0; n < publish.size(); ++n) {
    std::string_view b(publish.data(), n);
    Frame f;
    EXPECT_EQ(Traits::ParseFrame(MessageType::kRequest, &b, &f, &st), ParseState::kNeedsMoreData) << n;
  }
  std::string_view b(publish);
  Frame f;
  ASSERT_EQ(Traits::ParseFrame(MessageType::kRequest, &b, &f, &st), ParseState::kSuccess);
  EXPECT_EQ(f.topic, "a/b");
  EXPECT_EQ(f.qos, 1);
  EXPECT_EQ(f.packet_id, 5);
  // QoS 3 and bad flags are invalid; a 5-byte remaining length is invalid.
  std::string_view bad1 = "\x36\x02\x00\x00";
  EXPECT_EQ(Traits::ParseFrame(MessageType::kRequest, &bad1, &f, &st), ParseState::kInvalid);
  std::string bad2 = Bin({0x30, 0xff, 0xff, 0xff, 0xff, 0x01});
  std::string_view b2(bad2);
  EXPECT_EQ(Traits::ParseFrame(MessageType::kRequest, &b2, &f, &st), ParseState::kInvalid);
  // CONNACK never comes from a client.
  std::string connack = Bin({0x20, 0x02, 0x00, 0x00});
  std::string_view b3(connack);
  EXPECT_EQ(Traits::ParseFrame(MessageType::kRequest, &b3, &f, &st), ParseState::kInvalid);
}

TEST(MqttStitcher, BrokerPublishAckedByClient) {
  // Broker -> client PUBLISH QoS 1 (id 9), client answers PUBACK: a request from the broker.
  testing::Connection c;
  c.chunks.push_back({false, 1000, 0, Bin({0x32, 0x07, 0x00, 0x01, 't', 0x00, 0x09, 'x', 'y'})});
  c.chunks.push_back({true, 2000, 0, Bin({0x40, 0x02, 0x00, 0x09})});
  testing::ReplayResult r = testing::Replay<Traits>(c);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].request_type(), "PUBLISH");
  EXPECT_EQ(r.records[0].request_resource(), "t");
  EXPECT_EQ(r.records[0].request_id(), 9u);
  EXPECT_EQ(r.records[0].response_status(), ::sonde::common::v1::RESPONSE_STATUS_OK);
  EXPECT_EQ(r.records[0].response_duration(), 1u);
}

TEST(MqttGolden, MosquittoLoopbackCapture) {
  std::vector<testing::Connection> conns;
  std::string err;
  ASSERT_TRUE(testing::ReadPcapConnections(
      testing::SourcePath("agent/protocols/mqtt/testdata/mqtt.pcap"), 11883, &conns, &err))
      << err;
  ASSERT_EQ(conns.size(), 6u);
  std::string actual;
  for (const auto& c : conns) {
    testing::ReplayResult r = testing::Replay<Traits>(c);
    EXPECT_EQ(r.invalid_requests + r.invalid_responses, 0u);
    actual += "# connection\n";
    for (const auto& rec : r.records) actual += testing::Summarize(rec) + "\n";
    const auto dir = flow::StreamDirection::kRequest;
    EXPECT_EQ(Infer(dir, c.chunks.front().data, flow::ConnectionInfo{}), InferResult::kYes);
  }
  EXPECT_EQ(testing::CompareGolden(
                actual, testing::SourcePath("agent/protocols/mqtt/testdata/mqtt.golden.txt")),
            "");
}

}  // namespace
}  // namespace sonde::agent::protocols::mqtt
