#include "agent/main/agent_options.h"

#include <gtest/gtest.h>

namespace sonde::agent {
namespace {

StatusOr<AgentOptions> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "sonde-agent");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return ParseAgentOptions(static_cast<int>(argv.size()), argv.data());
}

TEST(AgentOptionsTest, DefaultsAndValues) {
  auto o = Parse({"--pcap", "x.pcap", "--output=jsonl", "--max-flows", "1000", "--filter", "tcp port 80"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->pcap, "x.pcap");
  EXPECT_EQ(o->output, "jsonl");
  EXPECT_EQ(o->max_flows, 1000u);
  EXPECT_EQ(o->filter, "tcp port 80");
  EXPECT_EQ(o->server, "127.0.0.1:20033");
}

TEST(AgentOptionsTest, RejectsBadInput) {
  EXPECT_EQ(Parse({"--nope", "1"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse({"--max-flows", "lots"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse({"--output", "xml"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse({"--pcap"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse({"--help"}).status().code(), StatusCode::kCancelled);
}

}  // namespace
}  // namespace sonde::agent
