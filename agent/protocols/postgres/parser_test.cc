// PostgreSQL tests: framing, startup/SSLRequest handling, batching, and a golden replay of a
// capture recorded from a real PostgreSQL 15 server (testdata/record.sh).
#include "agent/protocols/postgres/parser.h"

#include <gtest/gtest.h>

#include "agent/protocols/redis/pcap_replay.h"

namespace sonde::agent::protocols::postgres {
namespace {

std::string Msg(char t, std::string_view body) {
  std::string m(1, t);
  const uint32_t len = static_cast<uint32_t>(body.size() + 4);
  for (int s = 24; s >= 0; s -= 8) m += static_cast<char>((len >> s) & 0xff);
  m += body;
  return m;
}

testing::ReplayResult ReplayBytes(const std::string& req, const std::string& resp, size_t step) {
  testing::Connection c;
  uint64_t ts = 1000;
  for (size_t i = 0; i < req.size(); i += step) c.chunks.push_back({true, ts++, 0, req.substr(i, step)});
  for (size_t i = 0; i < resp.size(); i += step) c.chunks.push_back({false, ts++, 0, resp.substr(i, step)});
  return testing::Replay<Traits>(c);
}

TEST(PostgresParser, TypedAndStartupMessages) {
  State st;
  std::string q = Msg('Q', std::string("SELECT 1\0", 9));
  for (size_t n = 0; n < q.size(); ++n) {
    std::string_view b(q.data(), n);
    Frame f;
    EXPECT_EQ(Traits::ParseFrame(MessageType::kRequest, &b, &f, &st), ParseState::kNeedsMoreData);
  }
  std::string_view b(q);
  Frame f;
  ASSERT_EQ(Traits::ParseFrame(MessageType::kRequest, &b, &f, &st), ParseState::kSuccess);
  EXPECT_EQ(f.type, 'Q');
  std::string ssl("\0\0\0\x08\x04\xd2\x16\x2f", 8);
  std::string_view sb(ssl);
  ASSERT_EQ(Traits::ParseFrame(MessageType::kRequest, &sb, &f, &st), ParseState::kSuccess);
  EXPECT_EQ(f.type, kSslRequest);
  std::string_view answer = "N";
  ASSERT_EQ(Traits::ParseFrame(MessageType::kResponse, &answer, &f, &st), ParseState::kSuccess);
  EXPECT_EQ(f.type, kSslAnswer);
  EXPECT_FALSE(st.encrypted);
  std::string_view junk = "\x16\x03\x01\x00\x10";
  EXPECT_EQ(Traits::ParseFrame(MessageType::kRequest, &junk, &f, &st), ParseState::kInvalid);
}

TEST(PostgresStitcher, PipelinedSyncBatchesPairInOrder) {
  std::string req = Msg('P', std::string("s1\0SELECT 1\0\0\0", 15)) + Msg('S', "") +
                    Msg('B', std::string("\0s1\0\0\0\0\0\0\0", 10)) + Msg('E', std::string("\0\0\0\0\0", 5)) +
                    Msg('S', "");
  std::string resp = Msg('1', "") + Msg('Z', "I") + Msg('2', "") + Msg('D', "x") +
                     Msg('C', std::string("SELECT 1\0", 9)) + Msg('Z', "I");
  for (size_t step : {1, 3, 1000}) {
    testing::ReplayResult r = ReplayBytes(req, resp, step);
    ASSERT_EQ(r.records.size(), 2u);
    EXPECT_EQ(r.records[0].request_type(), "Parse");
    EXPECT_EQ(r.records[1].request_type(), "Execute");
    EXPECT_EQ(r.records[1].request_resource(), "SELECT 1");
    EXPECT_EQ(r.records[1].response_result(), "SELECT 1");
  }
}

TEST(PostgresStitcher, ErrorCarriesSqlstate) {
  std::string err = Msg('E', std::string("SERROR\0C23505\0Mduplicate key\0\0", 32)) + Msg('Z', "I");
  testing::ReplayResult r = ReplayBytes(Msg('Q', std::string("INSERT\0", 7)), err, 4);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].response_code(), 23505);
  EXPECT_EQ(r.records[0].response_exception(), "duplicate key");
  EXPECT_EQ(r.records[0].response_status(), ::sonde::common::v1::RESPONSE_STATUS_CLIENT_ERROR);
}

TEST(PostgresGolden, LoopbackCapture) {
  std::vector<testing::Connection> conns;
  std::string err;
  ASSERT_TRUE(testing::ReadPcapConnections(
      testing::SourcePath("agent/protocols/postgres/testdata/postgres.pcap"), 15432, &conns, &err))
      << err;
  ASSERT_EQ(conns.size(), 1u);
  testing::ReplayResult r = testing::Replay<Traits>(conns[0]);
  EXPECT_EQ(r.invalid_requests + r.invalid_responses, 0u);
  std::string actual;
  for (const auto& rec : r.records) {
    actual += testing::Summarize(rec) + "\n";
    EXPECT_GE(rec.end_time_us(), rec.start_time_us());
  }
  EXPECT_EQ(testing::CompareGolden(
                actual, testing::SourcePath("agent/protocols/postgres/testdata/postgres.golden.txt")),
            "");
}

// Inference picks this protocol from the first bytes of every recorded connection, in the
// direction that speaks first, and rejects the other protocols' openings.
TEST(PostgresInfer, FirstChunkOfEveryRecordedConnection) {
  std::vector<testing::Connection> conns;
  std::string err;
  ASSERT_TRUE(testing::ReadPcapConnections(
      testing::SourcePath("agent/protocols/postgres/testdata/postgres.pcap"), 0, &conns, &err)) << err;
  ASSERT_FALSE(conns.empty());
  for (const auto& c : conns) {
    ASSERT_FALSE(c.chunks.empty());
    const auto& first = c.chunks.front();
    EXPECT_EQ(first.to_server, true);
    const auto dir = first.to_server ? flow::StreamDirection::kRequest : flow::StreamDirection::kResponse;
    EXPECT_EQ(Infer(dir, first.data, flow::ConnectionInfo{}), InferResult::kYes);
  }
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", flow::ConnectionInfo{}),
            InferResult::kNo);
  EXPECT_EQ(Infer(flow::StreamDirection::kResponse, "HTTP/1.1 200 OK\r\n\r\n", flow::ConnectionInfo{}),
            InferResult::kNo);
}

}  // namespace
}  // namespace sonde::agent::protocols::postgres
