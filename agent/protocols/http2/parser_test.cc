// HTTP/2 and gRPC: HPACK-encoded synthetic exchanges (prior knowledge, Upgrade, mid-stream
// pickup) plus golden tests over real nghttpd and python-grpcio captures.
#include "agent/protocols/http2/parser.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include "agent/protocols/common/frame_parser.h"
#include "agent/protocols/common/testing/golden.h"

namespace sonde::agent::protocols::http2 {
namespace {

class Encoder {
 public:
  Encoder() { nghttp2_hd_deflate_new(&def_, 4096); }
  ~Encoder() { nghttp2_hd_deflate_del(def_); }
  std::string Block(const std::vector<std::pair<std::string, std::string>>& hs) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [n, v] : hs) {
      nva.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    std::string out(nghttp2_hd_deflate_bound(def_, nva.data(), nva.size()), '\0');
    ssize_t n = nghttp2_hd_deflate_hd(def_, (uint8_t*)out.data(), out.size(), nva.data(), nva.size());
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
  }

 private:
  nghttp2_hd_deflater* def_ = nullptr;
};

std::string FrameBytes(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string f = {static_cast<char>(payload.size() >> 16), static_cast<char>(payload.size() >> 8),
                   static_cast<char>(payload.size()), static_cast<char>(type),
                   static_cast<char>(flags), static_cast<char>(stream >> 24),
                   static_cast<char>(stream >> 16), static_cast<char>(stream >> 8),
                   static_cast<char>(stream)};
  return f + std::string(payload);
}

class Http2Test : public ::testing::Test {
 protected:
  Http2Test() : counters_(ParserCounters::Create(&reg_, "HTTP2")), p_({}, &counters_) {}
  void Send(flow::StreamDirection d, const std::string& s, uint64_t ts) {
    flow::StreamChunk c;
    c.timestamp_ns = ts;
    c.data = {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
    p_.OnData(d, c);
  }
  std::vector<v1::L7RequestLog> Stitch(bool closed = false) {
    RecordBuffer out;
    p_.Stitch({10'000'000, 30'000'000'000ULL, closed}, &out);
    return out.ToVector();
  }
  metrics::Registry reg_;
  ParserCounters counters_;
  FrameParser<Traits> p_;
  Encoder client_, server_;
  const flow::StreamDirection kReq = flow::StreamDirection::kRequest;
  const flow::StreamDirection kResp = flow::StreamDirection::kResponse;
};

TEST_F(Http2Test, GrpcPriorKnowledgeWithDynamicTable) {
  std::string settings = FrameBytes(4, 0, 0, "");
  auto req = [&](uint32_t id) {
    return FrameBytes(1, 4, id, client_.Block({{":method", "POST"}, {":path", "/pkg.Svc/Do"},
                                               {":authority", "svc:50051"},
                                               {"content-type", "application/grpc"},
                                               {"x-custom", "v"}})) +
           FrameBytes(0, 1, id, std::string("\0\0\0\0\1x", 6));
  };
  Send(kReq, std::string(kPreface) + settings + req(1), 1000);
  // Encode in wire order (operands of + are evaluated in unspecified order).
  const std::string head1 = server_.Block({{":status", "200"}, {"content-type", "application/grpc"}});
  const std::string trailers1 = server_.Block({{"grpc-status", "5"}, {"grpc-message", "gone"}});
  Send(kResp, settings + FrameBytes(1, 4, 1, head1) +
                  FrameBytes(0, 0, 1, std::string("\0\0\0\0\0", 5)) + FrameBytes(1, 5, 1, trailers1),
       4000);
  Send(kReq, req(3), 5000);  // second request: fields now come from the dynamic table
  Send(kResp, FrameBytes(1, 5, 3, server_.Block({{":status", "200"},
                                                 {"content-type", "application/grpc"},
                                                 {"grpc-status", "0"}})),
       7000);
  auto recs = Stitch();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].l7_protocol(), common::v1::L7_PROTOCOL_GRPC);
  EXPECT_EQ(recs[0].request_type(), "POST");
  EXPECT_EQ(recs[0].request_resource(), "/pkg.Svc/Do");
  EXPECT_EQ(recs[0].endpoint(), "/pkg.Svc/Do");
  EXPECT_EQ(recs[0].request_domain(), "svc:50051");
  EXPECT_EQ(recs[0].response_code(), 5);
  EXPECT_EQ(recs[0].response_exception(), "gone");
  EXPECT_EQ(recs[0].response_status(), common::v1::RESPONSE_STATUS_CLIENT_ERROR);
  EXPECT_EQ(recs[0].request_id(), 1u);
  EXPECT_EQ(recs[0].response_duration(), 3u);
  EXPECT_EQ(recs[1].request_resource(), "/pkg.Svc/Do");
  EXPECT_EQ(recs[1].response_code(), 0);
  EXPECT_EQ(recs[1].response_status(), common::v1::RESPONSE_STATUS_OK);
}

TEST_F(Http2Test, UpgradeFromHttp1) {
  Send(kReq, "GET /up HTTP/1.1\r\nHost: h:80\r\nConnection: Upgrade, HTTP2-Settings\r\n"
             "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", 1000);
  Send(kResp, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n" +
                  FrameBytes(4, 0, 0, "") +
                  FrameBytes(1, 4, 1, server_.Block({{":status", "404"}})) +
                  FrameBytes(0, 1, 1, "nf"),
       3000);
  Send(kReq, std::string(kPreface) + FrameBytes(4, 0, 0, ""), 3500);
  auto recs = Stitch();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].l7_protocol(), common::v1::L7_PROTOCOL_HTTP2);
  EXPECT_EQ(recs[0].request_resource(), "/up");
  EXPECT_EQ(recs[0].request_domain(), "h:80");
  EXPECT_EQ(recs[0].response_code(), 404);
  EXPECT_EQ(counters_.invalid_frames->Value(), 0u);
}

TEST_F(Http2Test, MidStreamPickupDecodesSelfContainedFields) {
  // Warm the encoders' dynamic tables with a stream we do not show the parser.
  client_.Block({{":method", "GET"}, {":path", "/warm"}, {"x-long-custom", "value"}});
  server_.Block({{":status", "200"}, {"server", "s"}});
  Send(kReq, FrameBytes(1, 5, 3, client_.Block({{":method", "GET"}, {":path", "/next"},
                                                {"x-long-custom", "value"}})),
       1000);
  Send(kResp, FrameBytes(1, 5, 3, server_.Block({{":status", "503"}, {"server", "s"}})), 2000);
  auto recs = Stitch();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].request_type(), "GET");    // static table
  EXPECT_EQ(recs[0].request_resource(), "/next");  // literal with a static name
  EXPECT_EQ(recs[0].response_code(), 503);
}

TEST_F(Http2Test, InferenceSignatures) {
  flow::ConnectionInfo c;
  EXPECT_EQ(Infer(kReq, kPreface, c), InferResult::kYes);
  EXPECT_EQ(Infer(kReq, "PRI * HT", c), InferResult::kMaybe);
  EXPECT_EQ(Infer(kReq, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", c), InferResult::kNo);
  EXPECT_EQ(Infer(kResp, FrameBytes(4, 0, 0, std::string(6, '\0')) + FrameBytes(4, 1, 0, ""), c),
            InferResult::kYes);
  EXPECT_EQ(Infer(kResp, "HTTP/1.1 200 OK\r\n", c), InferResult::kNo);
}

// Without the preface (joined mid-stream) inference needs a plausible frame sequence.
TEST_F(Http2Test, MidStreamInferenceIsStrict) {
  flow::ConnectionInfo c;
  const std::string window = FrameBytes(8, 0, 0, std::string("\0\0\x10\0", 4));
  const std::string ping = FrameBytes(6, 0, 0, std::string(8, '\x01'));
  const std::string headers =
      FrameBytes(1, 4, 5, client_.Block({{":method", "GET"}, {":path", "/x"}}));
  EXPECT_EQ(Infer(kReq, window + ping, c), InferResult::kYes);
  EXPECT_EQ(Infer(kReq, headers, c), InferResult::kYes);  // a HEADERS block that decodes
  EXPECT_EQ(Infer(kReq, window, c), InferResult::kMaybe);  // one frame: wait for the next
  // Two empty DATA frames (nine zero-ish bytes each) are what zero-filled binary data looks like.
  const std::string empty_data = FrameBytes(0, 0, 1, "");
  EXPECT_EQ(Infer(kReq, empty_data + empty_data, c), InferResult::kNo);
  // DATA-only chains, even stream ids, frames over 16384 bytes, reserved bit, bad flags.
  const std::string data = FrameBytes(0, 0, 1, "abc");
  EXPECT_EQ(Infer(kReq, data + data + data, c), InferResult::kMaybe);
  EXPECT_EQ(Infer(kReq, FrameBytes(0, 0, 2, "abc") + window, c), InferResult::kNo);
  EXPECT_EQ(Infer(kReq, FrameBytes(0, 0, 1, std::string(16385, 'a')) + window, c),
            InferResult::kNo);
  std::string reserved = window + ping;
  reserved[5] = static_cast<char>(0x80);
  EXPECT_EQ(Infer(kReq, reserved, c), InferResult::kNo);
  EXPECT_EQ(Infer(kReq, FrameBytes(8, 1, 0, std::string("\0\0\x10\0", 4)) + ping, c),
            InferResult::kNo);
  // Nothing after END_STREAM on the same stream; HEADERS without END_HEADERS needs CONTINUATION.
  EXPECT_EQ(Infer(kReq, FrameBytes(0, 1, 1, "abc") + FrameBytes(0, 0, 1, "abc"), c),
            InferResult::kNo);
  EXPECT_EQ(Infer(kReq, FrameBytes(1, 0, 3, "\x82") + window, c), InferResult::kNo);
}

TEST(Http2GoldenTest, NghttpdPriorKnowledge) {
  auto recs = testing::RecordsFromPcap(
      testing::SourcePath("agent/protocols/http2/testdata/h2c_nghttpd.pcap"));
  ASSERT_EQ(recs.size(), 3u);  // record.sh: three URIs on one connection
  int not_found = 0;
  for (const auto& r : recs) {
    EXPECT_EQ(r.l7_protocol(), common::v1::L7_PROTOCOL_HTTP2);
    EXPECT_EQ(r.request_type(), "GET");
    EXPECT_EQ(r.x_request_id(), "h2-req");
    not_found += r.response_code() == 404;
  }
  EXPECT_EQ(not_found, 1);
  std::string diff = testing::CompareWithGolden("agent/protocols/http2/testdata/h2c_nghttpd.golden",
                                                testing::RecordsToText(recs));
  EXPECT_TRUE(diff.empty()) << diff;
}

TEST(Http2GoldenTest, PythonGrpc) {
  auto recs = testing::RecordsFromPcap(
      testing::SourcePath("agent/protocols/http2/testdata/grpc_python.pcap"));
  ASSERT_EQ(recs.size(), 3u);  // two Ping OK, one Get NOT_FOUND
  EXPECT_EQ(recs[0].l7_protocol(), common::v1::L7_PROTOCOL_GRPC);
  EXPECT_EQ(recs[0].endpoint(), "/demo.Echo/Ping");
  EXPECT_EQ(recs[0].trace_id(), "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(recs[2].endpoint(), "/demo.Echo/Get");
  EXPECT_EQ(recs[2].response_code(), 5);
  EXPECT_EQ(recs[2].response_exception(), "no such item");
  std::string diff = testing::CompareWithGolden("agent/protocols/http2/testdata/grpc_python.golden",
                                                testing::RecordsToText(recs));
  EXPECT_TRUE(diff.empty()) << diff;
}

}  // namespace
}  // namespace sonde::agent::protocols::http2
