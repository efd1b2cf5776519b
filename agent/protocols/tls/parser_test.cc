// TLS: golden test over an openssl s_server capture, plus garbage and inference cases.
#include "agent/protocols/tls/parser.h"

#include <gtest/gtest.h>

#include "agent/protocols/common/testing/golden.h"

namespace sonde::agent::protocols::tls {
namespace {

TEST(TlsGoldenTest, OpensslLoopbackCapture) {
  auto recs = testing::RecordsFromPcap(
      testing::SourcePath("agent/protocols/tls/testdata/tls_openssl.pcap"));
  // record.sh: curl (TLS 1.3, SNI api.sonde.test), s_client -tls1_2, s_client -tls1_1 (refused).
  ASSERT_EQ(recs.size(), 3u);
  for (const auto& r : recs) {
    EXPECT_EQ(r.l7_protocol(), common::v1::L7_PROTOCOL_TLS);
    EXPECT_EQ(r.is_encrypted(), 1u);
  }
  EXPECT_EQ(recs[0].request_domain(), "api.sonde.test");
  EXPECT_EQ(recs[0].version(), "TLS 1.3");
  EXPECT_EQ(recs[1].request_domain(), "legacy.sonde.test");
  EXPECT_EQ(recs[1].version(), "TLS 1.2");
  EXPECT_EQ(recs[2].response_status(), common::v1::RESPONSE_STATUS_SERVER_ERROR);
  std::string diff = testing::CompareWithGolden("agent/protocols/tls/testdata/tls_openssl.golden",
                                                testing::RecordsToText(recs));
  EXPECT_TRUE(diff.empty()) << diff;
}

TEST(TlsTest, InferenceAndGarbage) {
  flow::ConnectionInfo c;
  // Record header + ClientHello type: wait for the hello's length and legacy version.
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, std::string("\x16\x03\x01\x00\x50\x01", 6), c),
            InferResult::kMaybe);
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest,
                  std::string("\x16\x03\x01\x00\x50\x01\x00\x00\x4c\x03\x03", 11), c),
            InferResult::kYes);
  // A hello length below the minimum, or a legacy version that is not 3.x.
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest,
                  std::string("\x16\x03\x01\x00\x50\x01\x00\x00\x02\x03\x03", 11), c),
            InferResult::kNo);
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest,
                  std::string("\x16\x03\x01\x00\x50\x01\x00\x00\x4c\x00\x00", 11), c),
            InferResult::kNo);
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, "\x16\x03", c), InferResult::kMaybe);
  EXPECT_EQ(Infer(flow::StreamDirection::kRequest, "GET / HTTP/1.1", c), InferResult::kNo);
  Frame f;
  EXPECT_FALSE(ParseClientHello(std::string(10, '\x03'), &f));
  EXPECT_EQ(VersionName(0x0304), "TLS 1.3");
}

}  // namespace
}  // namespace sonde::agent::protocols::tls
