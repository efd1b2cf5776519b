// WireRowEncoder micro benchmark (not a test): the RowBinary encoding step of
// ClickHouseStorage::Write alone, on L7 request logs filled like sonde_server_ingest_bench's
// (about 30 of 52 columns set), with the RowTaps the storage asks for. No ClickHouse needed, so
// it also runs under callgrind for instruction counts.
//
//   sonde_wire_encoder_bench [--rows N] (default 200000) [--repeat N] (default 5)
// Prints ns/row of each repeat (thread CPU) and their median, and a checksum of the bytes.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "schema/tables.h"
#include "server/storage/clickhouse/wire_row_encoder.h"
#include "sonde/agent/v1/records.pb.h"

namespace {

using namespace sonde;

double ThreadCpuS() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

uint64_t Next(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

std::vector<std::string> Records(uint64_t rows) {
  static const char* kAgents[] = {"okhttp/4.9.3", "Go-http-client/1.1", "python-requests/2.31.0",
                                  "grpc-java-netty/1.57.2"};
  uint64_t s = 0x9E3779B97F4A7C15ull;
  std::vector<std::string> out;
  out.reserve(rows);
  for (uint64_t row = 0; row < rows; ++row) {
    agent::v1::L7RequestLog m;
    const uint32_t time = 1700000000 + static_cast<uint32_t>(row * 3600 / rows);
    const uint64_t duration = 200 + Next(s) % 40000;
    m.set_time(time);
    m.set_end_time_us(uint64_t{time} * 1000000 + Next(s) % 1000000);
    m.set_start_time_us(m.end_time_us() - duration);
    m.set_signal_source(common::v1::SIGNAL_SOURCE_EBPF);
    m.set_flow_id(row / 8);
    m.set_is_ipv4(1);
    m.set_ip4_0(0x0a000000u + static_cast<uint32_t>(Next(s) % 600));
    m.set_ip4_1(0x0a000000u + static_cast<uint32_t>(Next(s) % 600));
    m.set_client_port(32768 + static_cast<uint32_t>(Next(s) % 28000));
    m.set_server_port(8080);
    m.set_protocol(6);
    m.set_l7_protocol(common::v1::L7_PROTOCOL_HTTP1);
    m.set_version("1.1");
    const uint32_t roll = static_cast<uint32_t>(Next(s) % 1000);
    m.set_request_type(roll % 5 == 0 ? "POST" : "GET");
    const uint32_t svc = static_cast<uint32_t>(Next(s) % 150);
    m.set_request_domain(fmt::format("svc-{}.ns-{}.svc.cluster.local", svc, svc % 12));
    const std::string endpoint = fmt::format("/api/v1/svc{}/items/{{id}}", Next(s) % 20);
    m.set_endpoint(endpoint);
    m.set_request_resource(endpoint.substr(0, endpoint.size() - 4) + std::to_string(Next(s) % 100000));
    const int code = roll < 950 ? 200 : roll < 975 ? 404 : roll < 993 ? 500 : 503;
    m.set_response_code(code);
    m.set_response_status(code == 200   ? common::v1::RESPONSE_STATUS_OK
                          : code == 404 ? common::v1::RESPONSE_STATUS_CLIENT_ERROR
                                        : common::v1::RESPONSE_STATUS_SERVER_ERROR);
    m.set_response_duration(duration);
    m.set_request_length(roll % 5 == 0 ? 200 + Next(s) % 2000 : 0);
    m.set_response_length(100 + Next(s) % 8000);
    m.set_user_agent(kAgents[svc % 4]);
    if (Next(s) % 2 == 0) {
      m.set_trace_id(fmt::format("{:016x}{:016x}", Next(s), Next(s)));
      m.set_span_id(fmt::format("{:016x}", Next(s)));
    }
    m.set_req_tcp_seq(static_cast<uint32_t>(Next(s)));
    m.set_resp_tcp_seq(static_cast<uint32_t>(Next(s)));
    m.set_process_id_0(10000 + static_cast<uint32_t>(Next(s) % 5000));
    m.set_process_kname_0("java");
    m.set_syscall_thread_0(m.process_id_0() + 7);
    out.push_back(m.SerializeAsString());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t rows = 200000;
  int repeat = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--rows") rows = std::stoull(v);
    else if (a == "--repeat") repeat = std::stoi(v);
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  const schema::Table* table = schema::FindTable("flow_log", "l7_request_log");
  if (table == nullptr) return 1;
  const std::vector<std::string> records = Records(rows);
  server::storage::clickhouse::WireRowEncoder encoder;
  encoder.SetTagColumns({"tag_set_id_0", "tag_set_id_1"});
  std::vector<server::storage::RecordSide> sides(rows * 2);
  std::vector<size_t> tag_offsets(rows * 2);
  std::string out;
  std::vector<double> ns;
  uint64_t checksum = 0;
  for (int r = 0; r < repeat; ++r) {
    out.clear();
    server::storage::clickhouse::EncodeStats stats;
    const double t0 = ThreadCpuS();
    for (uint64_t i = 0; i < rows; ++i) {
      server::storage::clickhouse::WireRowEncoder::RowTaps taps;
      taps.sides = sides.data() + i * 2;
      taps.tag_offsets = tag_offsets.data() + i * 2;
      const server::storage::clickhouse::ServerColumns server{7, nullptr};
      if (!encoder.AppendRow(*table, agent::v1::L7RequestLog::descriptor(), records[i], server, &out, &stats, taps)
               .ok()) {
        std::fprintf(stderr, "row %llu failed\n", static_cast<unsigned long long>(i));
        return 1;
      }
    }
    ns.push_back((ThreadCpuS() - t0) * 1e9 / static_cast<double>(rows));
    checksum = 1469598103934665603ull;
    for (unsigned char c : out) checksum = (checksum ^ c) * 1099511628211ull;
    std::printf("repeat %d: %.1f ns/row, %zu bytes\n", r, ns.back(), out.size());
  }
  std::sort(ns.begin(), ns.end());
  std::printf("median %.1f ns/row (min %.1f, max %.1f), checksum %016llx\n", ns[ns.size() / 2], ns.front(),
              ns.back(), static_cast<unsigned long long>(checksum));
  return 0;
}
