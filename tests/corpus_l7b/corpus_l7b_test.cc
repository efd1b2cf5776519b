// Acceptance of the MySQL, PostgreSQL, Redis, Kafka, MQTT and Dubbo parsers over the shared
// public corpus: each capture runs through the real agent pipeline (pcap source -> flow tracker
// -> L7Analyzer with content inference -> FrameParser -> Traits -> records), as
// `sonde-agent --pcap` does. Two checks: field for field against the expected outputs the source
// projects ship (DeepFlow *.result, Packetbeat *.expected.txt, Arkime JSON; floor in
// agreement.txt), and hand-written facts taken from them (floor in baseline.txt).
// SONDE_UPDATE_BASELINE=1 rewrites both floors. Skips when the corpus is absent.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tests/corpus_l7/corpus_compare.h"

namespace sonde {
namespace {

namespace fs = std::filesystem;
using agent::v1::L7RequestLog;
using common::v1::L7Protocol;
using Records = std::vector<L7RequestLog>;

fs::path CorpusDir() {
  const char* src = std::getenv("SONDE_SOURCE_DIR");
  return fs::path(src != nullptr ? src : ".") / ".." / "shared" / "corpus";
}

// Records of `protocol` from one capture, through the agent pipeline.
Records RunCapture(const fs::path& file, L7Protocol protocol, std::string* error) {
  auto run = corpus::RunAgentPipeline(file);
  if (!run.ok()) {
    *error = run.status().ToString();
    return {};
  }
  Records out;
  for (auto& r : *run) {
    if (r.l7_protocol() == protocol) out.push_back(std::move(r));
  }
  return out;
}

size_t Count(const Records& rs, const std::function<bool(const L7RequestLog&)>& pred) {
  size_t n = 0;
  for (const auto& r : rs) n += pred(r) ? 1 : 0;
  return n;
}

struct Fact {
  const char* file;  // under the corpus root
  L7Protocol protocol;
  const char* what;  // the expectation, as stated next to the capture
  std::function<bool(const Records&)> check;
};

bool Ok(const L7RequestLog& r) { return r.response_status() == common::v1::RESPONSE_STATUS_OK; }

std::vector<Fact> Facts() {
  using P = L7Protocol;
  return {
      // MySQL (packetbeat expectations).
      {"mysql/packetbeat__mysql_affected_rows.pcap", P::L7_PROTOCOL_MYSQL, "1 UPDATE, affected_rows=316, ok",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.endpoint() == "UPDATE" && Ok(r) && r.response_result() == "affected_rows=316"; }) == 1; }},
      {"mysql/packetbeat__mysql_err_database_not_selected.pcap", P::L7_PROTOCOL_MYSQL, "SELECT error 1046 No database selected",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.endpoint() == "SELECT" && r.response_code() == 1046 && r.response_exception() == "No database selected"; }) == 1; }},
      {"mysql/packetbeat__mysql_int_string_operations.pcap", P::L7_PROTOCOL_MYSQL, "157 queries: SELECT 134, SHOW 10, ALTER 4, SET 3, CREATE 2",
       [](const Records& rs) {
         std::map<std::string, size_t> by;
         for (const auto& r : rs) ++by[r.endpoint()];
         return by["SELECT"] == 134 && by["SHOW"] == 10 && by["ALTER"] == 4 && by["SET"] == 3 && by["CREATE"] == 2;
       }},
      {"mysql/packetbeat__mysql_long.pcap", P::L7_PROTOCOL_MYSQL, "1 query, 400 rows",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.response_result() == "rows=400"; }) == 1; }},
      {"mysql/packetbeat__mysql_long_result.pcap", P::L7_PROTOCOL_MYSQL, "1 query, 15 rows",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.response_result() == "rows=15"; }) == 1; }},
      {"mysql/packetbeat__mysql_with_whitespaces.pcap", P::L7_PROTOCOL_MYSQL, "7 queries (besides login and pings), all answered OK",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.request_type() == "COM_QUERY"; }) == 7 && Count(rs, [](auto& r) { return r.request_type() == "COM_QUERY" && Ok(r) && r.response_length() > 0; }) == 7; }},
      {"mysql/packetbeat__mysql_with_whitespaces.pcap", P::L7_PROTOCOL_MYSQL, "the INSERT reports affected_rows=1, the SELECTs 1 row each",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.endpoint() == "INSERT" && r.response_result() == "affected_rows=1"; }) == 1 && Count(rs, [](auto& r) { return r.response_result() == "rows=1"; }) == 2; }},
      // PostgreSQL.
      {"pgsql/packetbeat__pgsql_insert.pcap", P::L7_PROTOCOL_POSTGRESQL, "1 INSERT",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.endpoint() == "INSERT" && Ok(r); }) == 1; }},
      {"pgsql/packetbeat__pgsql_insert_error.pcap", P::L7_PROTOCOL_POSTGRESQL, "INSERT error 23505",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.endpoint() == "INSERT" && r.response_code() == 23505; }) == 1; }},
      {"pgsql/packetbeat__pgsql_long_result.pcap", P::L7_PROTOCOL_POSTGRESQL, "15 rows",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.response_result() == "SELECT 15"; }) == 1; }},
      {"pgsql/packetbeat__pgsql_request_response.pcap", P::L7_PROTOCOL_POSTGRESQL, "select * from test, 4 rows",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.endpoint() == "SELECT" && r.response_result() == "SELECT 4"; }) == 1; }},
      {"pgsql/packetbeat__pgsql_rt.pcap", P::L7_PROTOCOL_POSTGRESQL, "SELECT with response time ~38 ms",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.endpoint() == "SELECT" && r.response_duration() >= 30000 && r.response_duration() <= 46000; }) == 1; }},
      {"pgsql/deepflow__error.pcap", P::L7_PROTOCOL_POSTGRESQL, "Query asdsdfdsf; -> SQLSTATE 42601",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.request_type() == "Query" && r.response_result() == "SQLSTATE 42601" && r.response_code() == 42601; }) == 1; }},
      {"pgsql/deepflow__simple_query.pcap", P::L7_PROTOCOL_POSTGRESQL, "Query delete from test -> DELETE 1",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.request_resource() == "delete  from test;" && r.response_result() == "DELETE 1"; }) == 1; }},
      {"pgsql/deepflow__prepare_stat.pcap", P::L7_PROTOCOL_POSTGRESQL, "extended: delete ... returning id, DELETE 0",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.request_resource() == "delete from test where id=$1 returning id" && r.response_result() == "DELETE 0"; }) >= 1; }},
      // Redis.
      {"redis/packetbeat__redis_session.pcap", P::L7_PROTOCOL_REDIS, "SET key3 OK, GET key3 me, LLEN wrong-type error",
       [](const Records& rs) {
         return rs.size() >= 3 && rs[0].request_type() == "SET" && rs[0].request_resource() == "key3" &&
                rs[0].response_result() == "OK" && rs[1].response_result() == "me" &&
                rs[2].request_type() == "LLEN" &&
                rs[2].response_exception() == "ERR Operation against a key holding the wrong kind of value";
       }},
      {"redis/packetbeat__redis_one_transaction.pcap", P::L7_PROTOCOL_REDIS, "exactly 1 transaction",
       [](const Records& rs) { return rs.size() == 1; }},
      {"redis/deepflow__redis-error.pcap", P::L7_PROTOCOL_REDIS, "a NOAUTH error reply",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.response_exception() == "NOAUTH Authentication required."; }) >= 1; }},
      // Kafka (DeepFlow results).
      {"kafka/deepflow__00-produce-v9.pcap", P::L7_PROTOCOL_KAFKA, "Produce v9 topic zqy-test",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.request_type() == "Produce" && r.version() == "9" && r.request_resource() == "zqy-test" && Ok(r); }) == 1; }},
      {"kafka/deepflow__01-fetch-v12-ok.pcap", P::L7_PROTOCOL_KAFKA, "Fetch v12 topic zqy-test",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.request_type() == "Fetch" && r.version() == "12" && r.request_resource() == "zqy-test"; }) == 1; }},
      {"kafka/deepflow__18-api-versions-v3.pcap", P::L7_PROTOCOL_KAFKA, "ApiVersions v3 ok",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.request_type() == "ApiVersions" && r.version() == "3" && Ok(r); }) == 1; }},
      // MQTT (DeepFlow results).
      {"mqtt/deepflow__mqtt_connect.pcap", P::L7_PROTOCOL_MQTT, "a CONNECT answered",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.request_type() == "CONNECT" && r.response_length() > 0; }) >= 1; }},
      {"mqtt/deepflow__mqtt_pub.pcap", P::L7_PROTOCOL_MQTT, "PUBLISH records with topics",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.request_type() == "PUBLISH" && !r.request_resource().empty(); }) >= 1; }},
      // Dubbo (DeepFlow results).
      {"dubbo/deepflow__dubbo_hessian2.pcap", P::L7_PROTOCOL_DUBBO, "login on my.demo.service.UserService, status 20",
       [](const Records& rs) { return Count(rs, [](auto& r) { return r.request_type() == "login" && r.endpoint() == "my.demo.service.UserService/login" && r.response_code() == 20; }) == 1; }},
  };
}

TEST(CorpusL7b, FieldForFieldAgainstSourceProjects) {
  if (!fs::exists(CorpusDir())) GTEST_SKIP() << "corpus not found at " << CorpusDir();
  auto results = corpus::RunAcceptance(CorpusDir(), {"mysql", "pgsql", "redis", "kafka", "mqtt", "dubbo"});
  const char* src = std::getenv("SONDE_SOURCE_DIR");
  corpus::CheckBaseline(fs::path(src != nullptr ? src : ".") / "tests" / "corpus_l7b" / "agreement.txt",
                        results);
}

TEST(CorpusL7b, FactsFromTheCorpus) {
  if (!fs::exists(CorpusDir())) GTEST_SKIP() << "corpus not found at " << CorpusDir();
  size_t passed = 0;
  for (const Fact& f : Facts()) {
    std::string error;
    Records rs = RunCapture(CorpusDir() / f.file, f.protocol, &error);
    ASSERT_TRUE(error.empty()) << f.file << ": " << error;
    const bool ok = f.check(rs);
    std::string got;
    for (const auto& r : rs) {
      got += "\n    " + r.request_type() + " | " + r.request_resource().substr(0, 60) + " | status " +
             std::to_string(r.response_status()) + " code " + std::to_string(r.response_code()) + " | " +
             r.response_result() + " | " + r.response_exception();
      if (got.size() > 3000) break;
    }
    if (!ok) {
      std::printf("DOES NOT HOLD %s: expected %s; got %zu records:%s\n", f.file, f.what, rs.size(),
                  got.c_str());
    }
    passed += ok ? 1 : 0;
  }
  std::printf("corpus_l7b: %zu of %zu facts hold\n", passed, Facts().size());
  const char* src = std::getenv("SONDE_SOURCE_DIR");
  const fs::path baseline = fs::path(src != nullptr ? src : ".") / "tests" / "corpus_l7b" / "baseline.txt";
  if (const char* u = std::getenv("SONDE_UPDATE_BASELINE"); u != nullptr && std::string(u) == "1") {
    std::ofstream(baseline) << passed << "\n";
    return;
  }
  size_t floor = 0;
  std::ifstream(baseline) >> floor;
  EXPECT_GE(passed, floor) << "fewer corpus facts hold than in " << baseline;
}

// Every capture of these folders yields records of its protocol (inference on content, any port).
TEST(CorpusL7b, EveryCaptureIsRecognised) {
  if (!fs::exists(CorpusDir())) GTEST_SKIP() << "corpus not found at " << CorpusDir();
  const std::map<std::string, L7Protocol> folders = {
      {"mysql", L7Protocol::L7_PROTOCOL_MYSQL}, {"pgsql", L7Protocol::L7_PROTOCOL_POSTGRESQL},
      {"redis", L7Protocol::L7_PROTOCOL_REDIS}, {"kafka", L7Protocol::L7_PROTOCOL_KAFKA},
      {"mqtt", L7Protocol::L7_PROTOCOL_MQTT},   {"dubbo", L7Protocol::L7_PROTOCOL_DUBBO}};
  size_t files = 0, recognised = 0, records = 0;
  std::string missing;
  for (const auto& [folder, protocol] : folders) {
    std::vector<fs::path> captures;
    for (const auto& e : fs::directory_iterator(CorpusDir() / folder)) {
      const std::string ext = e.path().extension().string();
      if (ext == ".pcap" || ext == ".pcapng") captures.push_back(e.path());
    }
    std::sort(captures.begin(), captures.end());
    for (const auto& file : captures) {
      std::string error;
      Records rs = RunCapture(file, protocol, &error);
      ++files;
      records += rs.size();
      if (!rs.empty()) {
        ++recognised;
      } else {
        missing += " " + folder + "/" + file.filename().string();
      }
    }
  }
  std::printf("corpus_l7b: %zu of %zu captures recognised, %zu records; none from:%s\n", recognised,
              files, records, missing.c_str());
  // Known exceptions are listed by name in the report; the floor keeps regressions visible.
  EXPECT_GE(recognised, files * 8 / 10) << "not recognised:" << missing;
}

}  // namespace
}  // namespace sonde
