// sonde-server's HTTP API: /metrics (Prometheus), /v1/status (JSON), /v1/query (SQL -> JSON).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/status.h"
#include "common/metrics/registry.h"
#include "server/storage/clickhouse/clickhouse_client.h"

namespace httplib {
class Server;
}

namespace sonde::server::api {

// Turns the user's SQL into ClickHouse SQL. The identity by default; the query layer plugs in with
//   deps.translate = [&](auto db, auto sql) -> StatusOr<std::string> { ... query::Translate(...) };
using QueryTranslator = std::function<StatusOr<std::string>(std::string_view db, std::string_view sql)>;

struct HttpApiOptions {
  std::string listen_host = "0.0.0.0";
  uint16_t port = 20080;  // 0: any free port (see port())
  // When non-empty, /v1/query needs "Authorization: Bearer <one of these>".
  std::vector<std::string> query_tokens;
  std::string server_version = "0.1.0";
  uint32_t query_timeout_s = 60;
  uint64_t max_result_rows = 1000000;
};

struct HttpApiDeps {
  metrics::Registry* registry = nullptr;                              // required
  const storage::clickhouse::ClickHouseClient* clickhouse = nullptr;  // required
  std::string clickhouse_mode = "external";  // "external" or "supervised"; shown in /v1/status
  // Extra top-level /v1/status fields (agents, ingest, spool), assembled by main.
  std::function<nlohmann::json()> status;
  QueryTranslator translate;  // empty: run the SQL as given
};

// Errors are JSON {"error": "..."} with 400 (bad SQL, ClickHouse refused it), 401 (token),
// 502 (ClickHouse unreachable).
class HttpApi {
 public:
  HttpApi(HttpApiOptions options, HttpApiDeps deps);
  ~HttpApi();

  Status Start();
  void Stop();
  uint16_t port() const { return port_; }

 private:
  const HttpApiOptions options_;
  const HttpApiDeps deps_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
  metrics::Counter* queries_ok_;
  metrics::Counter* queries_failed_;
  metrics::Histogram* query_seconds_;
};

}  // namespace sonde::server::api
