// Expected-output readers for the four source projects, the agent pipeline runner and the
// field-for-field comparison behind the corpus acceptance tests.
#include "tests/corpus_l7/corpus_compare.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "agent/capture/clocked_sink.h"
#include "agent/capture/pcap/pcap_file_source.h"
#include "agent/export/record_sink.h"
#include "agent/flow/flow_tracker.h"
#include "agent/protocols/common/l7_analyzer.h"
#include "common/metrics/registry.h"

namespace sonde::corpus {
namespace {

namespace fs = std::filesystem;
using agent::v1::L7RequestLog;
using common::v1::L7Protocol;
using Json = nlohmann::json;

class L7Collector final : public agent::exporting::RecordSink {
 public:
  void Emit(agent::v1::L7RequestLog&& r) override { l7.push_back(std::move(r)); }
  void Emit(agent::v1::L4FlowLog&&) override {}
  void Emit(agent::v1::NetworkMetric&&) override {}
  void Emit(agent::v1::ApplicationMetric&&) override {}
  void Emit(agent::v1::ProcessInfo&&) override {}
  std::vector<L7RequestLog> l7;
};

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- DeepFlow: Rust Debug prints ("Info { key: value, ... }") and JSON lines ----

// The value of `key` in a Rust Debug line: strings unquoted, Some(x) unwrapped, None = nullopt.
std::optional<std::string> RustField(const std::string& line, const std::string& key) {
  size_t at = std::string::npos;
  for (const char* pre : {"{ ", ", "}) {
    at = line.find(pre + key + ": ");
    if (at != std::string::npos) break;
  }
  if (at == std::string::npos) return std::nullopt;
  size_t i = at + 2 + key.size() + 2;
  bool some = false;
  if (line.compare(i, 5, "Some(") == 0) {
    i += 5;
    some = true;
  }
  if (line.compare(i, 4, "None") == 0) return std::nullopt;
  std::string v;
  if (i < line.size() && line[i] == '"') {
    for (++i; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) ++i;
      v += line[i];
    }
    return v;
  }
  while (i < line.size() && line[i] != ',' && line[i] != ' ' && line[i] != '}' &&
         !(some && line[i] == ')')) {
    v += line[i++];
  }
  return v;
}

std::optional<int64_t> ToInt(const std::optional<std::string>& s) {
  if (!s || s->empty()) return std::nullopt;
  char* end = nullptr;
  long long v = std::strtoll(s->c_str(), &end, 10);
  if (end == s->c_str() || *end != '\0') return std::nullopt;
  return v;
}

std::optional<bool> OkFromStatus(const std::string& s) {
  const std::string u = Upper(s);
  if (u == "OK") return true;
  if (u.empty() || u == "UNKNOWN") return std::nullopt;
  return false;  // ClientError, ServerError, Error, client_error, server_error, timeout
}

std::string MysqlCommandName(int64_t n) {
  switch (n) {
    case 0: return "LOGIN";  // DeepFlow reports the handshake response as request type 0
    case 1: return "COM_QUIT";
    case 2: return "COM_INIT_DB";
    case 3: return "COM_QUERY";
    case 14: return "COM_PING";
    case 22: return "COM_STMT_PREPARE";
    case 23: return "COM_STMT_EXECUTE";
    case 25: return "COM_STMT_CLOSE";
    default: return "COM_" + std::to_string(n);
  }
}

std::string PgsqlTypeName(const std::string& letter) {
  static const std::map<std::string, std::string> kNames = {
      {"Q", "Query"}, {"P", "Parse"}, {"B", "Bind"}, {"E", "Execute"}, {"X", "Terminate"}};
  auto it = kNames.find(letter);
  return it == kNames.end() ? letter : it->second;
}

// Answers the oldest unanswered request (in-order protocols).
ExpectedRequest* OldestOpen(std::vector<ExpectedRequest>* reqs, std::vector<bool>* answered) {
  for (size_t i = 0; i < reqs->size(); ++i) {
    if (!(*answered)[i]) {
      (*answered)[i] = true;
      return &(*reqs)[i];
    }
  }
  return nullptr;
}

std::optional<ExpectedCapture> ParseDeepflow(const std::string& text, const std::string& folder) {
  ExpectedCapture e;
  e.source = "deepflow";
  std::vector<bool> answered;
  std::map<std::string, size_t> by_id;  // stream / request / correlation id -> request index
  std::istringstream in(text);
  std::string line;
  auto add = [&](ExpectedRequest r, const std::optional<std::string>& id) {
    if (id) by_id[*id] = e.requests.size();
    e.requests.push_back(std::move(r));
    answered.push_back(false);
  };
  auto answer = [&](const std::optional<std::string>& id) -> ExpectedRequest* {
    if (id) {
      auto it = by_id.find(*id);
      if (it == by_id.end() || answered[it->second]) return nullptr;
      answered[it->second] = true;
      return &e.requests[it->second];
    }
    return OldestOpen(&e.requests, &answered);
  };
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line[0] == '{') {  // JSON line (dns, mysql, pgsql)
      size_t end = line.rfind('}', line.find("} ") == std::string::npos ? line.size() : line.find("} ") + 1);
      Json j = Json::parse(line.substr(0, end + 1), nullptr, false);
      if (j.is_discarded()) continue;
      const std::string msg = j.value("msg_type", "");
      if (folder == "dns") {
        std::optional<std::string> id = std::to_string(j.value("request_id", 0));
        if (msg == "Request") {
          add({j.value("request_type", ""), j.value("request_resource", ""), {}, {}}, id);
        } else if (msg == "Response") {
          ExpectedRequest* r = answer(id);
          if (r == nullptr) {  // a response whose query is not in the capture still counts
            add({j.value("request_type", ""), j.value("request_resource", ""), {}, {}}, id);
            r = answer(id);
          }
          r->ok = OkFromStatus(j.value("response_status", ""));
          if (j.contains("response_code")) r->code = j["response_code"].get<int64_t>();
        }
      } else if (folder == "mysql") {
        if (msg == "Request") {
          ExpectedRequest r;
          const int64_t type = j.value("request_type", -1);
          r.method = MysqlCommandName(type);
          std::string res = j.value("request_resource", "");
          if (type == 0) {  // "Login username: root db: x"
            const std::string kUser = "username: ";
            size_t u = res.find(kUser);
            res = u == std::string::npos ? "" : res.substr(u + kUser.size(), res.find(' ', u + kUser.size()) - u - kUser.size());
          }
          // For COM_STMT_EXECUTE DeepFlow shows the bound parameters, we the statement text.
          if (!res.empty() && type != 23) r.resource = res;
          add(std::move(r), std::nullopt);
          if (type == 0 || type == 1) answered.back() = false;
        } else if (msg == "Response") {
          if (ExpectedRequest* r = answer(std::nullopt)) {
              // DeepFlow's MySQL response_code is the reply's header byte (0 OK, 254 EOF, 255
            // ERR), not the error code we report: only the status is comparable.
            r->ok = OkFromStatus(j.value("response_status", ""));
          }
        }
      } else if (folder == "pgsql") {
        if (msg == "Request") {
          ExpectedRequest r;
          r.method = PgsqlTypeName(j.value("request_type", ""));
          if (j.contains("request_resource")) r.resource = j["request_resource"].get<std::string>();
          add(std::move(r), std::nullopt);
        } else if (msg == "Response") {
          if (ExpectedRequest* r = answer(std::nullopt)) r->ok = OkFromStatus(j.value("status", ""));
        }
      }
      continue;
    }
    const std::optional<std::string> msg = RustField(line, "msg_type");
    if (folder == "http" || folder == "http2") {
      if (line.find("is_http: true") == std::string::npos) continue;
      std::optional<std::string> id = folder == "http2" ? RustField(line, "stream_id") : std::nullopt;
      if (msg == "Request") {
        ExpectedRequest r;
        const std::string m = RustField(line, "method").value_or("");
        if (!m.empty() && m[0] != '_') r.method = Upper(m);  // _RequestHeader: not a method
        if (auto p = RustField(line, "path"); p && !p->empty()) r.resource = *p;
        add(std::move(r), id);
      } else if (msg == "Response") {
        const std::optional<int64_t> grpc = ToInt(RustField(line, "grpc_status_code"));
        if (ExpectedRequest* r = answer(id)) {
          r->code = ToInt(RustField(line, "status_code"));
          r->ok = OkFromStatus(RustField(line, "status").value_or(""));
        }
        // gRPC: the trailers' grpc-status is the code we report (the HTTP status is always 200).
        if (grpc && id && by_id.count(*id) != 0) e.requests[by_id[*id]].code = grpc;
      }
    } else if (folder == "redis") {
      const std::string req = RustField(line, "request").value_or("");
      if (!req.empty()) {
        ExpectedRequest r;
        r.method = Upper(RustField(line, "request_type").value_or(""));
        // DeepFlow prints the command's arguments joined by spaces, so argument boundaries are
        // lost: keep everything after the verb; ResourceMatches accepts our key when it is the
        // whole rest or its first space-separated part(s).
        const size_t sp = req.find(' ');
        if (sp != std::string::npos && sp + 1 < req.size()) r.resource = req.substr(sp + 1);
        add(std::move(r), std::nullopt);
      } else if (ExpectedRequest* r = answer(std::nullopt)) {
        r->ok = RustField(line, "error").value_or("").empty();
      }
    } else if (folder == "kafka") {
      std::optional<std::string> id = RustField(line, "correlation_id");
      if (msg == "Request") {
        ExpectedRequest r;
        r.method = RustField(line, "api_key");
        if (auto t = RustField(line, "topic_name"); t && !t->empty()) r.resource = *t;
        add(std::move(r), id);
      } else if (msg == "Response") {
        if (ExpectedRequest* r = answer(id)) {
          r->ok = OkFromStatus(RustField(line, "status").value_or(""));
          r->code = ToInt(RustField(line, "status_code"));
          // Kafka's error codes start at -1 (UNKNOWN_SERVER_ERROR). DeepFlow prints -2 with
          // status Ok for APIs whose error field it does not read (OffsetCommit, Heartbeat in
          // deepflow__mixed-with-unsupported carry error 0 on the wire, per tshark): its own
          // marker, not a Kafka code, so there is nothing to compare.
          if (r->code && *r->code < -1) r->code.reset();
        }
      }
    } else if (folder == "dubbo") {
      std::optional<std::string> id = RustField(line, "request_id");
      if (msg == "Request") {
        ExpectedRequest r;
        r.method = RustField(line, "method_name");
        r.resource = RustField(line, "service_name");
        add(std::move(r), id);
      } else if (msg == "Response") {
        if (ExpectedRequest* r = answer(id)) r->code = ToInt(RustField(line, "status_code"));
      }
    } else if (folder == "mqtt") {
      const std::string type = RustField(line, "pkt_type").value_or("");
      static const std::vector<std::string> kRequests = {"Connect", "Publish", "Subscribe",
                                                         "Unsubscribe", "Pingreq", "Disconnect"};
      if (std::find(kRequests.begin(), kRequests.end(), type) != kRequests.end()) {
        ExpectedRequest r;
        r.method = Upper(type);
        if (auto t = RustField(line, "publish_topic"); t && !t->empty()) r.resource = *t;
        add(std::move(r), type == "Connect" ? std::optional<std::string>("connect") : std::nullopt);
        if (type != "Connect") answered.back() = true;  // only CONNACK codes are compared
      } else if (type == "Connack") {
        if (ExpectedRequest* r = answer(std::string("connect"))) {
          r->code = ToInt(RustField(line, "code"));
          r->ok = OkFromStatus(RustField(line, "status").value_or(""));
        }
      }
    }
  }
  if (e.requests.empty()) return std::nullopt;
  return e;
}

// ---- Packetbeat: the assertions restated as plain facts ----

int DnsRcode(const std::string& name) {
  static const std::map<std::string, int> kCodes = {{"NOERROR", 0}, {"FORMERR", 1}, {"SERVFAIL", 2},
                                                    {"NXDOMAIN", 3}, {"NOTIMP", 4}, {"REFUSED", 5}};
  auto it = kCodes.find(name);
  return it == kCodes.end() ? -1 : it->second;
}

void ApplyPacketbeatFields(const std::string& folder, const std::string& s, ExpectedRequest* r) {
  std::smatch m;
  if (std::regex_search(s, m, std::regex(R"(\bmethod=([A-Za-z]+))"))) r->method = Upper(m[1]);
  if (std::regex_search(s, m, std::regex(R"(\bstatus=(OK|Error))"))) r->ok = m[1] == "OK";
  if (std::regex_search(s, m, std::regex(R"((?:http\.code|error_code)=(\d+))"))) {
    r->code = std::stoll(m[1]);
  }
  if (std::regex_search(s, m, std::regex(R"(response_code=([A-Z]+))"))) r->code = DnsRcode(m[1]);
  if (std::regex_search(s, m, std::regex(R"(\bresource=([^,\s]+))"))) r->resource = m[1];
  if (std::regex_search(s, m, std::regex(R"re(query="([^"]*)")re"))) {
    const std::string q = m[1];
    std::smatch qm;
    if (folder == "dns" && std::regex_search(q, qm, std::regex(R"(type ([A-Z]+), (\S+))"))) {
      r->method = qm[1];
      r->resource = qm[2];
    } else if (folder == "http" && std::regex_match(q, qm, std::regex(R"(([A-Z]+) (\S+))"))) {
      r->method = qm[1];
      r->resource = qm[2];
    } else if (folder == "mysql" || folder == "pgsql") {
      r->resource = q;
    }
  }
  if (folder == "http" && !r->method &&
      std::regex_search(s, m, std::regex(R"(\b(GET|POST|PUT|DELETE|HEAD)\b)"))) {
    r->method = m[1];
  }
  if (folder == "dns" && !r->method &&
      std::regex_search(s, m, std::regex(R"(: (A|AAAA|MX|NS|TXT|PTR|SRV|CNAME|SOA|ANY) (\S+),)"))) {
    r->method = m[1];
    r->resource = m[2];
  }
}

std::optional<ExpectedCapture> ParsePacketbeat(const std::string& text, const std::string& folder) {
  ExpectedCapture e;
  e.source = "packetbeat";
  std::istringstream in(text);
  std::string line;
  std::smatch m;
  bool counted = false;
  while (std::getline(in, line)) {
    if (!line.starts_with("- ")) continue;
    if (!counted && std::regex_search(line, m, std::regex(R"(^- (?:exactly |>=)?(\d+) (?:http )?transactions?)"))) {
      counted = true;
      e.requests.resize(std::stoul(m[1]));
      std::smatch c;
      if (std::regex_search(line, c, std::regex(R"( on ([0-9.]+):(\d+) -> ([0-9.]+):(\d+))"))) {
        e.client_ip = c[1];
        e.client_port = static_cast<uint32_t>(std::stoul(c[2]));
        e.server_ip = c[3];
        e.server_port = static_cast<uint32_t>(std::stoul(c[4]));
      }
      if (e.requests.size() == 1) ApplyPacketbeatFields(folder, line.substr(m.length(0)), &e.requests[0]);
      continue;
    }
    if (std::regex_search(line, m, std::regex(R"(^- tx\[(\d+)\]: (.*))"))) {
      const size_t i = std::stoul(m[1]);
      if (i < e.requests.size()) ApplyPacketbeatFields(folder, m[2], &e.requests[i]);
    } else if (line.starts_with("- by method: ")) {
      size_t i = 0;
      std::string rest = line.substr(13);
      const std::regex item(R"(([A-Z]+)=(\d+))");
      for (std::sregex_iterator it(rest.begin(), rest.end(), item), end;
           it != end; ++it) {
        for (int n = std::stoi((*it)[2]); n > 0 && i < e.requests.size(); --n) {
          e.requests[i++].method = (*it)[1];
        }
      }
    } else if (line.starts_with("- statuses: ")) {
      size_t i = 0;
      std::string rest = line.substr(12);
      const std::regex item(R"(OK|Error)");
      for (std::sregex_iterator it(rest.begin(), rest.end(), item), end;
           it != end && i < e.requests.size(); ++it) {
        e.requests[i++].ok = it->str() == "OK";
      }
    }
  }
  if (e.requests.empty()) return std::nullopt;
  return e;
}

// ---- Arkime: per-session JSON ----

std::optional<ExpectedCapture> ParseArkime(const std::string& text, const std::string& folder) {
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.contains("sessions3")) return std::nullopt;
  ExpectedCapture e;
  e.source = "arkime";
  for (const Json& s : j["sessions3"]) {
    const Json& b = s["body"];
    if (folder == "http" && b.contains("http")) {
      const Json& h = b["http"];
      std::optional<std::string> path;
      if (h.contains("path") && h["path"].size() == 1) path = h["path"][0].get<std::string>();
      std::optional<int64_t> code;
      std::vector<int64_t> finals;
      if (h.contains("statuscode")) {
        for (const Json& c : h["statuscode"]) {
          if (c.get<int64_t>() >= 200) finals.push_back(c.get<int64_t>());
        }
      }
      if (finals.size() == 1) code = finals[0];
      for (const auto& [k, v] : h.items()) {
        if (!k.starts_with("method-")) continue;
        for (int n = v.get<int>(); n > 0; --n) e.requests.push_back({k.substr(7), path, {}, code});
      }
    } else if (folder == "dns" && b.contains("dns")) {
      for (const Json& d : b["dns"]) {
        if (!d.contains("qt")) continue;
        ExpectedRequest r;
        r.method = d["qt"].get<std::string>();
        if (d.contains("queryHost")) r.resource = d["queryHost"].get<std::string>();
        if (d.contains("status")) {
          const std::string st = d["status"].get<std::string>();
          r.ok = st == "NOERROR";
          if (DnsRcode(st) >= 0) r.code = DnsRcode(st);
        }
        e.requests.push_back(std::move(r));
      }
    } else if (folder == "tls" && b.contains("tls")) {
      ExpectedRequest r;
      if (b.contains("http") && b["http"].contains("host")) r.resource = b["http"]["host"][0].get<std::string>();
      e.requests.push_back(std::move(r));
    } else if (folder == "mysql" && b.contains("mysql") && b["mysql"].contains("user")) {
      e.requests.push_back({"LOGIN", b["mysql"]["user"].get<std::string>(), {}, {}});
    } else if (folder == "pgsql" && b.contains("postgresql") && b["postgresql"].contains("user")) {
      e.requests.push_back({"Startup", b["postgresql"]["user"].get<std::string>(), {}, {}});
    }
  }
  if (e.requests.empty()) return std::nullopt;
  return e;
}

// ---- nDPI: one line per flow ----

std::optional<ExpectedCapture> ParseNdpi(const std::string& text, const std::string& folder) {
  ExpectedCapture e;
  e.source = "ndpi";
  std::istringstream in(text);
  std::string line;
  std::smatch m;
  const std::string want = folder == "http" ? "HTTP" : folder == "dns" ? "DNS" : folder == "tls" ? "TLS" : "";
  if (want.empty()) return std::nullopt;
  while (std::getline(in, line)) {
    if (!std::regex_search(line, std::regex(R"(^\s*\d+\s+(TCP|UDP) )"))) continue;
    if (!std::regex_search(line, m, std::regex(R"(\[proto: [0-9.]+/([A-Za-z0-9_]+))")) || m[1] != want) continue;
    ExpectedRequest r;
    if (folder == "http") {
      if (!std::regex_search(line, m, std::regex(R"(\[URL: [^/\]]*(/[^\]]*)\])"))) continue;
      r.resource = m[1];
      if (std::regex_search(line, m, std::regex(R"(\[StatusCode: (\d+)\])"))) r.code = std::stoll(m[1]);
    } else {
      if (!std::regex_search(line, m, std::regex(R"(\[Hostname/SNI: ([^\]]+)\])"))) continue;
      r.resource = m[1];
    }
    e.requests.push_back(std::move(r));
  }
  if (e.requests.empty()) return std::nullopt;
  return e;
}

bool EqualNoCase(const std::string& a, const std::string& b) { return Upper(a) == Upper(b); }

bool MethodMatches(const std::string& folder, const ExpectedRequest& e, const L7RequestLog& r) {
  // Packetbeat names SQL verbs where DeepFlow names commands: either of our two fields may carry it.
  if (EqualNoCase(*e.method, r.request_type()) || EqualNoCase(*e.method, r.endpoint())) return true;
  // Vocabulary: DeepFlow names an extended-protocol batch (Parse, Bind, Describe, Execute, Sync)
  // "P" when it parses a statement; we name a batch after its most significant message, Execute,
  // and carry the statement text. Such a record must still have the text (the resource check
  // then compares it).
  return folder == "pgsql" && *e.method == "Parse" && r.request_type() == "Execute" &&
         !r.request_resource().empty();
}

bool ResourceMatches(const std::string& folder, const ExpectedRequest& e, const L7RequestLog& r) {
  const std::string& want = *e.resource;
  const std::string& got = folder == "tls" ? r.request_domain() : r.request_resource();
  if (got == want) return true;
  if (folder == "http" || folder == "http2") {  // with or without the query string
    return got.substr(0, got.find('?')) == want.substr(0, want.find('?'));
  }
  if (folder == "mysql" || folder == "pgsql") {  // statements: ignore surrounding whitespace
    auto trim = [](std::string s) {
      while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
      size_t i = 0;
      while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
      return s.substr(i);
    };
    auto bare = [&trim](std::string s) {  // and a trailing semicolon
      s = trim(std::move(s));
      if (!s.empty() && s.back() == ';') s.pop_back();
      return trim(std::move(s));
    };
    return bare(got) == bare(want);
  }
  if (folder == "redis") {
    return EqualNoCase(got, want) || (!got.empty() && want.starts_with(got + " "));
  }
  if (folder == "dubbo") {
    // Our resource is Dubbo's service key "service[:version]"; DeepFlow's is the bare service
    // name (the version is a field of its own there). The service part must match exactly.
    return got.substr(0, got.find(':')) == want;
  }
  if (folder == "dns") {  // nDPI prints '*' labels as '_'
    std::string g = got;
    std::replace(g.begin(), g.end(), '*', '_');
    return EqualNoCase(g, want);
  }
  return EqualNoCase(got, want);
}

std::string Describe(const ExpectedRequest& e) {
  std::string s = e.method.value_or("-") + " " + e.resource.value_or("-").substr(0, 50);
  if (e.ok) s += *e.ok ? " ok" : " error";
  if (e.code) s += " code=" + std::to_string(*e.code);
  return s;
}

std::string Ip4String(uint32_t host_order) {
  return std::to_string(host_order >> 24) + "." + std::to_string(host_order >> 16 & 0xff) + "." +
         std::to_string(host_order >> 8 & 0xff) + "." + std::to_string(host_order & 0xff);
}

// True when `r` is on the connection `e` names (either address order), or `e` names none.
bool OnConnection(const ExpectedCapture& e, const L7RequestLog& r) {
  if (!e.client_port || !e.server_port) return true;
  const std::string a = Ip4String(r.ip4_0()), b = Ip4String(r.ip4_1());
  const bool ips = (a == *e.client_ip && b == *e.server_ip) || (a == *e.server_ip && b == *e.client_ip);
  return ips && r.client_port() == *e.client_port && r.server_port() == *e.server_port;
}

double Ratio(int a, int b) { return b == 0 ? 1.0 : double(a) / b; }

}  // namespace

void Agreement::Add(const Agreement& o) {
  expected += o.expected;
  found += o.found;
  method_expected += o.method_expected;
  method_matched += o.method_matched;
  resource_expected += o.resource_expected;
  resource_matched += o.resource_matched;
  status_expected += o.status_expected;
  status_matched += o.status_matched;
  code_expected += o.code_expected;
  code_matched += o.code_matched;
}

StatusOr<std::vector<L7RequestLog>> RunAgentPipeline(const fs::path& pcap) {
  L7Collector sink;
  metrics::Registry registry;
  agent::protocols::L7AnalyzerOptions l7;  // sonde-agent's defaults
  l7.app_metrics = false;
  agent::protocols::L7Analyzer analyzer(&sink, &registry, l7);
  agent::flow::FlowTrackerConfig fc;
  agent::flow::FlowTracker tracker(fc, &sink, &analyzer, &registry);
  agent::capture::ClockedSink clocked(&tracker);
  agent::capture::PcapFileSource source(pcap.string());
  std::atomic<bool> stop{false};
  Status s = source.Run(clocked, stop);
  if (!s.ok()) return s;
  tracker.FlushAll(clocked.last_ns());
  analyzer.FlushAll(clocked.last_ns());
  return std::move(sink.l7);
}

std::optional<ExpectedCapture> LoadExpected(const fs::path& pcap, const std::string& folder) {
  const std::string stem = pcap.stem().string();
  const fs::path dir = pcap.parent_path();
  if (fs::exists(dir / (stem + ".result"))) return ParseDeepflow(ReadFile(dir / (stem + ".result")), folder);
  if (fs::exists(dir / (stem + ".expected.txt")) && stem.starts_with("packetbeat__")) {
    return ParsePacketbeat(ReadFile(dir / (stem + ".expected.txt")), folder);
  }
  if (fs::exists(dir / (stem + ".arkime.test.json"))) {
    return ParseArkime(ReadFile(dir / (stem + ".arkime.test.json")), folder);
  }
  if (fs::exists(dir / (stem + ".ndpiReader.out"))) {
    return ParseNdpi(ReadFile(dir / (stem + ".ndpiReader.out")), folder);
  }
  return std::nullopt;
}

bool InFamily(const std::string& folder, const L7RequestLog& r) {
  const L7Protocol p = r.l7_protocol();
  if (folder == "http") return p == L7Protocol::L7_PROTOCOL_HTTP1;
  if (folder == "http2") return p == L7Protocol::L7_PROTOCOL_HTTP2 || p == L7Protocol::L7_PROTOCOL_GRPC;
  if (folder == "dns") return p == L7Protocol::L7_PROTOCOL_DNS;
  if (folder == "tls") return p == L7Protocol::L7_PROTOCOL_TLS;
  if (folder == "mysql") return p == L7Protocol::L7_PROTOCOL_MYSQL;
  if (folder == "pgsql") return p == L7Protocol::L7_PROTOCOL_POSTGRESQL;
  if (folder == "redis") return p == L7Protocol::L7_PROTOCOL_REDIS;
  if (folder == "kafka") return p == L7Protocol::L7_PROTOCOL_KAFKA;
  if (folder == "mqtt") return p == L7Protocol::L7_PROTOCOL_MQTT;
  if (folder == "dubbo") return p == L7Protocol::L7_PROTOCOL_DUBBO;
  return false;
}

Agreement Compare(const std::string& folder, const ExpectedCapture& expected,
                  const std::vector<L7RequestLog>& records, std::vector<std::string>* misses) {
  Agreement a;
  std::vector<bool> used(records.size(), false);
  // Pass 1 pairs on method and resource, pass 2 on whichever of them is stated, pass 3 in order.
  std::vector<int> pair(expected.requests.size(), -1);
  for (int pass = 0; pass < 3; ++pass) {
    for (size_t i = 0; i < expected.requests.size(); ++i) {
      if (pair[i] >= 0) continue;
      const ExpectedRequest& e = expected.requests[i];
      for (size_t k = 0; k < records.size(); ++k) {
        if (used[k]) continue;
        const bool m = e.method && MethodMatches(folder, e, records[k]);
        const bool r = e.resource && ResourceMatches(folder, e, records[k]);
        const bool fit = pass == 0   ? (m || !e.method) && (r || !e.resource) && (e.method || e.resource)
                         : pass == 1 ? m || r
                                     : true;
        if (fit) {
          pair[i] = static_cast<int>(k);
          used[k] = true;
          break;
        }
      }
    }
  }
  for (size_t i = 0; i < expected.requests.size(); ++i) {
    const ExpectedRequest& e = expected.requests[i];
    ++a.expected;
    a.method_expected += e.method ? 1 : 0;
    a.resource_expected += e.resource ? 1 : 0;
    a.status_expected += e.ok ? 1 : 0;
    a.code_expected += e.code ? 1 : 0;
    if (pair[i] < 0) {
      if (misses) misses->push_back("not found: " + Describe(e));
      continue;
    }
    const L7RequestLog& r = records[pair[i]];
    ++a.found;
    bool all = true;
    auto count = [&all](bool stated, bool ok, int* n) {
      if (!stated) return;
      if (ok) {
        ++*n;
      } else {
        all = false;
      }
    };
    count(e.method.has_value(), e.method && MethodMatches(folder, e, r), &a.method_matched);
    count(e.resource.has_value(), e.resource && ResourceMatches(folder, e, r), &a.resource_matched);
    count(e.ok.has_value(), e.ok && *e.ok == (r.response_status() == common::v1::RESPONSE_STATUS_OK),
          &a.status_matched);
    count(e.code.has_value(), e.code && *e.code == r.response_code(), &a.code_matched);
    if (!all && misses) {
      misses->push_back("expected " + Describe(e) + " | got " + r.request_type() + " " +
                        r.request_resource().substr(0, 50) + " status=" +
                        common::v1::ResponseStatus_Name(r.response_status()) +
                        " code=" + std::to_string(r.response_code()));
    }
  }
  return a;
}

std::map<std::string, Agreement> RunAcceptance(const fs::path& corpus,
                                               const std::vector<std::string>& folders) {
  std::map<std::string, Agreement> totals;
  for (const std::string& folder : folders) {
    std::vector<fs::path> captures;
    for (const auto& entry : fs::directory_iterator(corpus / folder)) {
      const std::string ext = entry.path().extension().string();
      if (ext == ".pcap" || ext == ".pcapng") captures.push_back(entry.path());
    }
    std::sort(captures.begin(), captures.end());
    Agreement& t = totals[folder];
    for (const fs::path& pcap : captures) {
      std::optional<ExpectedCapture> expected = LoadExpected(pcap, folder);
      if (!expected) continue;
      auto records = RunAgentPipeline(pcap);
      if (!records.ok()) {
        ADD_FAILURE() << pcap << ": " << records.status().ToString();
        continue;
      }
      std::vector<L7RequestLog> family;
      for (auto& r : *records) {
        if (InFamily(folder, r) && OnConnection(*expected, r)) family.push_back(std::move(r));
      }
      std::vector<std::string> misses;
      Agreement a = Compare(folder, *expected, family, &misses);
      t.Add(a);
      std::printf("  %-6s %-52s %-10s req %4d/%-4d method %3d/%-3d resource %3d/%-3d status %3d/%-3d code %3d/%-3d\n",
                  folder.c_str(), pcap.filename().string().substr(0, 52).c_str(),
                  expected->source.c_str(), a.found, a.expected, a.method_matched,
                  a.method_expected, a.resource_matched, a.resource_expected, a.status_matched,
                  a.status_expected, a.code_matched, a.code_expected);
      for (size_t i = 0; i < misses.size() && i < 4; ++i) std::printf("         %s\n", misses[i].c_str());
      if (misses.size() > 4) std::printf("         ... %zu more\n", misses.size() - 4);
    }
  }
  std::printf("\n%-6s %9s %9s %9s %9s %9s %9s\n", "proto", "expected", "found", "method",
              "resource", "status", "code");
  for (const auto& [folder, t] : totals) {
    std::printf("%-6s %9d %4d %.3f %.3f(%d) %.3f(%d) %.3f(%d) %.3f(%d)\n", folder.c_str(),
                t.expected, t.found, Ratio(t.found, t.expected),
                Ratio(t.method_matched, t.method_expected), t.method_expected,
                Ratio(t.resource_matched, t.resource_expected), t.resource_expected,
                Ratio(t.status_matched, t.status_expected), t.status_expected,
                Ratio(t.code_matched, t.code_expected), t.code_expected);
  }
  return totals;
}

void CheckBaseline(const fs::path& baseline_file, const std::map<std::string, Agreement>& results) {
  std::map<std::string, double> got;
  for (const auto& [folder, t] : results) {
    got[folder + ".found"] = Ratio(t.found, t.expected);
    got[folder + ".method"] = Ratio(t.method_matched, t.method_expected);
    got[folder + ".resource"] = Ratio(t.resource_matched, t.resource_expected);
    got[folder + ".status"] = Ratio(t.status_matched, t.status_expected);
    got[folder + ".code"] = Ratio(t.code_matched, t.code_expected);
  }
  if (const char* u = std::getenv("SONDE_UPDATE_BASELINE"); u != nullptr && std::string(u) == "1") {
    std::ofstream out(baseline_file);
    for (const auto& [k, v] : got) {
      // Rounded down, so the floor holds on a rerun.
      out << k << " " << std::to_string(static_cast<double>(static_cast<int>(v * 1000)) / 1000).substr(0, 5) << "\n";
    }
    return;
  }
  std::ifstream in(baseline_file);
  ASSERT_TRUE(in.good()) << "missing " << baseline_file;
  std::string key;
  double floor = 0;
  while (in >> key >> floor) {
    auto it = got.find(key);
    if (it == got.end()) {
      ADD_FAILURE() << key << " in the baseline but not measured";
      continue;
    }
    EXPECT_GE(it->second + 1e-9, floor) << key << " fell below the baseline in " << baseline_file;
  }
}

}  // namespace sonde::corpus
