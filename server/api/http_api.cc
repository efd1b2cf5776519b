// HttpApi handlers on cpp-httplib. Handler exceptions (JSON parsing) stop at this edge.
#include "server/api/http_api.h"

#include <chrono>

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include "server/api/read_only_sql.h"

namespace sonde::server::api {

namespace {

void SendJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void SendError(httplib::Response& res, int status, const std::string& message) {
  SendJson(res, status, {{"error", message}});
}

}  // namespace

HttpApi::HttpApi(HttpApiOptions options, HttpApiDeps deps)
    : options_(std::move(options)),
      deps_(std::move(deps)),
      server_(std::make_unique<httplib::Server>()),
      queries_ok_(deps_.registry->GetCounter("sonde_server_api_queries_total", "Queries answered by /v1/query",
                                             {{"result", "ok"}})),
      queries_failed_(deps_.registry->GetCounter("sonde_server_api_queries_total", "Queries answered by /v1/query",
                                                 {{"result", "error"}})),
      query_seconds_(deps_.registry->GetHistogram("sonde_server_api_query_seconds", "Latency of /v1/query",
                                                  {0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30})) {}

HttpApi::~HttpApi() { Stop(); }

Status HttpApi::Start() {
  if (deps_.registry == nullptr || deps_.clickhouse == nullptr) return InvalidArgumentError("HttpApi needs deps");
  auto& srv = *server_;

  srv.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(deps_.registry->RenderPrometheus(), "text/plain; version=0.0.4");
  });

  srv.Get("/v1/status", [this](const httplib::Request&, httplib::Response& res) {
    nlohmann::json out;
    out["server_version"] = options_.server_version;
    nlohmann::json ch = {{"url", deps_.clickhouse->options().url}, {"mode", deps_.clickhouse_mode}};
    auto version = deps_.clickhouse->Version();
    ch["reachable"] = version.ok();
    if (version.ok()) {
      ch["version"] = *version;
    } else {
      ch["error"] = version.status().message();
    }
    out["clickhouse"] = ch;
    if (deps_.status) {
      nlohmann::json extra = deps_.status();
      if (extra.is_object()) {
        for (auto& [k, v] : extra.items()) out[k] = v;
      }
    }
    SendJson(res, 200, out);
  });

  srv.Post("/v1/query", [this](const httplib::Request& req, httplib::Response& res) {
    const auto start = std::chrono::steady_clock::now();
    auto fail = [&](int status, const std::string& message) {
      queries_failed_->Inc();
      SendError(res, status, message);
    };
    if (!options_.query_tokens.empty()) {
      const std::string auth = req.get_header_value("Authorization");
      bool ok = false;
      for (const auto& t : options_.query_tokens) ok |= (auth == "Bearer " + t);
      if (!ok) {
        res.set_header("WWW-Authenticate", "Bearer");
        return fail(401, "missing or invalid query token (Authorization: Bearer <token>)");
      }
    }
    nlohmann::json body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object() || !body.contains("sql") || !body["sql"].is_string()) {
      return fail(400, R"(expected a JSON body {"db": "...", "sql": "..."})");
    }
    const std::string sql = body["sql"].get<std::string>();
    const std::string db = body.contains("db") && body["db"].is_string() ? body["db"].get<std::string>() : "";
    auto checked = CheckReadOnlySql(sql);
    if (!checked.ok()) return fail(400, checked.status().message());
    std::string clickhouse_sql = *checked;
    if (deps_.translate) {
      auto translated = deps_.translate(db, *checked);
      if (!translated.ok()) return fail(400, translated.status().message());
      clickhouse_sql = *translated;
    }
    storage::clickhouse::Settings settings = {
        {"readonly", "2"},
        {"max_execution_time", std::to_string(options_.query_timeout_s)},
        {"max_result_rows", std::to_string(options_.max_result_rows)},
    };
    if (!db.empty() && !deps_.translate) settings.emplace_back("database", db);
    auto result = deps_.clickhouse->Query(clickhouse_sql, settings);
    query_seconds_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (!result.ok()) {
      const StatusCode code = result.status().code();
      const bool unreachable = code == StatusCode::kUnavailable || code == StatusCode::kDeadlineExceeded;
      return fail(unreachable ? 502 : 400, result.status().message());
    }
    nlohmann::json columns = nlohmann::json::array();
    for (const auto& c : result->columns) columns.push_back({{"name", c.name}, {"type", c.type}});
    queries_ok_->Inc();
    SendJson(res, 200,
             {{"columns", std::move(columns)},
              {"rows", std::move(result->rows)},
              {"rows_count", result->rows_count},
              {"elapsed_s", result->elapsed_s}});
  });

  srv.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "unknown exception";
    }
    SendError(res, 500, what);
  });

  if (options_.port == 0) {
    const int port = srv.bind_to_any_port(options_.listen_host);
    if (port <= 0) return UnavailableError(fmt::format("cannot bind HTTP API on {}", options_.listen_host));
    port_ = static_cast<uint16_t>(port);
  } else {
    if (!srv.bind_to_port(options_.listen_host, options_.port)) {
      return UnavailableError(fmt::format("cannot bind HTTP API on {}:{}", options_.listen_host, options_.port));
    }
    port_ = options_.port;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  spdlog::info("HTTP API listening on {}:{}", options_.listen_host, port_);
  return Status::Ok();
}

void HttpApi::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace sonde::server::api
