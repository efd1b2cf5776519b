// Behaviour of the translator that golden files show less directly: error kinds and positions,
// read-only enforcement, result column names, hostile input.
#include "server/query/translator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/query/lexer.h"

namespace sonde::server::query {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class TranslatorTest : public ::testing::Test {
 protected:
  StatusOr<Translation> T(std::string_view sql, std::string_view db = "flow_log") {
    return Translate(db, sql, catalog_);
  }
  std::string Err(std::string_view sql, std::string_view db = "flow_log") {
    auto t = T(sql, db);
    EXPECT_FALSE(t.ok()) << sql;
    if (t.ok()) return "";
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    return t.status().message();
  }
  Catalog catalog_ = Catalog::FromSchema();
};

TEST_F(TranslatorTest, UnknownColumnPointsAtIt) {
  const std::string m = Err("SELECT server_port,\n  bogus FROM l7_request_log");
  EXPECT_THAT(m, StartsWith("line 2:3: unknown column 'bogus' in flow_log.l7_request_log"));
  EXPECT_THAT(m, HasSubstr("\n    bogus FROM l7_request_log\n    ^"));
}

TEST_F(TranslatorTest, UnknownTable) {
  EXPECT_THAT(Err("SELECT 1 FROM nope"), StartsWith("line 1:15: unknown table 'nope'"));
  // A table of another database is not visible unqualified.
  EXPECT_THAT(Err("SELECT time FROM network_1s"), HasSubstr("unknown table"));
  EXPECT_TRUE(T("SELECT time FROM flow_metrics.network_1s").ok());
}

TEST_F(TranslatorTest, WritesAreRejected) {
  for (const char* q : {"INSERT INTO l7_request_log VALUES (1)", "DROP TABLE l7_request_log",
                        "ALTER TABLE l7_request_log DELETE WHERE 1",
                        "SELECT 1 FROM l7_request_log; DROP TABLE x",
                        "SELECT * FROM url('http://x', CSV, 'a String')"}) {
    SCOPED_TRACE(q);
    auto t = T(q);
    EXPECT_FALSE(t.ok());
  }
}

TEST_F(TranslatorTest, OnlyAllowedFunctions) {
  EXPECT_THAT(Err("SELECT file('x') FROM l7_request_log"), HasSubstr("unknown function 'file'"));
  EXPECT_THAT(Err("SELECT count() FROM l7_request_log WHERE sum(response_duration) > 1"),
              HasSubstr("not allowed in WHERE"));
  EXPECT_THAT(Err("SELECT max(count()) FROM l7_request_log"), HasSubstr("cannot be nested"));
  EXPECT_THAT(Err("SELECT percentile(response_duration, 0) FROM l7_request_log"),
              HasSubstr("percentile level"));
  EXPECT_THAT(Err("SELECT time(server_port, 60) FROM l7_request_log"),
              HasSubstr("time() buckets a DateTime column"));
}

TEST_F(TranslatorTest, EnumLiteralsAreChecked) {
  const std::string m = Err("SELECT 1 FROM l7_request_log WHERE l7_protocol = 'HTTP9'");
  EXPECT_THAT(m, StartsWith("line 1:50: 'HTTP9' is not a value of l7_protocol"));
  EXPECT_THAT(m, HasSubstr("HTTP1"));
  EXPECT_TRUE(T("SELECT 1 FROM l7_request_log WHERE l7_protocol IN ('HTTP1', 'gRPC')").ok());
}

TEST_F(TranslatorTest, ResultColumnNames) {
  auto t = T("SELECT ip_1, count() AS n, percentile(response_duration, 99), pod_0 "
             "FROM l7_request_log GROUP BY ip_1, pod_0");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->columns,
            (std::vector<std::string>{"ip_1", "n", "percentile(response_duration, 99)", "pod_0"}));
}

TEST_F(TranslatorTest, AliasesMayNotShadowColumns) {
  EXPECT_THAT(Err("SELECT time(time, 60) AS time FROM l7_request_log"),
              HasSubstr("alias 'time' is also a column name"));
  EXPECT_TRUE(T("SELECT time AS time FROM l7_request_log").ok());
  EXPECT_TRUE(T("SELECT time(time, 60) AS t FROM l7_request_log GROUP BY t ORDER BY t").ok());
}

TEST_F(TranslatorTest, DiscoveryStatements) {
  auto show = T("SHOW TABLES");
  ASSERT_TRUE(show.ok());
  EXPECT_THAT(show->sql, HasSubstr("'l4_flow_log', 'l7_request_log'"));
  EXPECT_THAT(Err("SHOW TABLES", "nodb"), HasSubstr("unknown database"));
  auto desc = T("DESCRIBE l4_flow_log");
  ASSERT_TRUE(desc.ok());
  EXPECT_THAT(desc->sql, HasSubstr("('ip_0', 'String'"));
  EXPECT_THAT(desc->sql, HasSubstr("('pod_1', 'String'"));
}

TEST_F(TranslatorTest, SyntaxErrors) {
  EXPECT_THAT(Err("SELECT FROM l7_request_log"), StartsWith("line 1:8: expected an expression"));
  EXPECT_THAT(Err("SELECT 'abc FROM x"), StartsWith("line 1:8: unterminated string"));
  EXPECT_THAT(Err("SELECT a FROM l7_request_log LIMIT -1"), HasSubstr("non-negative integer"));
  EXPECT_THAT(Err("SELECT (1 FROM l7_request_log"), HasSubstr("expected ')'"));
  EXPECT_THAT(Err("SELECT 1 FROM l7_request_log WHERE server_port IN (SELECT 1)"),
              HasSubstr("subqueries are not supported"));
}

TEST_F(TranslatorTest, DeepNestingIsAnErrorNotACrash) {
  std::string q = "SELECT " + std::string(5000, '(') + "1" + std::string(5000, ')') +
                  " FROM l7_request_log";
  EXPECT_THAT(Err(q), HasSubstr("nested too deeply"));
  std::string neg = "SELECT ";
  for (int i = 0; i < 5000; ++i) neg += "- ";  // "--" would start a comment
  neg += "1 FROM l7_request_log";
  EXPECT_THAT(Err(neg), HasSubstr("nested too deeply"));
}

TEST_F(TranslatorTest, StringsAreEscaped) {
  auto t = T("SELECT 1 FROM l7_request_log WHERE request_resource = 'a''b\\\\c'");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_THAT(t->sql, HasSubstr("request_resource = 'a\\'b\\\\c'"));
}

TEST(LexerTest, PositionErrorFormat) {
  EXPECT_EQ(FormatPositionError("ab\ncd\tx", 6, "bad"), "line 2:4: bad\n  cd x\n     ^");
  // Long lines are cut to a window around the column.
  const std::string long_line = std::string(500, 'a') + "X" + std::string(500, 'b');
  const std::string m = FormatPositionError(long_line, 500, "here");
  EXPECT_EQ(m.substr(0, 16), "line 1:501: here");
  EXPECT_LT(m.size(), 250u);
  const size_t caret = m.rfind('^');
  const size_t x = m.find('X');
  EXPECT_EQ(caret - m.rfind('\n'), x - m.find('\n'));
}

}  // namespace
}  // namespace sonde::server::query
