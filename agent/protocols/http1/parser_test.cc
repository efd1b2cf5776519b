// HTTP/1 parser: unit cases plus a golden test over a real nginx capture (testdata/record.sh).
#include "agent/protocols/http1/parser.h"

#include <gtest/gtest.h>

#include "agent/protocols/common/frame_parser.h"
#include "agent/protocols/common/testing/golden.h"

namespace sonde::agent::protocols::http1 {
namespace {

flow::StreamChunk Chunk(std::string_view s, uint64_t ts, uint32_t gap = 0) {
  flow::StreamChunk c;
  c.timestamp_ns = ts;
  c.data = {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  c.gap_bytes_before = gap;
  return c;
}

class Http1Test : public ::testing::Test {
 protected:
  Http1Test() : counters_(ParserCounters::Create(&registry_, "HTTP1")), parser_(options_, &counters_) {}
  void Req(std::string_view s, uint64_t ts = 1000, uint32_t gap = 0) {
    parser_.OnData(flow::StreamDirection::kRequest, Chunk(s, ts, gap));
  }
  void Resp(std::string_view s, uint64_t ts = 2000, uint32_t gap = 0) {
    parser_.OnData(flow::StreamDirection::kResponse, Chunk(s, ts, gap));
  }
  std::vector<v1::L7RequestLog> Stitch(bool closed = false) {
    RecordBuffer out;
    parser_.Stitch({1'000'000, 30'000'000'000ULL, closed}, &out);
    return out.ToVector();
  }
  metrics::Registry registry_;
  ParserOptions options_;
  ParserCounters counters_;
  FrameParser<Traits> parser_;
};

TEST_F(Http1Test, SimpleGetWithHeaders) {
  Req("GET /api/v1/users/1234?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\n"
      "X-B3-TraceId: 463ac35c9f6413ad\r\nX-B3-SpanId: a2fb4a1d1a96d312\r\n\r\n");
  Resp("HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!");
  auto recs = Stitch();
  ASSERT_EQ(recs.size(), 1u);
  const auto& r = recs[0];
  EXPECT_EQ(r.version(), "1.1");
  EXPECT_EQ(r.request_type(), "GET");
  EXPECT_EQ(r.request_domain(), "example.com");
  EXPECT_EQ(r.request_resource(), "/api/v1/users/1234?x=1");
  EXPECT_EQ(r.endpoint(), "/api/v1/users/{id}");
  EXPECT_EQ(r.user_agent(), "t/1");
  EXPECT_EQ(r.trace_id(), "463ac35c9f6413ad");
  EXPECT_EQ(r.response_code(), 404);
  EXPECT_EQ(r.response_status(), common::v1::RESPONSE_STATUS_CLIENT_ERROR);
  EXPECT_EQ(r.response_exception(), "Not Found");
  EXPECT_EQ(r.response_length(), 45 + 5);
  EXPECT_EQ(r.response_duration(), 1u);
}

TEST_F(Http1Test, BodiesSplitAcrossChunksChunkedAndPipelined) {
  Req("POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234");
  Req("56789GET /b HTTP/1.1\r\n\r\n");
  Resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
  Resp("4;ext=1\r\ndefg\r\n0\r\n\r\nHTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n");
  auto recs = Stitch();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].request_type(), "POST");
  EXPECT_EQ(recs[0].request_length(), 40 + 10);
  EXPECT_EQ(recs[0].response_code(), 200);
  EXPECT_EQ(recs[1].request_resource(), "/b");
  EXPECT_EQ(recs[1].response_code(), 500);
  EXPECT_EQ(recs[1].response_status(), common::v1::RESPONSE_STATUS_SERVER_ERROR);
  EXPECT_EQ(counters_.invalid_frames->Value(), 0u);
}

// Idle (a fresh parser would go on the same way) only between complete exchanges: not while a
// request waits for its response, nor inside a body, nor after an upgrade.
TEST_F(Http1Test, IdleOnlyBetweenExchanges) {
  EXPECT_TRUE(parser_.idle());
  Req("POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234");
  Stitch();
  EXPECT_FALSE(parser_.idle());  // body half read
  Req("56789");
  Stitch();
  EXPECT_FALSE(parser_.idle());  // request waits for its response
  Resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
  EXPECT_EQ(Stitch().size(), 1u);
  EXPECT_FALSE(parser_.idle());  // inside the chunked body
  Resp("0\r\n\r\n");
  Stitch();
  EXPECT_TRUE(parser_.idle());
  Req("GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  Resp("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n");
  Stitch();
  EXPECT_FALSE(parser_.idle());  // opaque from now on
}

// Known names are matched in any letter case and only so: names that differ from one in a
// non-letter byte, or by a byte that equals a letter with bit 0x20 set or cleared, are other
// headers (their values are not taken).
TEST_F(Http1Test, KnownHeaderNamesMatchCaseInsensitivelyOnly) {
  Req("GET /a HTTP/1.1\r\nHOST: h1\r\nuSeR-aGeNt: u1\r\nX-B3-TRACEID: 0af7651916cd43dd8448eb211c80319c\r\n\r\n", 1000);
  Resp("HTTP/1.1 200 OK\r\nCONTENT-length: 2\r\n\r\nok", 2000);
  Req("GET /b HTTP/1.1\r\nH0st: h2\r\nUser_Agent: u2\r\nUser\x0dAgent: u3\r\nContent-Lengt\x08: 9\r\n\r\n", 3000);
  Resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 4000);
  auto recs = Stitch();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].request_domain(), "h1");
  EXPECT_EQ(recs[0].user_agent(), "u1");
  EXPECT_EQ(recs[0].trace_id(), "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(recs[0].response_length(), 38 + 2);
  EXPECT_EQ(recs[1].request_domain(), "");
  EXPECT_EQ(recs[1].user_agent(), "");
  EXPECT_EQ(recs[1].request_resource(), "/b");
  EXPECT_EQ(counters_.invalid_frames->Value(), 0u);
}

// Content-Length is digits only (surrounding blanks trimmed), at most 18 of them, as
// std::from_chars reads an unsigned number; anything else makes the head malformed.
TEST_F(Http1Test, ContentLengthDigitsOnly) {
  uint64_t ts = 1000;
  for (const char* bad : {"+5", "-1", "1e3", "0x10", "5 5", "", "1234567890123456789"}) {
    const uint64_t before = counters_.invalid_frames->Value();
    Req(std::string("PUT /x HTTP/1.1\r\nContent-Length: ") + bad + "\r\n\r\n", ts++);
    EXPECT_EQ(counters_.invalid_frames->Value(), before + 1) << bad;
  }
  Stitch(/*closed=*/true);
  Req("PUT /y HTTP/1.1\r\nContent-Length:  0003 \r\n\r\nabcGET /z HTTP/1.1\r\n\r\n", 2000);
  Resp("HTTP/1.1 200 OK\r\nContent-Length: 000000000000000002\r\n\r\nokHTTP/1.1 204 No\r\n\r\n", 3000);
  auto recs = Stitch();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].request_resource(), "/y");
  EXPECT_EQ(recs[0].response_code(), 200);
  EXPECT_EQ(recs[1].request_resource(), "/z");
  EXPECT_EQ(recs[1].response_code(), 204);
}

TEST_F(Http1Test, ContinueHeadAndNoBodyStatuses) {
  Req("PUT /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  Resp("HTTP/1.1 100 Continue\r\n\r\n");
  Req("abc");
  Resp("HTTP/1.1 204 No Content\r\n\r\n");
  Req("HEAD /h HTTP/1.1\r\n\r\n");
  Resp("HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n");  // HEAD: no body follows
  Req("GET /after HTTP/1.1\r\n\r\n");
  Resp("HTTP/1.1 304 Not Modified\r\n\r\n");
  auto recs = Stitch();
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].response_code(), 204);
  EXPECT_EQ(recs[1].request_type(), "HEAD");
  EXPECT_EQ(recs[2].response_code(), 304);
}

// A refused CONNECT leaves the connection HTTP; an accepted one makes it a tunnel (opaque).
TEST_F(Http1Test, ConnectTunnelsOnlyWhenAccepted) {
  Req("CONNECT db:5432 HTTP/1.1\r\n\r\n");
  Resp("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\nno");
  Req("CONNECT db:5432 HTTP/1.1\r\n\r\n", 3000);
  Resp("HTTP/1.1 200 Connection Established\r\n\r\n", 4000);
  Req("GET /inside HTTP/1.1\r\n\r\n", 5000);  // tunnelled bytes, not a request
  Resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 6000);
  auto recs = Stitch(/*closed=*/true);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].response_code(), 407);
  EXPECT_EQ(recs[1].request_type(), "CONNECT");
  EXPECT_EQ(recs[1].response_code(), 200);
  EXPECT_EQ(counters_.invalid_frames->Value(), 0u);
}

TEST_F(Http1Test, UpgradeMakesConnectionOpaque) {
  Req("GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  Resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello");
  Req("\x81\x85garbage-frames");
  auto recs = Stitch(/*closed=*/true);
  ASSERT_EQ(recs.size(), 1u);  // the upgrade request: 101 is informational, so it stays open
  EXPECT_EQ(recs[0].response_status(), common::v1::RESPONSE_STATUS_TIMEOUT);
  EXPECT_EQ(counters_.invalid_frames->Value(), 0u);
}

TEST_F(Http1Test, GapInBodyResyncsOnNextHead) {
  Req("GET /1 HTTP/1.1\r\n\r\n");
  Resp("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nxxxx");
  Resp("yyyyHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 3000, 5000);
  Req("GET /2 HTTP/1.1\r\n\r\n", 2500);
  auto recs = Stitch();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[1].request_resource(), "/2");
  EXPECT_EQ(counters_.gaps->Value(), 1u);
}

// A capture that ends inside heads (deepflow__client-ip, deepflow__istio-tcp-frag): the start
// lines seen still make a request and its status; a partial last header line is dropped.
TEST_F(Http1Test, HeadsCutShortAtCloseStillReport) {
  Req("POST /check?x=1 HTTP/1.1\r\nHost: a.example\r\nContent-Type: appl");
  Resp("HTTP/1.0 200 OK\r\n");
  EXPECT_TRUE(Stitch().empty());  // still open: the rest may come
  auto recs = Stitch(/*closed=*/true);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].request_type(), "POST");
  EXPECT_EQ(recs[0].request_resource(), "/check?x=1");
  EXPECT_EQ(recs[0].request_domain(), "a.example");
  EXPECT_EQ(recs[0].response_code(), 200);
  EXPECT_EQ(recs[0].response_status(), common::v1::RESPONSE_STATUS_OK);
  EXPECT_EQ(counters_.truncated_frames->Value(), 2u);
}

TEST_F(Http1Test, ResponseWaitsForRequestHeadStillArriving) {
  Req("PUT /late HTTP/1.1\r\nHost: b.example\r\nX-Long: aaaa", 5000);
  Resp("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n", 6000);
  EXPECT_TRUE(Stitch().empty());
  auto recs = Stitch(/*closed=*/true);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].request_resource(), "/late");
  EXPECT_EQ(recs[0].response_code(), 413);
  EXPECT_EQ(counters_.unpaired_responses->Value(), 0u);
}

TEST_F(Http1Test, NoStartLineNothingSalvaged) {
  Req("GET /a HTTP/1.1\r\n\r\n", 3000);
  Resp("HTTP/1.1 20", 4000);
  auto recs = Stitch(/*closed=*/true);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].response_status(), common::v1::RESPONSE_STATUS_TIMEOUT);
  EXPECT_EQ(counters_.truncated_frames->Value(), 0u);
}

TEST_F(Http1Test, CloseDelimitedResponseAndHttp10) {
  Req("GET /old HTTP/1.0\r\n\r\n");
  Resp("HTTP/1.0 200 OK\r\n\r\nbody without length");
  Resp("more body HTTP/1.1 200 OK\r\n");  // still the body
  auto recs = Stitch();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].version(), "1.0");
  EXPECT_EQ(recs[0].response_code(), 200);
}

TEST_F(Http1Test, HeaderLineSyntax) {
  // Names in any case, whitespace around values and blank-looking lines; bare LF line ends.
  Req("GET /h HTTP/1.1\r\n  hOST:\t a.example \t\r\n \t\r\nUSER-AGENT:ua\r\n"
      "x-request-id:  rid-7  \r\nTraNsfer-Encoding: gzip, CHUNKED\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n");
  Resp("HTTP/1.1 200 OK\ncontent-length:   2 \nConnection: Keep-Alive\n\nok");
  auto recs = Stitch();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].request_domain(), "a.example");
  EXPECT_EQ(recs[0].user_agent(), "ua");
  EXPECT_EQ(recs[0].x_request_id(), "rid-7");
  EXPECT_EQ(recs[0].request_length(), 118 + 13);  // head + chunked body
  EXPECT_EQ(recs[0].response_length(), 61 + 2);
  EXPECT_EQ(counters_.invalid_frames->Value(), 0u);
  // A space inside a name, a line without a colon and an empty name are malformed heads.
  Req("GET /a HTTP/1.1\r\nBad Name: x\r\n\r\n", 3000);
  Req("GET /b HTTP/1.1\r\nNoColonHere\r\n\r\n", 3001);
  Req("GET /c HTTP/1.1\r\n: empty\r\n\r\n", 3002);
  Req("GET /e HTTP/1.1\r\nA-Rather-Long-Bad Name: x\r\n\r\n", 3003);
  EXPECT_EQ(counters_.invalid_frames->Value(), 4u);
  // A tab inside a name is accepted (only a space is refused), and so is a long name.
  Req("GET /d HTTP/1.1\r\nOdd\tName: x\r\nX-A-Rather-Long-Header-Name-Here:v\r\n\r\n", 3004);
  EXPECT_EQ(counters_.invalid_frames->Value(), 4u);
  recs = Stitch(/*closed=*/true);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].request_resource(), "/d");
}

// Line ends and name ends are searched for in blocks of 16 bytes, then 8, then bytes: every
// length of name and value around those sizes, and a space in a name at each position, parse as
// a byte-by-byte scan would.
TEST_F(Http1Test, HeaderScanBlockBoundaries) {
  uint64_t ts = 1000;
  size_t expected_invalid = 0;
  for (size_t name_len = 1; name_len <= 40; ++name_len) {
    for (size_t value_len = 0; value_len <= 40; value_len += 3) {
      const std::string name = "X" + std::string(name_len - 1, 'n');
      const std::string host = "h" + std::to_string(name_len) + "-" + std::string(value_len, 'v');
      Req("GET /s HTTP/1.1\r\n" + name + ": " + std::string(value_len, 'v') + "\r\nHost:" + host +
              "\r\n\r\n",
          ts);
      Resp("HTTP/1.1 204 No Content\r\n\r\n", ts + 1);
      auto recs = Stitch();
      ASSERT_EQ(recs.size(), 1u) << name_len << " " << value_len;
      EXPECT_EQ(recs[0].request_domain(), host);
      ts += 2;
    }
    // The same name with a space in it, at its end or inside: malformed.
    std::string bad = "X" + std::string(name_len - 1, 'n');
    bad[name_len / 2] = ' ';
    Req("GET /b HTTP/1.1\r\n" + bad + ": v\r\n\r\n", ts);
    ++expected_invalid;  // (a one-byte name becomes a leading space: trimmed, then empty)
    EXPECT_EQ(counters_.invalid_frames->Value(), expected_invalid) << name_len;
    Stitch(/*closed=*/true);
    ts += 2;
  }
}

TEST(Http1InferTest, Signatures) {
  flow::ConnectionInfo c;
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, "GET / HTTP/1.1\r\n", c), InferResult::kYes);
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, "GE", c), InferResult::kMaybe);
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, "PRI * HTTP/2.0\r\n", c), InferResult::kNo);
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, "GET x\r\n", c), InferResult::kNo);
  EXPECT_EQ(Infer(flow::StreamDirection::kResponse, "HTTP/1.1 200 OK", c), InferResult::kYes);
  EXPECT_EQ(Infer(flow::StreamDirection::kResponse, "HTTP/2 200", c), InferResult::kNo);
}

TEST(Http1GoldenTest, NginxLoopbackCapture) {
  auto recs = testing::RecordsFromPcap(
      testing::SourcePath("agent/protocols/http1/testdata/http1_nginx.pcap"));
  // What testdata/record.sh sent: 3 keep-alive GETs, gzip GET, POST 100-continue, 503, HEAD,
  // HTTP/1.0 GET, 2 pipelined GETs.
  ASSERT_EQ(recs.size(), 10u);
  int ok = 0, client_err = 0, server_err = 0;
  for (const auto& r : recs) {
    EXPECT_EQ(r.l7_protocol(), common::v1::L7_PROTOCOL_HTTP1);
    EXPECT_EQ(r.server_port(), 18080u);
    ok += r.response_status() == common::v1::RESPONSE_STATUS_OK;
    client_err += r.response_status() == common::v1::RESPONSE_STATUS_CLIENT_ERROR;
    server_err += r.response_status() == common::v1::RESPONSE_STATUS_SERVER_ERROR;
  }
  EXPECT_EQ(ok, 8);
  EXPECT_EQ(client_err, 1);
  EXPECT_EQ(server_err, 1);
  EXPECT_EQ(recs[0].trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(recs[0].x_request_id(), "req-1");
  std::string diff = testing::CompareWithGolden(
      "agent/protocols/http1/testdata/http1_nginx.golden", testing::RecordsToText(recs));
  EXPECT_TRUE(diff.empty()) << diff;
}

}  // namespace
}  // namespace sonde::agent::protocols::http1
