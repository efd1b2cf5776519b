// Server ingest benchmark (not a test): generated L7 request logs with realistic Kubernetes tags
// (hundreds of pods and services, thousands of endpoints, a service call graph) go through the
// server's write path three ways, side by side on one ClickHouse. Every variant starts from the
// agents' zstd-compressed frames and runs the production receive side: frame decode + zstd
// (PayloadDecoder, one per connection in the server) + ReadAgentFrame (the ingest server's
// protobuf-equivalent check, records kept as wire bytes) + Spool::Append (fsync) +
// Spool::ReadOldest + Spool::Remove. Then:
//   smart    the production path: ClickHouseStorage::Write = WireRowEncoder (RowBinary, and each
//            record's sides in the same pass) -> TaggingService::TagSides (AutoTagging +
//            SmartEncoding tag set ids) -> ids written into the rows -> flow_log.l7_request_log
//   string   the records parsed, the same tags matched the same way but stored as String columns
//   lowcard  ... stored as LowCardinality(String) columns
// and prints, per variant: server CPU per row (this thread's CPU, user + system, over all of the
// above; production spreads it over connection threads and the drainer), ClickHouse CPU per row
// (its /proc stat), bytes per row on disk (whole row and tag columns only, after OPTIMIZE FINAL;
// smart also counts its share of the flow_tag dictionaries), and the time of a service-map query.
//
//   sonde_server_ingest_bench [--rows N] [--batch N] [--pods N] [--services N]
//                             [--endpoints-per-service N] [--variants smart,string,lowcard]
//                             [--frame-records N]  (records per agent frame; default: a node's share of
//                                                   a write, ~830; agents send up to 4096)
//                             [--spool-fsync 0|1]  (default 1, as the server)
//                             [--breakdown 0|1]  (default 1; 0 skips the sampled per-step timings,
//                                                 e.g. for a profiler that should see the timed path only)
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "common/metrics/registry.h"
#include "schema/tables.h"
#include "server/enrich/enricher.h"
#include "server/enrich/resource_model.h"
#include "server/enrich/tag_dictionary.h"
#include "server/enrich/tag_store.h"
#include "server/enrich/tagging_service.h"
#include "common/wire/frame_codec.h"
#include "server/ingest/agent_frame_reader.h"
#include "server/ingest/payload_decoder.h"
#include "server/ingest/spool.h"
#include "server/query/translator.h"
#include "server/storage/clickhouse/clickhouse_client.h"
#include "server/storage/clickhouse/clickhouse_process.h"
#include "server/storage/clickhouse/clickhouse_storage.h"
#include "server/storage/clickhouse/row_binary_encoder.h"
#include "server/storage/clickhouse/wire_row_encoder.h"
#include "server/storage/record_batch_wire.h"
#include "server/storage/record_sides.h"
#include "sonde/control/v1/control.pb.h"

namespace {

using namespace sonde;
using namespace sonde::server;
using storage::clickhouse::ClickHouseClient;

struct Options {
  uint64_t rows = 10'000'000;
  uint32_t batch = 50'000;  // records per storage write (the drainer writes up to 32 MiB)
  uint32_t pods = 600;
  uint32_t services = 150;
  uint32_t endpoints_per_service = 20;
  uint32_t nodes = 60;
  std::string variants = "smart,string,lowcard";
  std::string clickhouse_url;  // empty: supervise a private one
  bool spool_fsync = true;     // the production default; 0 shows what the fsyncs cost
  uint32_t frame_records = 0;  // records per agent frame (0: all of a node's records of one write)
  bool breakdown = true;       // the sampled per-step timings (every 10th write; not in server CPU)
};

double ThreadCpuS() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// utime + stime of a process in seconds (0 when unknown).
double ProcessCpuS(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream ss(line.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && ss >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Deterministic xorshift; every variant sees the same records.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t Next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_;
  }
  uint32_t Below(uint32_t n) { return static_cast<uint32_t>(Next() % n); }
  double Unit() { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  uint64_t s_;
};

// The generated cluster: services with pods on nodes, each service calling a few others.
struct World {
  struct Service {
    std::string name, ns;
    std::vector<uint32_t> pods;
    std::vector<uint32_t> callees;
    std::vector<std::string> endpoints;
    const char* process;
  };
  struct Pod {
    uint32_t service, node, ip, pid;
  };
  std::vector<Service> services;
  std::vector<Pod> pods;
  std::vector<std::string> nodes;
  enrich::ResourceModel model;
};

World BuildWorld(const Options& o) {
  static const char* kWords[] = {"checkout", "cart", "payment", "catalog", "search", "user", "auth", "orders",
                                 "shipping", "inventory", "pricing", "reviews", "email", "ads", "recommend",
                                 "gateway", "billing", "ledger", "notify", "media"};
  static const char* kProcesses[] = {"java", "node", "python3", "envoy", "nginx", "ruby", "dotnet", "gunicorn"};
  static const char* kResources[] = {"items", "orders", "users", "sessions", "carts", "products", "accounts",
                                     "invoices", "events", "tokens"};
  World w;
  Rng rng(7);
  const std::string region = "eu-west-1";
  w.model.AddVpc({"vpc-prod-0a1b2c3d", region});
  w.model.AddCluster({"prod-eu-west-1", "vpc-prod-0a1b2c3d"});
  for (int z = 0; z < 3; ++z) {
    auto cidr = enrich::Cidr::Parse(fmt::format("10.{}.0.0/16", z));
    w.model.AddSubnet({fmt::format("subnet-prod-{}{}", region, static_cast<char>('a' + z)), "vpc-prod-0a1b2c3d",
                       fmt::format("{}{}", region, static_cast<char>('a' + z)), *cidr});
  }
  for (uint32_t n = 0; n < o.nodes; ++n) {
    const uint32_t zone = n % 3;
    const uint32_t ip = (10u << 24) | (zone << 16) | (200u << 8) | n;
    w.nodes.push_back(fmt::format("ip-10-{}-200-{}.{}.compute.internal", zone, n, region));
    w.model.AddHost({w.nodes.back(), "vpc-prod-0a1b2c3d", fmt::format("{}{}", region, static_cast<char>('a' + zone)),
                     {net::IpAddress::V4(ip)}, {}});
  }
  for (uint32_t s = 0; s < o.services; ++s) {
    World::Service svc;
    svc.name = fmt::format("{}-{}", kWords[s % 20], s / 20 == 0 ? std::string("svc") : fmt::format("v{}", s / 20));
    svc.ns = fmt::format("team-{}", kWords[(s * 7) % 20]);
    svc.process = kProcesses[s % 8];
    for (uint32_t e = 0; e < o.endpoints_per_service; ++e) {
      svc.endpoints.push_back(fmt::format("/api/v{}/{}/{}/{{id}}", 1 + e % 3, svc.name, kResources[e % 10]));
    }
    const uint32_t ncallees = 1 + rng.Below(4);
    for (uint32_t c = 0; c < ncallees; ++c) svc.callees.push_back(rng.Below(o.services));
    w.services.push_back(std::move(svc));
  }
  for (uint32_t p = 0; p < o.pods; ++p) {
    const uint32_t s = p % o.services;
    const uint32_t node = rng.Below(o.nodes);
    const uint32_t zone = node % 3;
    World::Pod pod{s, node, (10u << 24) | (zone << 16) | ((1 + p / 250) << 8) | (p % 250), 1000 + p};
    w.services[s].pods.push_back(p);
    enrich::PodInfo info;
    info.cluster = "prod-eu-west-1";
    info.ns = w.services[s].ns;
    info.name = fmt::format("{}-{:x}-{:05x}", w.services[s].name, 0x6d4f000 + s * 37, rng.Below(0xfffff));
    info.node = w.nodes[node];
    info.workload = "Deployment/" + w.services[s].name;
    info.services = {w.services[s].name};
    info.ip = net::IpAddress::V4(pod.ip);
    info.labels = {{"app", w.services[s].name}, {"team", w.services[s].ns}};
    w.model.UpsertPod(std::move(info));
    w.model.AddProcess({w.nodes[node], pod.pid, w.services[s].process, {}});
    w.pods.push_back(pod);
  }
  return w;
}

struct AgentFrameBytes {
  uint32_t agent_id;
  std::string frame;  // header + payload, as read from the agent's socket
};

// One storage write worth of records, grouped per reporting agent (= the client's node).
std::vector<AgentFrameBytes> GenerateBatch(const World& w, Rng& rng, uint64_t first_row, uint32_t n, uint64_t total,
                                          uint32_t t0, uint32_t frame_records) {
  std::vector<agent::v1::RecordBatch> per_node(w.nodes.size());
  static const char* kAgents[] = {"okhttp/4.9.3", "Go-http-client/1.1", "python-requests/2.31.0",
                                  "grpc-java-netty/1.57.2"};
  for (uint32_t i = 0; i < n; ++i) {
    const uint64_t row = first_row + i;
    const auto& client = w.pods[rng.Below(static_cast<uint32_t>(w.pods.size()))];
    const auto& csvc = w.services[client.service];
    const auto& ssvc = w.services[csvc.callees[rng.Below(static_cast<uint32_t>(csvc.callees.size()))]];
    const auto& server = w.pods[ssvc.pods[rng.Below(static_cast<uint32_t>(ssvc.pods.size()))]];
    auto& m = *per_node[client.node].add_l7_request_logs();
    const uint32_t time = t0 + static_cast<uint32_t>(row * 3600 / total);
    const uint64_t duration = 200 + static_cast<uint64_t>(-std::log(1 - rng.Unit()) * 15000);
    m.set_time(time);
    m.set_end_time_us(uint64_t{time} * 1000000 + rng.Below(1000000));
    m.set_start_time_us(m.end_time_us() - duration);
    m.set_signal_source(common::v1::SIGNAL_SOURCE_EBPF);
    m.set_flow_id(row / 8);
    m.set_is_ipv4(1);
    m.set_ip4_0(client.ip);
    m.set_ip4_1(server.ip);
    m.set_client_port(32768 + rng.Below(28000));
    m.set_server_port(8080);
    m.set_protocol(6);
    m.set_l7_protocol(common::v1::L7_PROTOCOL_HTTP1);
    m.set_version("1.1");
    const uint32_t roll = rng.Below(1000);
    m.set_request_type(roll % 5 == 0 ? "POST" : "GET");
    m.set_request_domain(ssvc.name + "." + ssvc.ns + ".svc.cluster.local");
    const std::string& endpoint = ssvc.endpoints[rng.Below(static_cast<uint32_t>(ssvc.endpoints.size()))];
    m.set_endpoint(endpoint);
    m.set_request_resource(endpoint.substr(0, endpoint.size() - 4) + std::to_string(rng.Below(100000)));
    const int code = roll < 950 ? 200 : roll < 975 ? 404 : roll < 993 ? 500 : 503;
    m.set_response_code(code);
    m.set_response_status(code == 200   ? common::v1::RESPONSE_STATUS_OK
                          : code == 404 ? common::v1::RESPONSE_STATUS_CLIENT_ERROR
                                        : common::v1::RESPONSE_STATUS_SERVER_ERROR);
    m.set_response_duration(duration);
    m.set_request_length(roll % 5 == 0 ? 200 + rng.Below(2000) : 0);
    m.set_response_length(100 + rng.Below(8000));
    m.set_user_agent(kAgents[client.service % 4]);
    if (rng.Below(2) == 0) {
      m.set_trace_id(fmt::format("{:016x}{:016x}", rng.Next(), rng.Next()));
      m.set_span_id(fmt::format("{:016x}", rng.Next()));
    }
    m.set_req_tcp_seq(static_cast<uint32_t>(rng.Next()));
    m.set_resp_tcp_seq(static_cast<uint32_t>(rng.Next()));
    m.set_process_id_0(client.pid);
    m.set_process_kname_0(csvc.process);
    m.set_syscall_thread_0(client.pid + 7);
  }
  std::vector<AgentFrameBytes> out;
  for (uint32_t node = 0; node < per_node.size(); ++node) {
    auto& logs = *per_node[node].mutable_l7_request_logs();
    const int per_frame = frame_records == 0 ? logs.size() : static_cast<int>(frame_records);
    for (int at = 0; at < logs.size(); at += per_frame) {
      // What the agent sends: AgentFrame{batch} in an SND1 frame, zstd-compressed (its default).
      control::v1::AgentFrame frame;
      frame.mutable_batch()->set_batch_seq(first_row + static_cast<uint64_t>(at));
      auto* records = frame.mutable_batch()->mutable_records()->mutable_l7_request_logs();
      for (int i = at; i < std::min(logs.size(), at + per_frame); ++i) records->Add()->Swap(&logs[i]);
      out.push_back({node + 1, wire::EncodeFrame(frame.SerializeAsString(), true)});
    }
  }
  return out;
}

// Tags as strings, for the String and LowCardinality variants: the same matching (and per-batch
// side deduplication) as TaggingService, then the strings instead of ids.
class StringTagWriter {
 public:
  StringTagWriter(const enrich::ResourceModel* model, enrich::TagDictionary* dictionary, const World* world)
      : enricher_(model, dictionary, nullptr), world_(world) {}

  // Appends RowBinary rows of `table` (base columns + 24 tag strings) for every record.
  void Append(const storage::AgentBatch& batch, const schema::Table& base, std::string* out) {
    const auto& logs = batch.records.l7_request_logs();
    sides_.clear();
    slot_of_.clear();
    record_slots_.clear();
    for (const auto& m : logs) {
      for (int side = 0; side < 2; ++side) {
        enrich::SideKey k{net::IpAddress::V4(side == 0 ? m.ip4_0() : m.ip4_1()), m.time(),
                          side == 0 ? m.process_id_0() : m.process_id_1()};
        auto [it, inserted] = slot_of_.emplace(Key(k), static_cast<uint32_t>(sides_.size()));
        if (inserted) sides_.push_back(k);
        record_slots_.push_back(it->second);
      }
    }
    const std::string& host = world_->nodes[batch.agent_id - 1];
    auto tags = enricher_.MatchSides(host, sides_);
    storage::clickhouse::EncodeStats stats;
    for (int i = 0; i < logs.size(); ++i) {
      encoder_.AppendRow(base, logs[i], storage::clickhouse::ServerColumns{batch.agent_id, nullptr}, out, &stats)
          .IgnoreError();
      for (int side = 0; side < 2; ++side) {
        for (const std::string& v : tags[record_slots_[static_cast<size_t>(i) * 2 + side]].values) {
          uint64_t len = v.size();
          while (len >= 0x80) {
            out->push_back(static_cast<char>((len & 0x7f) | 0x80));
            len >>= 7;
          }
          out->push_back(static_cast<char>(len));
          out->append(v);
        }
      }
    }
  }

 private:
  static std::string Key(const enrich::SideKey& k) {
    std::string s(reinterpret_cast<const char*>(k.ip.bytes().data()), 16);
    s.append(reinterpret_cast<const char*>(&k.time_s), 4);
    s.append(reinterpret_cast<const char*>(&k.pid), 4);
    return s;
  }
  enrich::Enricher enricher_;
  const World* world_;
  storage::clickhouse::RowBinaryEncoder encoder_;
  std::vector<enrich::SideKey> sides_;
  std::unordered_map<std::string, uint32_t> slot_of_;
  std::vector<uint32_t> record_slots_;
};

struct Result {
  std::string variant;
  uint64_t rows = 0;
  double server_cpu_s = 0;
  double receive_cpu_s = 0;     // frame decode + zstd + ReadAgentFrame + Spool::Append (fsync)
  double spool_read_cpu_s = 0;  // Spool::ReadOldest + Spool::Remove
  double tag_cpu_s = 0;         // smart only: TaggingService::Tag alone, measured on a side copy
  double encode_cpu_s = 0;      // smart only: WireRowEncoder alone (ids given), on a side copy
  double new_receive_cpu_s = 0;      // smart only, sampled: decode + zstd + ReadAgentFrame
  double old_receive_cpu_s = 0;      // smart only, sampled: decode + zstd + AgentFrame parse + serialize
  double old_spool_parse_cpu_s = 0;  // smart only, sampled: RecordBatch parse (the old spool read)
  double zstd_cpu_s = 0;             // smart only, sampled: frame decode + zstd alone
  double read_frame_cpu_s = 0;       // smart only, sampled: ReadAgentFrame alone
  double sides_cpu_s = 0;            // smart only, sampled: ExtractSides alone (part of tagging)
  double tapped_encode_cpu_s = 0;    // smart only, sampled: WireRowEncoder reading the sides too (RowTaps)
  double tag_sides_cpu_s = 0;        // smart only, sampled: TaggingService::TagSides on those sides
  double clickhouse_insert_cpu_s = 0;
  double clickhouse_merge_cpu_s = 0;
  double wall_s = 0;
  uint64_t bytes_on_disk = 0;
  uint64_t tag_bytes = 0;   // tag columns of the data table
  uint64_t dict_bytes = 0;  // smart: the flow_tag database (dictionaries, tag sets)
  double query_min_ms = 0;
  double query_median_ms = 0;
  std::string query_answer;
};

uint64_t Scalar(const ClickHouseClient& c, const std::string& sql) {
  auto r = c.Query(sql);
  if (!r.ok() || r->rows.empty()) {
    std::fprintf(stderr, "query failed: %s: %s\n", sql.c_str(), r.ok() ? "no rows" : r.status().ToString().c_str());
    return 0;
  }
  const auto& v = r->rows[0][0];
  if (v.is_null()) return 0;
  return v.is_string() ? std::stoull(v.get<std::string>()) : v.get<uint64_t>();
}

// The first column of every row of a query.
std::vector<std::string> Rows(const ClickHouseClient& c, const std::string& sql) {
  std::vector<std::string> out;
  auto r = c.Query(sql);
  if (!r.ok()) return out;
  for (const auto& row : r->rows) {
    if (!row.empty() && row[0].is_string()) out.push_back(row[0].get<std::string>());
  }
  return out;
}

bool IsTagIdColumn(const schema::Column& c) { return c.server_side && c.name != "agent_id"; }

std::string NamesPredicate(const std::vector<std::string>& columns) {
  std::string names;
  for (const auto& c : columns) {
    if (!names.empty()) names += ", ";
    names += "'" + c + "'";
  }
  return "name IN (" + names + ")";
}

// The String / LowCardinality tag columns: one per user-facing dimension and side.
std::vector<std::string> StringTagColumns() {
  std::vector<std::string> out;
  for (int side = 0; side < 2; ++side) {
    for (const auto& d : enrich::AllTagDimensions()) out.push_back(fmt::format("{}_{}", d.name, side));
  }
  return out;
}

void Measure(const ClickHouseClient& c, pid_t ch_pid, const std::string& db, const std::string& table,
             const std::vector<std::string>& tag_columns, const std::string& query_sql, Result* r) {
  const double ch0 = ProcessCpuS(ch_pid);
  auto opt = c.Execute(fmt::format("OPTIMIZE TABLE {}.{} FINAL", db, table));
  if (!opt.ok()) std::fprintf(stderr, "optimize: %s\n", opt.status().ToString().c_str());
  r->clickhouse_merge_cpu_s = ProcessCpuS(ch_pid) - ch0;
  r->bytes_on_disk = Scalar(c, fmt::format("SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = "
                                           "'{}' AND table = '{}'",
                                           db, table));
  r->tag_bytes = Scalar(c, fmt::format("SELECT sum(data_compressed_bytes) FROM system.columns WHERE database = '{}' "
                                       "AND table = '{}' AND {}",
                                       db, table, NamesPredicate(tag_columns)));
  std::vector<double> ms;
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto q = c.Query(query_sql);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    if (!q.ok()) {
      std::fprintf(stderr, "service map query failed: %s\n%s\n", q.status().ToString().c_str(), query_sql.c_str());
      break;
    }
    if (i == 0) {
      r->query_answer = fmt::format("{} edges", q->rows.size());
      if (!q->rows.empty()) r->query_answer += ", first: " + q->rows[0].dump();
    }
  }
  std::sort(ms.begin(), ms.end());
  r->query_min_ms = ms.front();
  r->query_median_ms = ms[ms.size() / 2];
}

int Run(const Options& o) {
  // ClickHouse: a private supervised one unless --clickhouse-url.
  std::unique_ptr<storage::clickhouse::ClickHouseProcess> process;
  std::string url = o.clickhouse_url;
  std::string dir;
  if (url.empty()) {
    char tmpl[] = "/tmp/sonde-server-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return 1;
    dir = tmpl;
    storage::clickhouse::ClickHouseProcessOptions po;
    po.data_dir = dir;
    process = std::make_unique<storage::clickhouse::ClickHouseProcess>(po);
    if (Status s = process->Start(); !s.ok()) {
      std::fprintf(stderr, "cannot start ClickHouse: %s\n", s.ToString().c_str());
      return 1;
    }
    url = process->http_url();
  }
  const pid_t ch_pid = process ? process->pid() : -1;
  storage::clickhouse::ClickHouseClientOptions co;
  co.url = url;
  co.timeout = std::chrono::milliseconds(600000);
  ClickHouseClient client(co);
  auto version = client.Version();
  std::printf("ClickHouse %s at %s; %llu rows per variant in writes of %u; %u pods, %u services, %u endpoints, "
              "%u nodes\n",
              version.ok() ? version->c_str() : "?", url.c_str(), static_cast<unsigned long long>(o.rows), o.batch,
              o.pods, o.services, o.services * o.endpoints_per_service, o.nodes);

  metrics::Registry registry;
  World world = BuildWorld(o);
  const uint32_t t0 = 1700000000;  // 2023-11-14 22:13:20 UTC: one hour, one day partition
  const schema::Table* l7 = schema::FindTable("flow_log", "l7_request_log");
  // The String / LowCardinality tables: the same columns with the tag id columns replaced.
  std::vector<schema::Column> base_columns;
  for (const auto& c : l7->columns) {
    if (!IsTagIdColumn(c)) base_columns.push_back(c);
  }
  schema::Table base = *l7;
  base.columns = base_columns;

  // SmartEncoding: the production objects.
  storage::clickhouse::ClickHouseStorage smart_storage(&client, &registry);
  if (Status s = smart_storage.ApplySchema(); !s.ok()) {
    std::fprintf(stderr, "schema: %s\n", s.ToString().c_str());
    return 1;
  }
  enrich::ClickHouseTagStore tag_store(&client);
  enrich::TagDictionary dictionary(&tag_store, {}, &registry);
  const World* wp = &world;
  enrich::TaggingService tagging(
      world.model, &dictionary, &tag_store,
      [wp](uint32_t id) -> std::optional<enrich::AgentHost> {
        if (id == 0 || id > wp->nodes.size()) return std::nullopt;
        return enrich::AgentHost{wp->nodes[id - 1], {}};
      },
      {"prod-eu-west-1"}, &registry);
  smart_storage.SetTagger(&tagging);
  if (Status s = tagging.Maintain(); !s.ok()) {
    std::fprintf(stderr, "tagging: %s\n", s.ToString().c_str());
    return 1;
  }
  client.Execute("CREATE DATABASE IF NOT EXISTS bench").status().IgnoreError();
  const std::vector<std::string> string_tag_columns = StringTagColumns();
  for (const char* variant : {"string", "lowcard"}) {
    const std::string v = variant;
    std::string cols;
    for (const auto& c : base_columns) cols += fmt::format("`{}` {}, ", c.name, c.clickhouse_type);
    for (const auto& name : string_tag_columns) {
      cols += fmt::format("`{}` {}, ", name, v == "string" ? "String" : "LowCardinality(String)");
    }
    cols.resize(cols.size() - 2);
    client.Execute(fmt::format("DROP TABLE IF EXISTS bench.l7_{}", variant)).status().IgnoreError();
    Status s = client
                   .Execute(fmt::format("CREATE TABLE bench.l7_{} ({}) ENGINE = MergeTree PARTITION BY {} ORDER BY "
                                        "(l7_protocol, server_port, time)",
                                        variant, cols, l7->partition_by),
                            {{"allow_experimental_low_cardinality_type", "1"}})
                   .status();
    if (!s.ok()) {
      std::fprintf(stderr, "create bench.l7_%s: %s\n", variant, s.ToString().c_str());
      return 1;
    }
  }
  std::string string_column_list = storage::clickhouse::RowBinaryEncoder::ColumnList(base);
  for (const auto& name : string_tag_columns) string_column_list += fmt::format(", `{}`", name);
  StringTagWriter string_writer(&world.model, &dictionary, &world);
  const size_t tag_width = tagging.Columns().size();
  storage::clickhouse::WireRowEncoder side_wire_encoder;
  side_wire_encoder.SetTagColumns(tagging.Columns());
  storage::RecordBatchWire side_split;
  std::string side_rows;

  // The production spool, fsync on (its default), next to ClickHouse's data.
  const std::string spool_dir = (dir.empty() ? std::filesystem::temp_directory_path().string() : dir) +
                                "/sonde-bench-spool";
  auto spool = ingest::Spool::Open({spool_dir, uint64_t{1} << 34, o.spool_fsync}, &registry);
  if (!spool.ok()) {
    std::fprintf(stderr, "spool: %s\n", spool.status().ToString().c_str());
    return 1;
  }

  const std::string where = fmt::format("time >= {} AND time < {}", t0, t0 + 3600);
  const std::string map_sonde_sql = fmt::format(
      "SELECT service_0, service_1, count() AS requests, countIf(response_status = 'server_error') AS errors, "
      "percentile(response_duration, 99) AS p99_us FROM l7_request_log WHERE {} GROUP BY service_0, service_1 "
      "ORDER BY requests DESC",
      where);
  auto translated = query::Translate("flow_log", map_sonde_sql, query::Catalog::FromSchema());
  if (!translated.ok()) {
    std::fprintf(stderr, "translate: %s\n", translated.status().ToString().c_str());
    return 1;
  }

  std::vector<Result> results;
  std::stringstream variants(o.variants);
  ingest::AgentFrameView view;
  ingest::PayloadDecoder decoder;  // as each connection thread of the ingest server holds one
  for (std::string variant; std::getline(variants, variant, ',');) {
    if (variant != "smart" && variant != "string" && variant != "lowcard") {
      std::fprintf(stderr, "unknown variant %s\n", variant.c_str());
      return 2;
    }
    Result r;
    r.variant = variant;
    Rng rng(42);
    const double ch0 = ProcessCpuS(ch_pid);
    const auto wall0 = std::chrono::steady_clock::now();
    uint64_t next_progress = o.rows / 10;
    for (uint64_t row = 0; row < o.rows; row += o.batch) {
      const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(o.batch, o.rows - row));
      const auto frames = GenerateBatch(world, rng, row, n, o.rows, t0, o.frame_records);
      // Timed from here: what the server does per row, from the agents' frames to ClickHouse's
      // answer (minus the socket reads and the Ack writes).
      const double cpu0 = ThreadCpuS();
      Status s;
      for (const auto& f : frames) {
        const std::string_view bytes = f.frame;
        auto header = wire::DecodeHeader(
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), wire::kHeaderBytes));
        if (!header.ok()) {
          s = header.status();
          break;
        }
        auto payload = decoder.Decode(*header, bytes.substr(wire::kHeaderBytes));
        if (!payload.ok()) {
          s = payload.status();
          break;
        }
        if (!ingest::ReadAgentFrame(*payload, &view) || view.body != ingest::AgentFrameView::Body::kBatch) {
          s = InvalidArgumentError("bad agent frame");
          break;
        }
        auto seq = (*spool)->Append(f.agent_id, view.records);
        if (!seq.ok()) {
          s = seq.status();
          break;
        }
      }
      const double cpu1 = ThreadCpuS();
      r.receive_cpu_s += cpu1 - cpu0;
      std::vector<ingest::SpoolEntry> entries = (*spool)->ReadOldest(1u << 20, uint64_t{1} << 40);
      std::vector<storage::AgentBatch> batches;
      batches.reserve(entries.size());
      for (auto& e : entries) batches.push_back(std::move(e.batch));
      const double cpu2 = ThreadCpuS();
      r.spool_read_cpu_s += cpu2 - cpu1;
      if (!s.ok()) {
      } else if (variant == "smart") {
        storage::WriteProgress progress;
        s = smart_storage.Write(batches, &progress);
      } else {
        // These layouts need the records as messages: parsed here (counted in their CPU).
        std::string rows;
        for (auto& b : batches) {
          b.records.ParseFromString(b.wire);
          string_writer.Append(b, base, &rows);
        }
        s = client.InsertRowBinary("bench", "l7_" + variant, string_column_list, rows);
      }
      const double cpu3 = ThreadCpuS();
      std::vector<uint64_t> seqs;
      for (const auto& e : entries) seqs.push_back(e.seq);
      (*spool)->Remove(seqs);
      r.spool_read_cpu_s += ThreadCpuS() - cpu3;
      r.server_cpu_s += ThreadCpuS() - cpu0;
      if (variant == "smart" && o.breakdown && row % (o.batch * 10) == 0) {
        // Breakdown on every 10th write (not part of server_cpu_s): tagging alone, encoding alone.
        const double t0_cpu = ThreadCpuS();
        std::vector<uint32_t> ids;
        for (const auto& b : batches) tagging.Tag(b, &ids).IgnoreError();
        const double t1_cpu = ThreadCpuS();
        std::string& rows = side_rows;  // capacity reused, as ClickHouseStorage does
        rows.clear();
        storage::clickhouse::EncodeStats stats;
        size_t k = 0;
        const auto* d = agent::v1::L7RequestLog::descriptor();
        for (const auto& b : batches) {
          if (!storage::SplitRecordBatch(b.wire, &side_split)) continue;
          for (std::string_view m : side_split.records[storage::kL7RequestLogs]) {
            const uint32_t* tags = k * tag_width < ids.size() ? ids.data() + k * tag_width : nullptr;
            ++k;
            side_wire_encoder.AppendRow(*l7, d, m, {b.agent_id, tags}, &rows, &stats).IgnoreError();
          }
        }
        r.tag_cpu_s += (t1_cpu - t0_cpu) * 10;
        r.encode_cpu_s += (ThreadCpuS() - t1_cpu) * 10;
        // For comparison, what the steps this path replaced cost on the same bytes: the full
        // AgentFrame parse + re-serialization at receive, the full RecordBatch parse at spool read.
        const double t2_cpu = ThreadCpuS();
        for (const auto& f : frames) {
          const std::string_view bytes = f.frame;
          auto header = wire::DecodeHeader(
              std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), wire::kHeaderBytes));
          auto payload = wire::DecodePayload(*header, bytes.substr(wire::kHeaderBytes));
          control::v1::AgentFrame parsed;
          parsed.ParseFromString(*payload);
          std::string reserialized;
          parsed.batch().records().SerializeToString(&reserialized);
        }
        const double t3_cpu = ThreadCpuS();
        for (const auto& b : batches) {
          agent::v1::RecordBatch parsed;
          parsed.ParseFromString(b.wire);
        }
        r.old_receive_cpu_s += (t3_cpu - t2_cpu) * 10;
        r.old_spool_parse_cpu_s += (ThreadCpuS() - t3_cpu) * 10;
        // The new receive step alone on the same frames, for a like-for-like ratio, and its parts.
        const double t4_cpu = ThreadCpuS();
        std::vector<std::string> payloads;
        double copy_cpu_s = 0;  // keeping each payload for the next step is not part of the receive path
        for (const auto& f : frames) {
          const std::string_view bytes = f.frame;
          auto header = wire::DecodeHeader(
              std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), wire::kHeaderBytes));
          auto payload = decoder.Decode(*header, bytes.substr(wire::kHeaderBytes));
          const double c0 = ThreadCpuS();
          payloads.emplace_back(*payload);
          copy_cpu_s += ThreadCpuS() - c0;
        }
        const double t5_cpu = ThreadCpuS();
        for (const auto& payload : payloads) ingest::ReadAgentFrame(payload, &view);
        const double t6_cpu = ThreadCpuS();
        std::vector<storage::RecordSide> sides;
        for (const auto& b : batches) {
          sides.clear();  // per batch, as the tagger does
          storage::ExtractSides(b, &sides).IgnoreError();
        }
        const double t7_cpu = ThreadCpuS();
        // The write path as ClickHouseStorage runs it now: sides read in the encoding pass (RowTaps),
        // then TagSides on them (no ExtractSides pass), ids written into the rows afterwards.
        const double t8_cpu = ThreadCpuS();
        rows.clear();
        std::vector<std::vector<storage::RecordSide>> batch_sides(batches.size());
        std::vector<size_t> offsets(tag_width);
        for (size_t bi = 0; bi < batches.size(); ++bi) {
          const auto& b = batches[bi];
          if (!storage::SplitRecordBatch(b.wire, &side_split)) continue;
          auto& bs = batch_sides[bi];
          bs.resize(side_split.records[storage::kL7RequestLogs].size() * 2);
          size_t i = 0;
          for (std::string_view m : side_split.records[storage::kL7RequestLogs]) {
            side_wire_encoder
                .AppendRow(*l7, d, m, {b.agent_id, nullptr}, &rows, &stats, {bs.data() + 2 * i, offsets.data()})
                .IgnoreError();
            ++i;
          }
        }
        const double t9_cpu = ThreadCpuS();
        for (size_t bi = 0; bi < batches.size(); ++bi) {
          ids.clear();
          tagging.TagSides(batches[bi], batch_sides[bi], &ids).IgnoreError();
        }
        r.tapped_encode_cpu_s += (t9_cpu - t8_cpu) * 10;
        r.tag_sides_cpu_s += (ThreadCpuS() - t9_cpu) * 10;
        r.new_receive_cpu_s += (t6_cpu - t4_cpu - copy_cpu_s) * 10;
        r.zstd_cpu_s += (t5_cpu - t4_cpu - copy_cpu_s) * 10;
        r.read_frame_cpu_s += (t6_cpu - t5_cpu) * 10;
        r.sides_cpu_s += (t7_cpu - t6_cpu) * 10;
      }
      if (!s.ok()) {
        std::fprintf(stderr, "%s: write failed: %s\n", variant.c_str(), s.ToString().c_str());
        return 1;
      }
      r.rows += n;
      if (r.rows >= next_progress) {
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
        std::printf("  %-8s %5.1f%%  %llu rows  %.0f s  server %.0f ns/row\n", variant.c_str(),
                    100.0 * static_cast<double>(r.rows) / static_cast<double>(o.rows),
                    static_cast<unsigned long long>(r.rows), wall, 1e9 * r.server_cpu_s / static_cast<double>(r.rows));
        std::fflush(stdout);
        next_progress += o.rows / 10;
      }
    }
    r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    r.clickhouse_insert_cpu_s = ProcessCpuS(ch_pid) - ch0;
    if (variant == "smart") {
      Measure(client, ch_pid, "flow_log", "l7_request_log", tagging.Columns(), translated->sql, &r);
      // The dictionaries and tag sets the ids point to are part of what SmartEncoding stores.
      for (const auto& t : Rows(client, "SELECT name FROM system.tables WHERE database = 'flow_tag'")) {
        client.Execute(fmt::format("OPTIMIZE TABLE flow_tag.`{}` FINAL", t)).status().IgnoreError();
      }
      r.dict_bytes = Scalar(client, "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = "
                                    "'flow_tag'");
    } else {
      std::string sql = fmt::format(
          "SELECT service_0, service_1, count() AS requests, countIf(response_status = 'server_error') AS errors, "
          "quantile(0.99)(response_duration) AS p99_us FROM bench.l7_{} WHERE {} GROUP BY service_0, service_1 "
          "ORDER BY requests DESC",
          variant, where);
      Measure(client, ch_pid, "bench", "l7_" + variant, string_tag_columns, sql, &r);
    }
    results.push_back(r);
  }

  std::printf("\n%-8s %10s %12s %12s %12s %11s %11s %10s %10s %10s %11s\n", "variant", "rows", "server ns/row",
              "rows/s/core", "CH ins ns/row", "CH merge", "bytes/row", "tag B/row", "dict B/row", "map min ms",
              "map med ms");
  // tag B/row: the data table's tag columns plus, for smart, its dictionaries (dict B/row).
  auto tag_total = [](const Result& r) { return static_cast<double>(r.tag_bytes + r.dict_bytes); };
  for (const auto& r : results) {
    const double rows = static_cast<double>(r.rows);
    std::printf("%-8s %10llu %12.0f %12.0f %12.0f %9.1f s %11.2f %10.2f %10.2f %10.0f %11.0f\n", r.variant.c_str(),
                static_cast<unsigned long long>(r.rows), 1e9 * r.server_cpu_s / rows, rows / r.server_cpu_s,
                1e9 * r.clickhouse_insert_cpu_s / rows, r.clickhouse_merge_cpu_s,
                static_cast<double>(r.bytes_on_disk + r.dict_bytes) / rows, tag_total(r) / rows,
                static_cast<double>(r.dict_bytes) / rows, r.query_min_ms, r.query_median_ms);
  }
  const Result* smart = nullptr;
  for (const auto& r : results) {
    if (r.variant == "smart") smart = &r;
  }
  if (smart != nullptr) {
    for (const auto& r : results) {
      if (&r == smart) continue;
      std::printf("smart vs %-8s: tag columns %.1fx fewer bytes, whole row %.2fx fewer bytes, server CPU %.2fx\n",
                  r.variant.c_str(), tag_total(r) / tag_total(*smart),
                  static_cast<double>(r.bytes_on_disk + r.dict_bytes) /
                      static_cast<double>(smart->bytes_on_disk + smart->dict_bytes),
                  smart->server_cpu_s / r.server_cpu_s);
    }
  }
  for (const auto& r : results) {
    const double rows = static_cast<double>(r.rows);
    std::printf("%s server CPU breakdown: receive+spool append %.0f ns/row, spool read+remove %.0f ns/row, "
                "write %.0f ns/row",
                r.variant.c_str(), 1e9 * r.receive_cpu_s / rows, 1e9 * r.spool_read_cpu_s / rows,
                1e9 * (r.server_cpu_s - r.receive_cpu_s - r.spool_read_cpu_s) / rows);
    if (r.variant == "smart" && o.breakdown) {
      std::printf(" (of which tagging ~%.0f ns/row, encoding ~%.0f ns/row, sampled)", 1e9 * r.tag_cpu_s / rows,
                  1e9 * r.encode_cpu_s / rows);
      std::printf("\nsmart, sampled: frame decode + zstd + ReadAgentFrame ~%.0f ns/row; the full-parse steps it "
                  "replaced: AgentFrame parse + re-serialize ~%.0f ns/row, RecordBatch parse at spool read ~%.0f "
                  "ns/row",
                  1e9 * r.new_receive_cpu_s / rows, 1e9 * r.old_receive_cpu_s / rows,
                  1e9 * r.old_spool_parse_cpu_s / rows);
      std::printf("\nsmart, sampled parts: frame decode + zstd ~%.0f ns/row, ReadAgentFrame ~%.0f ns/row, "
                  "ExtractSides (in tagging) ~%.0f ns/row",
                  1e9 * r.zstd_cpu_s / rows, 1e9 * r.read_frame_cpu_s / rows, 1e9 * r.sides_cpu_s / rows);
      std::printf("\nsmart, sampled, as ClickHouseStorage::Write runs them: encoding + sides in one pass ~%.0f "
                  "ns/row, tag sets from those sides (TagSides) ~%.0f ns/row",
                  1e9 * r.tapped_encode_cpu_s / rows, 1e9 * r.tag_sides_cpu_s / rows);
    }
    std::printf("\n");
  }
  for (const auto& r : results) std::printf("service map (%s): %s\n", r.variant.c_str(), r.query_answer.c_str());
  std::printf("service map SQL (smart, translated from Sonde SQL):\n%s\n", translated->sql.c_str());
  if (process) {
    process->Stop();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--rows") o.rows = std::stoull(v);
    else if (a == "--batch") o.batch = static_cast<uint32_t>(std::stoul(v));
    else if (a == "--pods") o.pods = static_cast<uint32_t>(std::stoul(v));
    else if (a == "--services") o.services = static_cast<uint32_t>(std::stoul(v));
    else if (a == "--endpoints-per-service") o.endpoints_per_service = static_cast<uint32_t>(std::stoul(v));
    else if (a == "--nodes") o.nodes = static_cast<uint32_t>(std::stoul(v));
    else if (a == "--variants") o.variants = v;
    else if (a == "--clickhouse-url") o.clickhouse_url = v;
    else if (a == "--spool-fsync") o.spool_fsync = v != "0";
    else if (a == "--frame-records") o.frame_records = static_cast<uint32_t>(std::stoul(v));
    else if (a == "--breakdown") o.breakdown = v != "0";
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (o.rows == 0 || o.batch == 0 || o.pods < o.services || o.services == 0 || o.nodes == 0) {
    std::fprintf(stderr, "need rows, batch, services, nodes > 0 and pods >= services\n");
    return 2;
  }
  return Run(o);
}
