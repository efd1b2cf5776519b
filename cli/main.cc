// sonde: the command-line client of sonde-server (query, status).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "cli/result_format.h"

namespace {

constexpr const char* kUsage = R"(usage:
  sonde query [--db DB] [--format table|json|csv] "SQL"
  sonde status [--format table|json]
  sonde version
options:
  --server URL   sonde-server HTTP API (default $SONDE_SERVER or http://127.0.0.1:20080)
  --token TOKEN  API token (default $SONDE_TOKEN)
  --db DB        database: flow_log (default), flow_metrics, ...
)";

struct Options {
  std::string server;
  std::string token;
  std::string db = "flow_log";
  std::string format = "table";
  std::vector<std::string> args;
};

int Fail(const std::string& msg) {
  std::fprintf(stderr, "sonde: %s\n", msg.c_str());
  return 1;
}

httplib::Client MakeClient(const Options& o) {
  httplib::Client c(o.server);
  c.set_connection_timeout(5);
  c.set_read_timeout(300);
  if (!o.token.empty()) c.set_bearer_token_auth(o.token);
  return c;
}

// Turns an HTTP error answer into one readable line.
std::string ErrorText(const httplib::Result& res) {
  if (!res) return "cannot reach sonde-server: " + httplib::to_string(res.error());
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error")) {
    return j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
  }
  return "HTTP " + std::to_string(res->status) + ": " + res->body;
}

int Query(const Options& o) {
  if (o.args.size() != 1) return Fail("query takes exactly one SQL argument");
  sonde::cli::OutputFormat fmt;
  if (!sonde::cli::ParseOutputFormat(o.format, &fmt)) return Fail("unknown --format " + o.format);
  auto client = MakeClient(o);
  nlohmann::json req = {{"db", o.db}, {"sql", o.args[0]}};
  auto res = client.Post("/v1/query", req.dump(), "application/json");
  if (!res || res->status != 200) return Fail(ErrorText(res));
  auto answer = nlohmann::json::parse(res->body, nullptr, false);
  if (answer.is_discarded()) return Fail("server answered with invalid JSON");
  std::fputs(sonde::cli::FormatResult(answer, fmt).c_str(), stdout);
  return 0;
}

int Status(const Options& o) {
  auto client = MakeClient(o);
  auto res = client.Get("/v1/status");
  if (!res || res->status != 200) return Fail(ErrorText(res));
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (j.is_discarded()) return Fail("server answered with invalid JSON");
  if (o.format == "json") {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  // A readable summary; every key the server sends is shown.
  for (const auto& [k, v] : j.items()) {
    if (v.is_array()) {
      std::printf("%s (%zu):\n", k.c_str(), v.size());
      for (const auto& e : v) std::printf("  %s\n", e.dump().c_str());
    } else if (v.is_object()) {
      std::printf("%s:\n", k.c_str());
      for (const auto& [k2, v2] : v.items()) {
        std::printf("  %s: %s\n", k2.c_str(), v2.is_string() ? v2.get<std::string>().c_str() : v2.dump().c_str());
      }
    } else {
      std::printf("%s: %s\n", k.c_str(), v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  const char* env_server = std::getenv("SONDE_SERVER");
  o.server = env_server ? env_server : "http://127.0.0.1:20080";
  if (const char* t = std::getenv("SONDE_TOKEN")) o.token = t;
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  // Options may stand before or after the command; the first bare word is the command.
  std::string cmd;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string* dst) {
      if (i + 1 >= argc) return false;
      *dst = argv[++i];
      return true;
    };
    bool ok = true;
    if (a == "--server") {
      ok = value(&o.server);
    } else if (a == "--token") {
      ok = value(&o.token);
    } else if (a == "--db") {
      ok = value(&o.db);
    } else if (a == "--format") {
      ok = value(&o.format);
    } else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (cmd.empty()) {
      cmd = a;
    } else {
      o.args.push_back(a);
    }
    if (!ok) return Fail(a + " needs a value");
  }
  if (cmd == "query") return Query(o);
  if (cmd == "status") return Status(o);
  if (cmd == "version") {
    std::printf("sonde 0.1.0\n");
    return 0;
  }
  std::fputs(kUsage, stderr);
  return 2;
}
