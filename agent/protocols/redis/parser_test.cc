// Redis parser tests: crafted RESP2/RESP3 edge cases, and a golden replay of a real capture.
#include "agent/protocols/redis/parser.h"

#include <gtest/gtest.h>

#include "agent/protocols/common/frame_parser.h"
#include "agent/protocols/redis/pcap_replay.h"

namespace sonde::agent::protocols::redis {
namespace {

ParseState Parse(MessageType t, std::string_view in, Frame* f, size_t* rest = nullptr) {
  State st;
  std::string_view buf = in;
  ParseState s = Traits::ParseFrame(t, &buf, f, &st);
  if (rest) *rest = buf.size();
  return s;
}

TEST(RedisParser, RequestCommandAndKey) {
  Frame f;
  size_t rest = 0;
  ASSERT_EQ(Parse(MessageType::kRequest, "*3\r\n$3\r\nset\r\n$4\r\nkey3\r\n$2\r\nme\r\n*1", &f, &rest),
            ParseState::kSuccess);
  EXPECT_EQ(f.command, "SET");
  EXPECT_EQ(f.key, "key3");
  EXPECT_EQ(rest, 2u);
  EXPECT_EQ(f.frame_bytes, 31u);
}

TEST(RedisParser, AuthPasswordIsNotStoredAsKey) {
  Frame f;
  ASSERT_EQ(Parse(MessageType::kRequest, "*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n", &f),
            ParseState::kSuccess);
  EXPECT_EQ(f.command, "AUTH");
  EXPECT_EQ(f.key, "");
}

TEST(RedisParser, EveryPrefixNeedsMoreData) {
  const std::string req = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
  const std::string resp = "%2\r\n+a\r\n:1\r\n$1\r\nb\r\n*2\r\n,1.5\r\n#t\r\n";
  for (size_t n = 0; n < req.size(); ++n) {
    Frame f;
    EXPECT_EQ(Parse(MessageType::kRequest, req.substr(0, n), &f), ParseState::kNeedsMoreData) << n;
  }
  for (size_t n = 0; n < resp.size(); ++n) {
    Frame f;
    EXPECT_EQ(Parse(MessageType::kResponse, resp.substr(0, n), &f), ParseState::kNeedsMoreData)
        << n;
  }
  Frame f;
  EXPECT_EQ(Parse(MessageType::kResponse, resp, &f), ParseState::kSuccess);
  EXPECT_EQ(f.result, "(2 elements)");
}

TEST(RedisParser, ErrorsAndNull) {
  Frame f;
  ASSERT_EQ(Parse(MessageType::kResponse, "-WRONGTYPE Operation against a key\r\n", &f),
            ParseState::kSuccess);
  EXPECT_TRUE(f.is_error);
  EXPECT_EQ(f.error, "WRONGTYPE Operation against a key");
  Frame g;
  ASSERT_EQ(Parse(MessageType::kResponse, "!9\r\nERR blob!\r\n", &g), ParseState::kSuccess);
  EXPECT_EQ(g.error, "ERR blob!");
  Frame h;
  ASSERT_EQ(Parse(MessageType::kResponse, "$-1\r\n", &h), ParseState::kSuccess);
  EXPECT_EQ(h.result, "(nil)");
}

TEST(RedisParser, PushesAndConfirmations) {
  Frame f;
  ASSERT_EQ(Parse(MessageType::kResponse, ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", &f),
            ParseState::kSuccess);
  EXPECT_EQ(f.kind, ReplyKind::kPush);
  EXPECT_EQ(f.push_channel, "ch");
  Frame g;
  ASSERT_EQ(Parse(MessageType::kResponse, "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n", &g),
            ParseState::kSuccess);
  EXPECT_EQ(g.kind, ReplyKind::kConfirm);
  // An attribute annotates the reply after it.
  Frame h;
  ASSERT_EQ(Parse(MessageType::kResponse, "|1\r\n+ttl\r\n:3\r\n+OK\r\n", &h), ParseState::kSuccess);
  EXPECT_EQ(h.result, "OK");
}

TEST(RedisParser, InvalidInput) {
  Frame f;
  EXPECT_EQ(Parse(MessageType::kRequest, "*1\r\n:5\r\n", &f), ParseState::kInvalid);
  EXPECT_EQ(Parse(MessageType::kRequest, "\x16\x03\x01\x02\x00", &f), ParseState::kInvalid);
  EXPECT_EQ(Parse(MessageType::kResponse, "$99999999999\r\n", &f), ParseState::kInvalid);
  EXPECT_EQ(Parse(MessageType::kResponse, "$3\r\nabcXY", &f), ParseState::kInvalid);
  std::string deep(100, '*');
  std::string nested;
  for (int i = 0; i < 40; ++i) nested += "*1\r\n";
  EXPECT_EQ(Parse(MessageType::kResponse, nested + ":1\r\n", &f), ParseState::kInvalid);
}

// A line may hold kMaxLineBytes bytes before its CRLF; a longer one is invalid whether its CRLF
// has arrived or not, and a shorter one without CRLF waits for more.
TEST(RedisParser, LineLengthLimit) {
  Frame f;
  const std::string at_limit(kMaxLineBytes, 'a');
  EXPECT_EQ(Parse(MessageType::kResponse, "+" + at_limit + "\r\n", &f), ParseState::kSuccess);
  EXPECT_EQ(f.result.size(), kMaxFieldBytes);
  EXPECT_EQ(Parse(MessageType::kResponse, "+" + at_limit + "a\r\n", &f), ParseState::kInvalid);
  EXPECT_EQ(Parse(MessageType::kResponse, "+" + at_limit + "a", &f), ParseState::kInvalid);
  EXPECT_EQ(Parse(MessageType::kResponse, "+" + at_limit, &f), ParseState::kNeedsMoreData);
  EXPECT_EQ(Parse(MessageType::kResponse, "+OK\r", &f), ParseState::kNeedsMoreData);
  EXPECT_EQ(Parse(MessageType::kResponse, "+O\rK\r\n", &f), ParseState::kSuccess);
  EXPECT_EQ(f.result, "O\rK");
}

// Commands without a key keep none; every other second word is the key, whatever the case the
// command was sent in (lengths and first letters shared with a no-key command included).
TEST(RedisParser, KeyOnlyForCommandsThatTakeOne) {
  auto key_of = [](std::string_view cmd) {
    Frame f;
    const std::string req = "*2\r\n$" + std::to_string(cmd.size()) + "\r\n" + std::string(cmd) +
                            "\r\n$1\r\nk\r\n";
    EXPECT_EQ(Parse(MessageType::kRequest, req, &f), ParseState::kSuccess) << cmd;
    return f.key;
  };
  for (std::string_view cmd : {"PING", "ping", "Auth", "SELECT", "XREADGROUP", "LOLWUT", "ACL",
                               "SCAN", "TIME", "wait", "RandomKey"}) {
    EXPECT_EQ(key_of(cmd), "") << cmd;
  }
  for (std::string_view cmd : {"GET", "SET", "set", "SADD", "SCARD", "ECHOX", "AUTHX", "PINGS",
                               "XREADGROUPS", "TIMEX", "ACLS", "HGETALL", "ZRANGEBYSCORE"}) {
    EXPECT_EQ(key_of(cmd), "k") << cmd;
  }
}

// Bulk elements take a one-pass path; every shape it declines or refuses answers as before.
TEST(RedisParser, BulkElementShapes) {
  Frame f;
  ASSERT_EQ(Parse(MessageType::kRequest, "*2\r\n$003\r\nget\r\n$0\r\n\r\n", &f), ParseState::kSuccess);
  EXPECT_EQ(f.command, "GET");
  EXPECT_EQ(f.key, "");
  EXPECT_EQ(f.frame_bytes, 21u);
  // 19 digits: longer than the one-pass path reads; the general path refuses the size.
  EXPECT_EQ(Parse(MessageType::kRequest, "*1\r\n$0000000000000000003\r\nGET\r\n", &f),
            ParseState::kSuccess);
  EXPECT_EQ(f.command, "GET");
  EXPECT_EQ(Parse(MessageType::kRequest, "*1\r\n$1000000000000000000\r\nGET\r\n", &f),
            ParseState::kInvalid);
  EXPECT_EQ(Parse(MessageType::kRequest, "*1\r\n$536870913\r\nGET\r\n", &f), ParseState::kInvalid);
  EXPECT_EQ(Parse(MessageType::kRequest, "*2\r\n$3\r\nGET\r\n$3\r\nkeyXY", &f), ParseState::kInvalid);
  EXPECT_EQ(Parse(MessageType::kRequest, "*2\r\n$3\r\nGET\r\n$3\r\nke", &f), ParseState::kNeedsMoreData);
  EXPECT_EQ(Parse(MessageType::kRequest, "*2\r\n$3\r\nGET\r\n$3", &f), ParseState::kNeedsMoreData);
  EXPECT_EQ(Parse(MessageType::kRequest, "*2\r\n$3\r\nGET\r\n$+3\r\nkey\r\n", &f), ParseState::kInvalid);
  EXPECT_EQ(Parse(MessageType::kRequest, "*2\r\n$3\r\nGET\r\n$3\rx\nkey\r\n", &f), ParseState::kInvalid);
  // A null bulk element is no string: the command has no key.
  Frame g;
  ASSERT_EQ(Parse(MessageType::kRequest, "*2\r\n$3\r\nGET\r\n$-1\r\n", &g), ParseState::kSuccess);
  EXPECT_EQ(g.key, "");
  Frame r;
  ASSERT_EQ(Parse(MessageType::kResponse, "*2\r\n$1\r\na\r\n$-1\r\n", &r), ParseState::kSuccess);
  EXPECT_EQ(r.result, "(2 elements)");
}

// Integers are read as std::from_chars reads them: an optional '-', then digits only, within
// int64 (lengths and counts take the short path, 19 digits and more the long one).
TEST(RedisParser, IntegersAsFromChars) {
  Frame f;
  for (const char* ok : {":0\r\n", ":-0\r\n", ":-1\r\n", ":123456789012345678\r\n",
                         ":-123456789012345678\r\n", ":1234567890123456789\r\n",
                         ":9223372036854775807\r\n", ":-9223372036854775808\r\n",
                         ":000000000000000000000001\r\n"}) {
    EXPECT_EQ(Parse(MessageType::kResponse, ok, &f), ParseState::kSuccess) << ok;
  }
  for (const char* bad : {":\r\n", ":-\r\n", ":+1\r\n", ": 1\r\n", ":1 \r\n", ":1a\r\n",
                          ":--1\r\n", ":9223372036854775808\r\n", ":-9223372036854775809\r\n",
                          ":12345678901234567x\r\n", ":0x10\r\n"}) {
    EXPECT_EQ(Parse(MessageType::kResponse, bad, &f), ParseState::kInvalid) << bad;
  }
  EXPECT_EQ(Parse(MessageType::kResponse, "$-1\r\n", &f), ParseState::kSuccess);
  EXPECT_EQ(Parse(MessageType::kResponse, "$-2\r\n", &f), ParseState::kInvalid);
  EXPECT_EQ(Parse(MessageType::kResponse, "*-1\r\n", &f), ParseState::kSuccess);
}

TEST(RedisParser, BoundaryResynchronises) {
  State st;
  std::string_view junk = "garbage\r\nmore*2\r\n*1\r\n$4\r\nPING\r\n";
  size_t p = Traits::FindFrameBoundary(MessageType::kRequest, junk, 1, &st);
  ASSERT_NE(p, std::string_view::npos);
  EXPECT_EQ(junk.substr(p, 4), "*1\r\n");
}

// deepflow__redis ends 2 bytes short of a 490493-byte bulk reply: at close it is still a reply.
TEST(RedisParser, TruncatedBulkReplyAtClose) {
  State st;
  Frame f;
  std::string_view cut = "$490493\r\n{\"OPT_STATUS\": \"SUC";
  ASSERT_EQ(Traits::ParseFrame(MessageType::kResponse, &cut, &f, &st), ParseState::kNeedsMoreData);
  ASSERT_EQ(Traits::ParseTruncatedFrame(MessageType::kResponse, &cut, &f, &st), ParseState::kSuccess);
  EXPECT_TRUE(cut.empty());
  EXPECT_EQ(f.type, '$');
  EXPECT_FALSE(f.is_error);
  EXPECT_EQ(f.result, "{\"OPT_STATUS\": \"SUC");
  // Nothing to salvage without a complete length line, from other types, or from requests.
  for (std::string_view bad : {"$4900", "+OK", "$-1x", "*2\r\n$3\r\nGET"}) {
    std::string_view b = bad;
    Frame g;
    EXPECT_EQ(Traits::ParseTruncatedFrame(MessageType::kResponse, &b, &g, &st), ParseState::kInvalid) << bad;
  }
  std::string_view req = "$3\r\nGE";
  EXPECT_EQ(Traits::ParseTruncatedFrame(MessageType::kRequest, &req, &f, &st), ParseState::kInvalid);
}

// Idle (so the analyzer may reset and pool the parser) exactly between exchanges: not with a
// request waiting for its reply, nor with part of a frame buffered.
TEST(RedisParser, IdleOnlyBetweenExchanges) {
  metrics::Registry registry;
  ParserCounters counters;
  int n = 0;
  for (metrics::Counter** c :
       {&counters.invalid_frames, &counters.truncated_datagrams, &counters.truncated_frames,
        &counters.gaps, &counters.buffer_overflows, &counters.resync_skipped_bytes,
        &counters.frames_dropped, &counters.unpaired_responses, &counters.gave_up}) {
    *c = registry.GetCounter("test_counter_" + std::to_string(n++), "test");
  }
  FrameParser<Traits> parser(ParserOptions{}, &counters);
  auto feed = [&](flow::StreamDirection dir, std::string_view s, uint64_t ts) {
    flow::StreamChunk c;
    c.timestamp_ns = ts;
    c.data = {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
    parser.OnData(dir, c);
  };
  RecordBuffer out;
  const StitchContext ctx{10'000, 30'000'000'000ULL, false};
  EXPECT_TRUE(parser.idle());
  feed(flow::StreamDirection::kRequest, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 1000);
  parser.Stitch(ctx, &out);
  EXPECT_FALSE(parser.idle());  // waiting for the reply
  feed(flow::StreamDirection::kResponse, "$2\r\nv", 2000);
  parser.Stitch(ctx, &out);
  EXPECT_FALSE(parser.idle());  // reply incomplete
  feed(flow::StreamDirection::kResponse, "1\r\n", 3000);
  parser.Stitch(ctx, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].response_result(), "v1");
  EXPECT_TRUE(parser.idle());
}

TEST(RedisStitcher, PipelinedRepliesPairInOrderAndTimeout) {
  FrameQueue<Frame> reqs(3), resps(2);
  for (int i = 0; i < 3; ++i) {
    reqs[i].command = "GET";
    reqs[i].key = "k" + std::to_string(i);
    reqs[i].timestamp_ns = 1000 + i;
  }
  resps[0].result = "a";
  resps[0].timestamp_ns = 5000;
  resps[1].is_error = true;
  resps[1].error = "LOADING Redis is loading";
  resps[1].timestamp_ns = 6000;
  State st;
  RecordBuffer out;
  Traits::Stitch(&reqs, &resps, &st, StitchContext{7000, 1'000'000, false}, &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].request_resource(), "k0");
  EXPECT_EQ(out[0].response_result(), "a");
  EXPECT_EQ(out[1].response_status(), ::sonde::common::v1::RESPONSE_STATUS_SERVER_ERROR);
  ASSERT_EQ(reqs.size(), 1u);
  Traits::Stitch(&reqs, &resps, &st, StitchContext{3'000'000, 1'000'000, false}, &out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[2].response_status(), ::sonde::common::v1::RESPONSE_STATUS_TIMEOUT);
}

TEST(RedisGolden, LoopbackCapture) {
  std::vector<testing::Connection> conns;
  std::string err;
  ASSERT_TRUE(testing::ReadPcapConnections(
      testing::SourcePath("agent/protocols/redis/testdata/redis.pcap"), 16379, &conns, &err))
      << err;
  ASSERT_EQ(conns.size(), 5u);
  std::string actual;
  size_t records = 0;
  for (const auto& c : conns) {
    testing::ReplayResult r = testing::Replay<Traits>(c);
    EXPECT_EQ(r.invalid_requests + r.invalid_responses, 0u);
    actual += "# connection\n";
    for (const auto& rec : r.records) {
      actual += testing::Summarize(rec) + "\n";
      EXPECT_GE(rec.end_time_us(), rec.start_time_us());
      EXPECT_GT(rec.request_length() + rec.response_length(), 0);
      ++records;
    }
  }
  EXPECT_GE(records, 25u);
  std::string diff = testing::CompareGolden(
      actual, testing::SourcePath("agent/protocols/redis/testdata/redis.golden.txt"));
  EXPECT_EQ(diff, "");
}

// Inference picks this protocol from the first bytes of every recorded connection, in the
// direction that speaks first, and rejects the other protocols' openings.
TEST(RedisInfer, FirstChunkOfEveryRecordedConnection) {
  std::vector<testing::Connection> conns;
  std::string err;
  ASSERT_TRUE(testing::ReadPcapConnections(
      testing::SourcePath("agent/protocols/redis/testdata/redis.pcap"), 0, &conns, &err)) << err;
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
}  // namespace sonde::agent::protocols::redis
