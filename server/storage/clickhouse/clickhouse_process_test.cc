// Starts a real clickhouse-server, queries it, kills it, restarts it, and checks supervision.
#include "server/storage/clickhouse/clickhouse_process.h"

#include <signal.h>

#include <thread>

#include <gtest/gtest.h>

#include "server/storage/clickhouse/testing/clickhouse_fixture.h"

namespace sonde::server::storage::clickhouse {
namespace {

using testing::ClickHouseTest;
using ProcessTest = ClickHouseTest;

TEST_F(ProcessTest, AnswersQueriesAndReportsErrors) {
  auto version = clickhouse_client().Version();
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  EXPECT_FALSE(version->empty());

  auto result = clickhouse_client().Query("SELECT toUInt64(18446744073709551615) AS big, 'x' AS s, now() AS t");
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->columns.size(), 3u);
  EXPECT_EQ(result->columns[0].type, "UInt64");
  EXPECT_EQ(result->rows[0][0].get<uint64_t>(), 18446744073709551615ull);
  EXPECT_EQ(result->rows[0][1], "x");

  // The server runs in UTC whatever the host says.
  auto tz = clickhouse_client().Execute("SELECT toUnixTimestamp(toDateTime('1970-01-02 00:00:00'))");
  ASSERT_TRUE(tz.ok());
  EXPECT_EQ(*tz, "86400\n");

  auto bad = clickhouse_client().Query("SELEC 1");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("Syntax error"), std::string::npos) << bad.status().message();
}

TEST_F(ProcessTest, KillAndRestartHooks) {
  ASSERT_TRUE(clickhouse().Ping());
  ASSERT_TRUE(clickhouse_fixture().Kill().ok());
  EXPECT_FALSE(clickhouse().running());
  auto down = clickhouse_client().Query("SELECT 1");
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status().ToString();
  // Suspended: the supervisor does not bring it back on its own.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(clickhouse().Ping(200));

  ASSERT_TRUE(clickhouse_fixture().Restart().ok());
  EXPECT_TRUE(clickhouse().running());
  EXPECT_TRUE(clickhouse_client().Query("SELECT 1").ok());
}

TEST_F(ProcessTest, SupervisorRestartsACrashedServer) {
  // Data written before the crash survives it (same data dir).
  ASSERT_TRUE(clickhouse_client().Execute("CREATE TABLE default.t (x UInt32) ENGINE = MergeTree ORDER BY x").ok());
  ASSERT_TRUE(clickhouse_client().Execute("INSERT INTO default.t VALUES (7)").ok());
  // Kill the child behind the supervisor's back, as a crash would.
  auto pids = clickhouse_client().Execute("SELECT 1");  // warm
  ASSERT_TRUE(pids.ok());
  std::string out;
  FILE* p = ::popen(("pgrep -f 'config-file=" + clickhouse_fixture().dir() + "'").c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[64];
  while (fgets(buf, sizeof(buf), p)) out += buf;
  ::pclose(p);
  const int pid = std::atoi(out.c_str());
  ASSERT_GT(pid, 0) << out;
  ASSERT_EQ(::kill(pid, SIGKILL), 0);

  bool back = false;
  for (int i = 0; i < 200 && !back; ++i) {  // up to ~20 s
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    back = clickhouse().supervisor_restarts() > 0 && clickhouse().Ping(200);
  }
  ASSERT_TRUE(back);
  auto rows = clickhouse_client().Query("SELECT x FROM default.t");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(rows->rows[0][0].get<uint32_t>(), 7u);
}

TEST(ClickHouseErrorTest, CleansTheMessage) {
  EXPECT_EQ(CleanClickHouseError("Code: 81, e.displayText() = DB::Exception: Database nope doesn't exist, "
                                 "e.what() = DB::Exception\n"),
            "Code: 81: Database nope doesn't exist");
  EXPECT_EQ(CleanClickHouseError("plain text\n"), "plain text");
}

}  // namespace
}  // namespace sonde::server::storage::clickhouse
