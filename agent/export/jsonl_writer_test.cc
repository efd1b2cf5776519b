#include "agent/export/jsonl_writer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace sonde::agent::exporting {
namespace {

TEST(JsonlWriterTest, RendersSchemaNamesEnumsAndAddresses) {
  v1::L7RequestLog r;
  r.set_l7_protocol(common::v1::L7_PROTOCOL_HTTP1);
  r.set_response_status(common::v1::RESPONSE_STATUS_SERVER_ERROR);
  r.set_is_ipv4(1);
  r.set_ip4_0(0xC6120001);  // 198.18.0.1
  r.set_ip4_1(0xC6120002);
  r.set_request_type("GET");
  r.set_request_resource("/a\"b\x01\xff");
  r.set_response_code(503);
  r.set_response_duration(1234);
  std::string line = JsonlWriter::ToJson(r, schema::FindTable("flow_log", "l7_request_log"), "l7_request");
  auto j = nlohmann::json::parse(line);  // throws (fails the test) on invalid JSON
  EXPECT_EQ(j["record"], "l7_request");
  EXPECT_EQ(j["l7_protocol"], "HTTP1");
  EXPECT_EQ(j["response_status"], "server_error");
  EXPECT_EQ(j["ip4_0"], "198.18.0.1");
  EXPECT_EQ(j["ip4_1"], "198.18.0.2");
  EXPECT_EQ(j["response_code"], 503);
  EXPECT_EQ(j["response_duration"], 1234);
  EXPECT_EQ(j["request_type"], "GET");
  EXPECT_TRUE(j.contains("req_tcp_seq"));
}

TEST(JsonlWriterTest, MetricsNameTheirTable) {
  v1::NetworkMetric m;
  m.set_granularity_s(60);
  m.set_new_flows(3);
  auto j = nlohmann::json::parse(
      JsonlWriter::ToJson(m, schema::FindTable("flow_metrics", "network_1m"), "metric"));
  EXPECT_EQ(j["record"], "metric");
  EXPECT_EQ(j["table"], "network_1m");
  EXPECT_EQ(j["new_flows"], 3);
}

TEST(JsonlWriterTest, WritesOneLinePerRecord) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  {
    JsonlWriter w(f);
    w.Emit(v1::L4FlowLog());
    w.Emit(v1::L7RequestLog());
    w.Flush();
  }
  std::fclose(f);
  std::string out(buf, len);
  free(buf);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2);
  EXPECT_NE(out.find("\"record\":\"l4_flow\""), std::string::npos);
}

}  // namespace
}  // namespace sonde::agent::exporting
