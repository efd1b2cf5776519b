// HttpApi against a real ClickHouse: /metrics, /v1/status, /v1/query results and errors, tokens.
#include "server/api/http_api.h"

#include <httplib.h>

#include <gtest/gtest.h>

#include "server/storage/clickhouse/testing/clickhouse_fixture.h"

namespace sonde::server::api {
namespace {

class HttpApiTest : public storage::clickhouse::testing::ClickHouseTest {
 protected:
  void StartApi(HttpApiOptions options = {}, QueryTranslator translate = nullptr) {
    options.listen_host = "127.0.0.1";
    options.port = 0;
    HttpApiDeps deps;
    deps.registry = &registry_;
    deps.clickhouse = &clickhouse_client();
    deps.status = [] { return nlohmann::json{{"agents", nlohmann::json::array({{{"id", 1}}})}}; };
    deps.translate = std::move(translate);
    api_ = std::make_unique<HttpApi>(options, deps);
    ASSERT_TRUE(api_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", api_->port());
  }
  httplib::Result Query(const nlohmann::json& body, const std::string& token = "") {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return client_->Post("/v1/query", headers, body.dump(), "application/json");
  }
  static nlohmann::json Json(const httplib::Result& r) { return nlohmann::json::parse(r->body, nullptr, false); }

  metrics::Registry registry_;
  std::unique_ptr<HttpApi> api_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HttpApiTest, QueryReturnsColumnsAndRows) {
  StartApi();
  auto r = Query({{"sql", "SELECT number AS n, toString(number) AS s FROM system.numbers LIMIT 3"}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = Json(r);
  EXPECT_EQ(j["columns"], nlohmann::json::parse(R"([{"name":"n","type":"UInt64"},{"name":"s","type":"String"}])"));
  EXPECT_EQ(j["rows"], nlohmann::json::parse(R"([[0,"0"],[1,"1"],[2,"2"]])"));
  EXPECT_EQ(j["rows_count"], 3);
  EXPECT_TRUE(j["elapsed_s"].is_number());

  // db selects the default database for unqualified names.
  r = Query({{"db", "system"}, {"sql", "SELECT count() > 0 FROM tables"}});
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json(r)["rows"][0][0], 1);
  r = Query({{"sql", "SHOW DATABASES"}});
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(HttpApiTest, QueryErrorsAre400WithTheMessage) {
  StartApi();
  auto r = Query({{"sql", "SELECT * FROM no_such_db.t"}});
  ASSERT_EQ(r->status, 400);
  EXPECT_NE(Json(r)["error"].get<std::string>().find("no_such_db"), std::string::npos) << r->body;
  r = Query({{"sql", "DROP DATABASE system"}});
  ASSERT_EQ(r->status, 400);
  EXPECT_NE(Json(r)["error"].get<std::string>().find("read-only"), std::string::npos) << r->body;
  r = Query({{"sql", "SELECT 1; SELECT 2"}});
  EXPECT_EQ(r->status, 400);
  r = client_->Post("/v1/query", "not json", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(registry_.CounterTotal("sonde_server_api_queries_total"), 4u);
  // ClickHouse down: 502, not 400.
  ASSERT_TRUE(clickhouse_fixture().Kill().ok());
  r = Query({{"sql", "SELECT 1"}});
  EXPECT_EQ(r->status, 502) << r->body;
}

TEST_F(HttpApiTest, TranslatorIsPluggedIn) {
  StartApi({}, [](std::string_view db, std::string_view sql) -> StatusOr<std::string> {
    if (sql.find("bad") != std::string_view::npos) return InvalidArgumentError("line 1:8: unknown column bad");
    return std::string("SELECT '") + std::string(db) + "' AS db";
  });
  auto r = Query({{"db", "flow_log"}, {"sql", "SELECT anything"}});
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json(r)["rows"][0][0], "flow_log");
  r = Query({{"sql", "SELECT bad"}});
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Json(r)["error"], "line 1:8: unknown column bad");
}

TEST_F(HttpApiTest, QueryTokenIsRequiredWhenConfigured) {
  HttpApiOptions options;
  options.query_tokens = {"t0k"};
  StartApi(options);
  EXPECT_EQ(Query({{"sql", "SELECT 1"}})->status, 401);
  EXPECT_EQ(Query({{"sql", "SELECT 1"}}, "wrong")->status, 401);
  EXPECT_EQ(Query({{"sql", "SELECT 1"}}, "t0k")->status, 200);
  // /metrics and /v1/status stay open.
  EXPECT_EQ(client_->Get("/metrics")->status, 200);
}

TEST_F(HttpApiTest, StatusAndMetrics) {
  StartApi();
  registry_.GetCounter("sonde_server_records_written_total", "x", {{"table", "flow_log.l4_flow_log"}})->Inc(5);
  auto r = client_->Get("/v1/status");
  ASSERT_EQ(r->status, 200);
  auto j = Json(r);
  EXPECT_EQ(j["clickhouse"]["reachable"], true);
  EXPECT_FALSE(j["clickhouse"]["version"].get<std::string>().empty());
  EXPECT_EQ(j["agents"][0]["id"], 1);
  EXPECT_TRUE(j.contains("server_version"));
  r = client_->Get("/metrics");
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("sonde_server_records_written_total{table=\"flow_log.l4_flow_log\"} 5"), std::string::npos)
      << r->body;
  ASSERT_TRUE(clickhouse_fixture().Kill().ok());
  j = Json(client_->Get("/v1/status"));
  EXPECT_EQ(j["clickhouse"]["reachable"], false);
}

}  // namespace
}  // namespace sonde::server::api
