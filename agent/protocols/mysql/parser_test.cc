// MySQL tests: framing edge cases, result sets split at every byte, and a golden replay of a
// capture recorded from a real MariaDB server (testdata/record.sh).
#include "agent/protocols/mysql/parser.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include "agent/protocols/common/frame_parser.h"
#include "agent/protocols/common/testing/golden.h"
#include "agent/protocols/redis/pcap_replay.h"

namespace sonde::agent::protocols::mysql {
namespace {

std::string Packet(uint8_t seq, std::string_view payload) {
  std::string p;
  p += static_cast<char>(payload.size() & 0xff);
  p += static_cast<char>((payload.size() >> 8) & 0xff);
  p += static_cast<char>((payload.size() >> 16) & 0xff);
  p += static_cast<char>(seq);
  p += payload;
  return p;
}

std::string Bin(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s += static_cast<char>(b);
  return s;
}

// A result set with two columns and two rows, classic EOFs, as a COM_QUERY response.
std::string ClassicResultSet() {
  std::string r = Packet(1, Bin({2}));
  r += Packet(2, "\x03" "def" "\x00\x00\x00\x02id");
  r += Packet(3, "\x03" "def" "\x00\x00\x00\x04name");
  r += Packet(4, Bin({0xfe, 0, 0, 0x22, 0}));
  r += Packet(5, "\x01" "1" "\x05" "apple");
  r += Packet(6, "\x01" "2" "\x04" "pear");
  r += Packet(7, Bin({0xfe, 0, 0, 0x22, 0}));
  return r;
}

testing::ReplayResult ReplayBytes(const std::string& req, const std::string& resp, size_t step) {
  testing::Connection c;
  uint64_t ts = 1000;
  for (size_t i = 0; i < req.size(); i += step) {
    c.chunks.push_back({true, ts++, static_cast<uint32_t>(i), req.substr(i, step)});
  }
  for (size_t i = 0; i < resp.size(); i += step) {
    c.chunks.push_back({false, ts++, static_cast<uint32_t>(i), resp.substr(i, step)});
  }
  return testing::Replay<Traits>(c);
}

TEST(MysqlParser, FramesAndNeedsMoreData) {
  State st;
  std::string pkt = Packet(0, "\x03SELECT 1");
  for (size_t n = 0; n < pkt.size(); ++n) {
    std::string_view b(pkt.data(), n);
    Frame f;
    EXPECT_EQ(Traits::ParseFrame(MessageType::kRequest, &b, &f, &st), ParseState::kNeedsMoreData);
  }
  std::string_view b(pkt);
  Frame f;
  ASSERT_EQ(Traits::ParseFrame(MessageType::kRequest, &b, &f, &st), ParseState::kSuccess);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(f.payload, "\x03SELECT 1");
  std::string bad = Packet(0, "\x7fxyz");
  std::string_view bb(bad);
  EXPECT_EQ(Traits::ParseFrame(MessageType::kRequest, &bb, &f, &st), ParseState::kInvalid);
}

TEST(MysqlStitcher, ClassicResultSetAtEverySplit) {
  const std::string req = Packet(0, "\x03SELECT id, name FROM t");
  for (size_t step : {1, 2, 3, 7, 1000}) {
    testing::ReplayResult r = ReplayBytes(req, ClassicResultSet(), step);
    ASSERT_EQ(r.records.size(), 1u) << step;
    EXPECT_EQ(r.records[0].request_type(), "COM_QUERY");
    EXPECT_EQ(r.records[0].endpoint(), "SELECT");
    EXPECT_EQ(r.records[0].response_result(), "rows=2");
    EXPECT_EQ(r.records[0].response_status(), ::sonde::common::v1::RESPONSE_STATUS_OK);
    EXPECT_EQ(r.records[0].response_length(), static_cast<int64_t>(ClassicResultSet().size()));
  }
}

TEST(MysqlStitcher, DeprecatedEofWithoutHandshakeAndError) {
  // Columns followed directly by rows and an OK terminator with 0xfe header; then an ERR.
  std::string resp = Packet(1, Bin({1})) + Packet(2, "\x03" "def" "\x00\x00\x00\x01x") +
                     Packet(3, "\x01" "7") + Packet(4, Bin({0xfe, 0, 0, 0x02, 0, 0, 0}));
  std::string req = Packet(0, "\x03select x from t");
  testing::ReplayResult r = ReplayBytes(req, resp, 1000);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].response_result(), "rows=1");
  std::string err = Packet(1, "\xff\x7a\x04#42S02Table 'x.y' doesn't exist");
  r = ReplayBytes(Packet(0, "\x03select * from y"), err, 5);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].response_code(), 1146);
  EXPECT_EQ(r.records[0].response_exception(), "Table 'x.y' doesn't exist");
  EXPECT_EQ(r.records[0].response_status(), ::sonde::common::v1::RESPONSE_STATUS_CLIENT_ERROR);
}

// MySQL 8 clients with CLIENT_QUERY_ATTRIBUTES send parameter_count 0 and parameter_set_count 1
// before the statement text (seen in DeepFlow's mysql-table-select capture).
TEST(MysqlStitcher, QueryAttributesPrefixIsNotPartOfTheStatement) {
  std::string req = Packet(0, std::string("\x03\x00\x01", 3) + "select * from test_table");
  testing::ReplayResult r = ReplayBytes(req, Packet(1, Bin({0, 0, 0, 2, 0, 0, 0})), 1000);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].request_resource(), "select * from test_table");
  EXPECT_EQ(r.records[0].endpoint(), "SELECT");
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, req, {}), InferResult::kYes);
}

// The compressed protocol (deepflow__mysql-use, deepflow__mysql-compressed-response): 7-byte
// headers, payloads stored (uncompressed length 0) or zlib-deflated, through the FrameParser.
std::string Compressed(uint8_t seq, std::string_view plain, bool deflate) {
  std::string payload(plain);
  if (deflate) {
    uLongf n = compressBound(plain.size());
    payload.resize(n);
    EXPECT_EQ(compress(reinterpret_cast<Bytef*>(payload.data()), &n,
                       reinterpret_cast<const Bytef*>(plain.data()), plain.size()),
              Z_OK);
    payload.resize(n);
  }
  std::string h = Packet(seq, payload);  // 3-byte length and sequence, as in plain packets
  const size_t u = deflate ? plain.size() : 0;
  h.insert(4, Bin({static_cast<int>(u & 0xff), static_cast<int>(u >> 8 & 0xff), static_cast<int>(u >> 16)}));
  return h;
}

TEST(MysqlParser, CompressedProtocolStoredAndDeflated) {
  const std::string use = Compressed(0, Packet(0, "\x03use `test`"), false);
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, use, {}), InferResult::kYes);
  metrics::Registry registry;
  ParserCounters counters = ParserCounters::Create(&registry, "MYSQL");
  FrameParser<Traits> parser(ParserOptions{}, &counters);
  // Recognised from the first chunk (a client's first write arrives whole); later packets are
  // split inside headers and payloads.
  size_t step = 1 << 20;
  auto feed = [&](flow::StreamDirection dir, const std::string& bytes, uint64_t ts) {
    for (size_t i = 0; i < bytes.size(); i += step) {
      flow::StreamChunk c;
      c.timestamp_ns = ts;
      std::string_view part = std::string_view(bytes).substr(i, step);
      c.data = {reinterpret_cast<const uint8_t*>(part.data()), part.size()};
      parser.OnData(dir, c);
    }
  };
  feed(flow::StreamDirection::kRequest, use, 1000);
  step = 5;
  feed(flow::StreamDirection::kResponse, Compressed(1, Packet(1, Bin({0, 0, 0, 2, 0, 0, 0})), false), 2000);
  const std::string query = "SELECT * FROM `az_controller_connection`";
  feed(flow::StreamDirection::kRequest, Compressed(0, Packet(0, "\x03" + query), false), 3000);
  feed(flow::StreamDirection::kResponse, Compressed(1, ClassicResultSet(), true), 4000);
  RecordBuffer out;
  parser.Stitch({5000, 1'000'000'000, true}, &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].request_resource(), "use `test`");
  EXPECT_EQ(out[0].response_status(), ::sonde::common::v1::RESPONSE_STATUS_OK);
  EXPECT_EQ(out[1].request_resource(), query);
  EXPECT_EQ(out[1].response_status(), ::sonde::common::v1::RESPONSE_STATUS_OK);
  EXPECT_EQ(counters.invalid_frames->Value(), 0u);
  // A plain first packet keeps the connection plain.
  State st;
  std::string unused;
  EXPECT_FALSE(Traits::Unwrap(MessageType::kRequest, Packet(0, "\x03select 1"), false, &st, &unused));
  EXPECT_EQ(st.compressed, 0);
}

// Compression negotiated in the handshake starts after the login's OK.
TEST(MysqlParser, CompressionNegotiatedInHandshake) {
  metrics::Registry registry;
  ParserCounters counters = ParserCounters::Create(&registry, "MYSQL");
  FrameParser<Traits> parser(ParserOptions{}, &counters);
  RecordBuffer out;
  uint64_t ts = 1000;
  auto feed = [&](flow::StreamDirection dir, const std::string& bytes) {
    flow::StreamChunk c;
    c.timestamp_ns = ++ts;
    c.data = {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
    parser.OnData(dir, c);
    parser.Stitch({ts, 1'000'000'000, false}, &out);  // as the analyzer does after each chunk
  };
  // Greeting: protocol 10, version, thread id, salt, filler, capabilities (low: PROTOCOL_41 |
  // COMPRESS | SECURE_CONNECTION), charset, status, capabilities (high), rest.
  const std::string greeting = Packet(0, std::string("\x0a" "8.0.36\0", 8) + std::string(4 + 8 + 1, '\1') +
                                             Bin({0x20, 0x82, 0x21, 0x02, 0x00, 0x00, 0x00}) +
                                             std::string(10 + 13, '\0'));
  std::string hs = Bin({0x20, 0x82, 0x00, 0x00}) + Bin({0, 0, 0, 1}) + Bin({0x21}) + std::string(23, '\0');
  hs += std::string("bob\0", 4) + Bin({0});  // user, empty auth response
  feed(flow::StreamDirection::kResponse, greeting);
  feed(flow::StreamDirection::kRequest, Packet(1, hs));
  feed(flow::StreamDirection::kResponse, Packet(2, Bin({0, 0, 0, 2, 0, 0, 0})));
  feed(flow::StreamDirection::kRequest, Compressed(0, Packet(0, "\x03select 1"), true));
  feed(flow::StreamDirection::kResponse, Compressed(0, ClassicResultSet(), true));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].request_resource(), "bob");
  EXPECT_EQ(out[1].request_resource(), "select 1");
  EXPECT_EQ(out[1].response_status(), ::sonde::common::v1::RESPONSE_STATUS_OK);
  EXPECT_EQ(out[1].response_result(), "rows=2");
  EXPECT_EQ(counters.invalid_frames->Value(), 0u);
}

// The stock client with --compress against MariaDB (testdata/record_compressed.sh), through the
// L7 analyzer: every command after the login is read from the compressed layer.
TEST(MysqlGolden, CompressedClientCapture) {
  auto recs = ::sonde::agent::protocols::testing::RecordsFromPcap(
      ::sonde::agent::protocols::testing::SourcePath("agent/protocols/mysql/testdata/mysql_compressed.pcap"));
  std::vector<std::string> got;
  for (const auto& r : recs) {
    got.push_back(r.request_type() + " " + r.request_resource().substr(0, 30) + " " +
                  ::sonde::common::v1::ResponseStatus_Name(r.response_status()) + " " +
                  std::to_string(r.response_code()));
  }
  const std::vector<std::string> want = {
      "LOGIN app RESPONSE_STATUS_OK 0",
      "COM_QUERY CREATE TABLE t (id INT PRIMARY RESPONSE_STATUS_OK 0",
      "COM_QUERY INSERT INTO t VALUES (1,'apple RESPONSE_STATUS_OK 0",
      "COM_QUERY SELECT * FROM t RESPONSE_STATUS_OK 0",
      "COM_QUERY SELECT REPEAT('x', 4000) AS bi RESPONSE_STATUS_OK 0",
      "COM_QUERY SELECT * FROM missing_table RESPONSE_STATUS_CLIENT_ERROR 1146",
      "COM_QUIT  RESPONSE_STATUS_OK 0"};
  EXPECT_EQ(got, want);
}

TEST(MysqlStitcher, UnansweredQueryTimesOut) {
  testing::ReplayResult r = ReplayBytes(Packet(0, "\x03SELECT SLEEP(100)"), "", 1000);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].response_status(), ::sonde::common::v1::RESPONSE_STATUS_TIMEOUT);
}

TEST(MysqlGolden, MariaDbLoopbackCapture) {
  std::vector<testing::Connection> conns;
  std::string err;
  ASSERT_TRUE(testing::ReadPcapConnections(
      testing::SourcePath("agent/protocols/mysql/testdata/mysql.pcap"), 13306, &conns, &err))
      << err;
  ASSERT_EQ(conns.size(), 3u);
  std::string actual;
  for (const auto& c : conns) {
    testing::ReplayResult r = testing::Replay<Traits>(c);
    EXPECT_EQ(r.invalid_requests + r.invalid_responses, 0u);
    actual += "# connection\n";
    for (const auto& rec : r.records) {
      actual += testing::Summarize(rec) + "\n";
      EXPECT_GE(rec.end_time_us(), rec.start_time_us());
      EXPECT_EQ(rec.version(), "10.11.19-MariaDB-0+deb12u1");
    }
  }
  EXPECT_EQ(testing::CompareGolden(
                actual, testing::SourcePath("agent/protocols/mysql/testdata/mysql.golden.txt")),
            "");
}

// Inference picks this protocol from the first bytes of every recorded connection, in the
// direction that speaks first, and rejects the other protocols' openings.
TEST(MysqlInfer, FirstChunkOfEveryRecordedConnection) {
  std::vector<testing::Connection> conns;
  std::string err;
  ASSERT_TRUE(testing::ReadPcapConnections(
      testing::SourcePath("agent/protocols/mysql/testdata/mysql.pcap"), 0, &conns, &err)) << err;
  ASSERT_FALSE(conns.empty());
  for (const auto& c : conns) {
    ASSERT_FALSE(c.chunks.empty());
    const auto& first = c.chunks.front();
    EXPECT_EQ(first.to_server, false);
    const auto dir = first.to_server ? flow::StreamDirection::kRequest : flow::StreamDirection::kResponse;
    EXPECT_EQ(Infer(dir, first.data, flow::ConnectionInfo{}), InferResult::kYes);
  }
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", flow::ConnectionInfo{}),
            InferResult::kNo);
  EXPECT_EQ(Infer(flow::StreamDirection::kResponse, "HTTP/1.1 200 OK\r\n\r\n", flow::ConnectionInfo{}),
            InferResult::kNo);
}

}  // namespace
}  // namespace sonde::agent::protocols::mysql
