// Trace-context headers, endpoint patterns and status mapping.
#include "agent/protocols/common/record_util.h"

#include <gtest/gtest.h>

namespace sonde::agent::protocols {
namespace {

TEST(RecordUtilTest, Traceparent) {
  v1::L7RequestLog r;
  EXPECT_TRUE(ApplyTraceHeader(
      "traceparent", " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &r));
  EXPECT_EQ(r.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(r.span_id(), "00f067aa0ba902b7");
  // First trace context wins.
  EXPECT_TRUE(ApplyTraceHeader("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1", &r));
  EXPECT_EQ(r.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_FALSE(ApplyTraceHeader("traceparent", "garbage", &r));
}

TEST(RecordUtilTest, B3AndUberAndSw8AndRequestId) {
  v1::L7RequestLog b3;
  ApplyTraceHeader("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90", &b3);
  EXPECT_EQ(b3.span_id(), "e457b5a2e4d86bd1");
  EXPECT_EQ(b3.parent_span_id(), "05e3ac9a4f6e3b90");
  v1::L7RequestLog x;
  ApplyTraceHeader("x-b3-traceid", "463ac35c9f6413ad", &x);
  ApplyTraceHeader("x-b3-spanid", "a2fb4a1d1a96d312", &x);
  EXPECT_EQ(x.trace_id(), "463ac35c9f6413ad");
  EXPECT_EQ(x.span_id(), "a2fb4a1d1a96d312");
  v1::L7RequestLog u;
  ApplyTraceHeader("uber-trace-id", "5fa1b2c3%3A6d7e8f90%3A0%3A1", &u);
  EXPECT_EQ(u.trace_id(), "5fa1b2c3");
  EXPECT_EQ(u.span_id(), "6d7e8f90");
  EXPECT_EQ(u.parent_span_id(), "");
  v1::L7RequestLog s;
  // "dHJhY2U=" = "trace", "c2Vn" = "seg".
  ApplyTraceHeader("sw8", "1-dHJhY2U=-c2Vn-3-c3Zj-aW5z-L2E=-aG9zdA==", &s);
  EXPECT_EQ(s.trace_id(), "trace");
  EXPECT_EQ(s.span_id(), "seg-3");
  ApplyTraceHeader("x-request-id", "abc-123", &s);
  EXPECT_EQ(s.x_request_id(), "abc-123");
}

TEST(RecordUtilTest, EndpointPattern) {
  EXPECT_EQ(EndpointPattern("/users/42/orders?x=1"), "/users/{id}/orders");
  EXPECT_EQ(EndpointPattern("/a/3f2504e0-4f89-11d3-9a0c-0305e82c3301"), "/a/{id}");
  EXPECT_EQ(EndpointPattern("/blob/0123456789abcdef0123"), "/blob/{id}");
  EXPECT_EQ(EndpointPattern("/static/app.js"), "/static/app.js");
  EXPECT_EQ(EndpointPattern("http://example.com/x/7"), "/x/{id}");
  EXPECT_EQ(EndpointPattern("/"), "/");
  EXPECT_LE(EndpointPattern(std::string(5000, 'a')).size(), 256u);
  EXPECT_EQ(EndpointPattern(""), "");
  EXPECT_EQ(EndpointPattern("/a/"), "/a/");
  // Short paths without digits are returned as they are; a 36-byte segment of UUID shape, or a
  // digit anywhere, takes the segment-by-segment path.
  EXPECT_EQ(EndpointPattern("//x//y/"), "//x//y/");
  EXPECT_EQ(EndpointPattern("/abcdefgh-abcd-abcd-abcd-abcdefghijkl"), "/{id}");
  EXPECT_EQ(EndpointPattern("abcdefgh-abcd-abcd-abcd-abcdefghijkl"), "{id}");
  EXPECT_EQ(EndpointPattern("abcdefgh-abcd-abcd-abcd-abcdefghijk"), "abcdefgh-abcd-abcd-abcd-abcdefghijk");
  EXPECT_EQ(EndpointPattern("/users/x9/a?id=7"), "/users/x9/a");
  EXPECT_EQ(EndpointPattern("/v/7?q"), "/v/{id}");
  EXPECT_EQ(EndpointPattern("https://h:8080/a/b"), "/a/b");
  EXPECT_EQ(EndpointPattern("http://host"), "/");
  EXPECT_EQ(EndpointPattern("/x#frag?q"), "/x");
  EXPECT_EQ(EndpointPattern("/1/2//3"), "/{id}/{id}//{id}");
  EXPECT_EQ(EndpointPattern("https://host"), "/");
  // Clipped to the first 256 bytes of the full pattern.
  EXPECT_EQ(EndpointPattern("/abc/" + std::string(300, 'b')), "/abc/" + std::string(251, 'b'));
  std::string many;
  for (int i = 0; i < 100; ++i) many += "/7";
  std::string expected;
  while (expected.size() < 256) expected += "/{id}";
  EXPECT_EQ(EndpointPattern(many), expected.substr(0, 256));
  std::string reused = "previous contents";
  EndpointPatternInto("/v1/9", &reused);
  EXPECT_EQ(reused, "/v1/{id}");
}

TEST(RecordUtilTest, HttpStatus) {
  EXPECT_EQ(StatusFromHttpCode(200), common::v1::RESPONSE_STATUS_OK);
  EXPECT_EQ(StatusFromHttpCode(404), common::v1::RESPONSE_STATUS_CLIENT_ERROR);
  EXPECT_EQ(StatusFromHttpCode(502), common::v1::RESPONSE_STATUS_SERVER_ERROR);
  EXPECT_EQ(StatusFromHttpCode(0), common::v1::RESPONSE_STATUS_UNKNOWN);
}

}  // namespace
}  // namespace sonde::agent::protocols

namespace sonde::agent::protocols {
namespace {

TEST(RecordUtilTest, ContainsIgnoreCaseMatchesLowerCasedFind) {
  const char* hays[] = {"GET / HTTP/1.1\r\nUpgrade: h2c\r\n", "GET / HTTP/1.1\r\nupgrade: H2C",
                        "GET / HTTP/1.1\r\nupgrade: h2", "", "\r\n\r\nUPGRADE: h2c",
                        "xx\r\nupgrade: h2c", "\r\nupgrade: h2c"};
  const char* needles[] = {"\r\nupgrade: h2c", "upgrade", "h2c", "", "x"};
  for (const char* h : hays) {
    for (const char* n : needles) {
      EXPECT_EQ(ContainsIgnoreCase(h, n), ToLower(h).find(n) != std::string::npos)
          << h << " / " << n;
    }
  }
}

TEST(RecordUtilTest, UberTraceIdUrlEncodedColons) {
  v1::L7RequestLog r;
  EXPECT_TRUE(ApplyTraceHeader("uber-trace-id", "463ac35c9f6413ad%3A72485a3953bb6124%3a0%3A1", &r));
  EXPECT_EQ(r.trace_id(), "463ac35c9f6413ad");
  EXPECT_EQ(r.span_id(), "72485a3953bb6124");
  EXPECT_EQ(r.parent_span_id(), "");
}

}  // namespace
}  // namespace sonde::agent::protocols
