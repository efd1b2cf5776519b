// ClickHouseClient over cpp-httplib; ClickHouse's errors become Status values with its message.
#include "server/storage/clickhouse/clickhouse_client.h"

#include <algorithm>

#include <fmt/format.h>
#include <httplib.h>

namespace sonde::server::storage::clickhouse {

namespace {

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace

std::string CleanClickHouseError(std::string_view body) {
  std::string s(body);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  // 18.16 format: "Code: N, e.displayText() = DB::Exception: MSG, e.what() = DB::Exception".
  const std::string_view kDisplay = ", e.displayText() = ";
  const std::string_view kWhat = ", e.what() = ";
  size_t d = s.find(kDisplay);
  if (d != std::string::npos) {
    std::string code = s.substr(0, d);
    std::string rest = s.substr(d + kDisplay.size());
    size_t w = rest.rfind(kWhat);
    if (w != std::string::npos) rest.resize(w);
    const std::string_view kPrefix = "DB::Exception: ";
    if (rest.rfind(kPrefix, 0) == 0) rest = rest.substr(kPrefix.size());
    s = code + ": " + rest;
  }
  return s;
}

ClickHouseClient::ClickHouseClient(ClickHouseClientOptions options) : options_(std::move(options)) {}

StatusOr<std::string> ClickHouseClient::Post(const std::string& query_param, std::string_view body,
                                             const Settings& settings) const {
  httplib::Client client(options_.url);
  if (!client.is_valid()) return InvalidArgumentError(fmt::format("bad ClickHouse URL '{}'", options_.url));
  client.set_connection_timeout(options_.connect_timeout);
  client.set_read_timeout(options_.timeout);
  client.set_write_timeout(options_.timeout);
  client.set_keep_alive(false);
  std::string path = "/?user=" + UrlEncode(options_.user);
  if (!options_.password.empty()) path += "&password=" + UrlEncode(options_.password);
  if (!query_param.empty()) path += "&query=" + UrlEncode(query_param);
  // fmt rather than "&" + ...: g++ 12 -O3 reports a bogus -Wrestrict on the operator+ chain.
  for (const auto& [k, v] : settings) path += fmt::format("&{}={}", UrlEncode(k), UrlEncode(v));
  // Large bodies (RowBinary inserts) are streamed from the caller's buffer: the plain overload
  // copies the whole body into the request first.
  auto res = body.size() < (64u << 10)
                 ? client.Post(path, httplib::Headers{}, body.data(), body.size(), "application/octet-stream")
                 : client.Post(path, httplib::Headers{}, body.size(),
                               [body](size_t offset, size_t length, httplib::DataSink& sink) {
                                 return sink.write(body.data() + offset, std::min(length, body.size() - offset));
                               },
                               "application/octet-stream");
  if (!res) {
    const auto err = res.error();
    const std::string what = fmt::format("ClickHouse at {}: {}", options_.url, httplib::to_string(err));
    if (err == httplib::Error::Read || err == httplib::Error::Write) {
      // A request that started and then broke: may be a timeout or a crash mid-query.
      return UnavailableError(what + " (request interrupted)");
    }
    if (err == httplib::Error::ConnectionTimeout) return DeadlineExceededError(what);
    return UnavailableError(what);
  }
  if (res->status == 200) return std::move(res->body);
  std::string message = CleanClickHouseError(res->body);
  if (res->status >= 500 && message.find("Code: ") == std::string::npos) {
    return UnavailableError(fmt::format("ClickHouse HTTP {}: {}", res->status, message));
  }
  return InvalidArgumentError(message);
}

StatusOr<std::string> ClickHouseClient::Execute(std::string_view sql, const Settings& settings) const {
  return Post({}, sql, settings);
}

StatusOr<QueryResult> ClickHouseClient::Query(std::string_view sql, const Settings& settings) const {
  Settings all = {{"default_format", "JSONCompact"}, {"output_format_json_quote_64bit_integers", "0"}};
  all.insert(all.end(), settings.begin(), settings.end());
  SONDE_ASSIGN_OR_RETURN(std::string body, Post({}, sql, all));
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("meta") || !doc.contains("data")) {
    return DataLossError(fmt::format("ClickHouse answer is not JSONCompact (a FORMAT clause?): {}",
                                     body.substr(0, 200)));
  }
  QueryResult out;
  for (const auto& m : doc["meta"]) {
    if (!m.is_object()) continue;
    out.columns.push_back({m.value("name", ""), m.value("type", "")});
  }
  out.rows = std::move(doc["data"]);
  out.rows_count = doc.value("rows", static_cast<uint64_t>(out.rows.size()));
  if (doc.contains("statistics") && doc["statistics"].is_object()) {
    out.elapsed_s = doc["statistics"].value("elapsed", 0.0);
  }
  return out;
}

Status ClickHouseClient::InsertRowBinary(std::string_view database, std::string_view table,
                                         std::string_view columns_sql, std::string_view rows) const {
  const std::string query = fmt::format("INSERT INTO {}.{} ({}) FORMAT RowBinary", database, table, columns_sql);
  auto res = Post(query, rows, {});
  return res.status();
}

StatusOr<std::string> ClickHouseClient::Version() const {
  SONDE_ASSIGN_OR_RETURN(std::string body, Execute("SELECT version()"));
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
  return body;
}

}  // namespace sonde::server::storage::clickhouse
