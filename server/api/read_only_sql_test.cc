// CheckReadOnlySql accepts one read-only statement and refuses everything else.
#include "server/api/read_only_sql.h"

#include <gtest/gtest.h>

namespace sonde::server::api {
namespace {

TEST(ReadOnlySqlTest, AcceptsReadOnlyStatements) {
  for (const char* sql : {"SELECT 1", "  select * from t;  ", "-- why\nSELECT 1", "/* c */ SHOW TABLES",
                          "DESCRIBE flow_log.l7_request_log", "desc t", "WITH 1 AS x SELECT x",
                          "(SELECT 1) UNION ALL (SELECT 2)", "SELECT ';' AS semi, `a;b` FROM t",
                          "SELECT 'it\\'s; fine'", "EXISTS TABLE t"}) {
    EXPECT_TRUE(CheckReadOnlySql(sql).ok()) << sql << ": " << CheckReadOnlySql(sql).status().ToString();
  }
  EXPECT_EQ(*CheckReadOnlySql("  SELECT 1 ; "), "SELECT 1");
}

TEST(ReadOnlySqlTest, RefusesWritesAndMultipleStatements) {
  for (const char* sql : {"INSERT INTO t VALUES (1)", "DROP TABLE t", "ALTER TABLE t DELETE WHERE 1",
                          "SELECT 1; DROP TABLE t", "SELECT 1;;SELECT 2", "", "  ;  ", "-- only a comment",
                          "CREATE TABLE x (a UInt8) ENGINE = Memory", "SET readonly = 0", "OPTIMIZE TABLE t",
                          "SELECT 'unterminated", "/* unterminated", "KILL QUERY WHERE 1", "SYSTEM SHUTDOWN",
                          "TRUNCATE TABLE t", "RENAME TABLE a TO b", "ATTACH TABLE t", "DETACH TABLE t"}) {
    auto r = CheckReadOnlySql(sql);
    EXPECT_FALSE(r.ok()) << sql;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

}  // namespace
}  // namespace sonde::server::api
