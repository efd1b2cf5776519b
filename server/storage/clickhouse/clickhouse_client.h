// Minimal ClickHouse HTTP client: JSON queries, DDL statements and RowBinary inserts.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/status.h"

namespace sonde::server::storage::clickhouse {

struct ClickHouseClientOptions {
  std::string url = "http://127.0.0.1:8123";  // scheme://host:port
  std::string user = "default";
  std::string password;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds timeout{30000};  // read/write timeout of one request
};

struct ResultColumn {
  std::string name;
  std::string type;  // ClickHouse type, e.g. "UInt64"
};

struct QueryResult {
  std::vector<ResultColumn> columns;
  nlohmann::json rows = nlohmann::json::array();  // array of arrays, one value per column
  uint64_t rows_count = 0;
  double elapsed_s = 0;
};

// Extra ClickHouse settings sent as URL parameters (e.g. {"readonly", "2"}).
using Settings = std::vector<std::pair<std::string, std::string>>;

// Stateless apart from options: each call opens its own connection, so one client may be used
// from many threads at once. Errors: kUnavailable when ClickHouse cannot be reached (retry),
// kInvalidArgument carrying ClickHouse's own message when it rejected the statement,
// kDeadlineExceeded on timeout, kDataLoss when the answer cannot be parsed.
class ClickHouseClient {
 public:
  explicit ClickHouseClient(ClickHouseClientOptions options);

  // Runs a statement that returns rows; 64-bit integers come back as JSON numbers.
  StatusOr<QueryResult> Query(std::string_view sql, const Settings& settings = {}) const;
  // Runs a statement and returns its raw text answer (DDL, ALTER, TabSeparated output).
  StatusOr<std::string> Execute(std::string_view sql, const Settings& settings = {}) const;
  // INSERT INTO db.table (columns) FORMAT RowBinary with `rows` as the body.
  Status InsertRowBinary(std::string_view database, std::string_view table, std::string_view columns_sql,
                         std::string_view rows) const;
  // SELECT version().
  StatusOr<std::string> Version() const;

  const ClickHouseClientOptions& options() const { return options_; }

 private:
  StatusOr<std::string> Post(const std::string& query_param, std::string_view body, const Settings& settings) const;

  ClickHouseClientOptions options_;
};

// ClickHouse's own error text reduced to its essence ("Code: 62, e.displayText() = DB::Exception: X,
// e.what() = ..." -> "Code: 62: X").
std::string CleanClickHouseError(std::string_view body);

}  // namespace sonde::server::storage::clickhouse
