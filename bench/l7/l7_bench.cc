// L7 throughput on one capture, in L7 request records per second per core (CPU time of this
// single thread): (1) L7 parsing alone: the capture's reassembled streams are recorded in memory
// first, then replayed into a fresh L7Analyzer; (2) the whole agent pipeline, as
// `sonde-agent --pcap` runs it (PcapFileSource -> FlowTracker -> L7Analyzer), file read included.
// Prints "key value" lines for bench/l7/run.sh.
// --digest: also prints, per record type, the count, an order-sensitive digest of every record
// the pipeline emitted and an order-insensitive one of the same records (to check that an
// optimisation leaves the output byte-identical; the hashing is not part of the timed work of
// the runs without it).
// Usage: sonde_l7_bench FILE.pcap [--repeat N] [--l7-only | --pipeline-only] [--digest]
#include <time.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "agent/capture/clocked_sink.h"
#include "agent/capture/pcap/pcap_file_source.h"
#include "agent/flow/flow_tracker.h"
#include "agent/protocols/common/l7_analyzer.h"
#include "agent/protocols/common/registry.h"

namespace {

namespace flow = sonde::agent::flow;
namespace protocols = sonde::agent::protocols;
namespace v1 = sonde::agent::v1;
using sonde::common::v1::L7Protocol;

// FNV-1a digests of serialized records: `hash` depends on their order, `set_hash` (the sum of
// each record's own digest) only on which records there are, so a change that only reorders
// records (e.g. the ones a final flush emits) shows as the same set in another order.
struct Digest {
  uint64_t count = 0;
  uint64_t hash = 0xcbf29ce484222325ULL;
  uint64_t set_hash = 0;
  void Add(const google::protobuf::MessageLite& m) {
    ++count;
    uint64_t own = 0xcbf29ce484222325ULL;
    for (unsigned char ch : m.SerializeAsString()) {
      hash = (hash ^ ch) * 0x100000001b3ULL;
      own = (own ^ ch) * 0x100000001b3ULL;
    }
    hash = (hash ^ 0xff) * 0x100000001b3ULL;  // record separator
    set_hash += own;
  }
};

class CountingSink final : public sonde::agent::exporting::RecordSink {
 public:
  explicit CountingSink(bool digest = false) : digest_(digest) {}
  void Emit(v1::L7RequestLog&& r) override {
    ++records;
    ++by_protocol[r.l7_protocol()];
    if (digest_) l7.Add(r);
  }
  void Emit(v1::L4FlowLog&& r) override {
    if (digest_) l4.Add(r);
  }
  void Emit(v1::NetworkMetric&& r) override {
    if (digest_) network.Add(r);
  }
  void Emit(v1::ApplicationMetric&& r) override {
    if (digest_) application.Add(r);
  }
  void Emit(v1::ProcessInfo&&) override {}
  uint64_t records = 0;
  std::map<L7Protocol, uint64_t> by_protocol;
  Digest l7, l4, network, application;

 private:
  bool digest_ = false;
};

// Records what flow tracking hands to the protocol layer, to replay it without flow tracking.
class RecordingHandler final : public flow::StreamHandler {
 public:
  struct Event {
    enum class Kind : uint8_t { kData, kClose, kTick } kind;
    flow::StreamDirection dir;
    uint32_t conn;  // index into conns
    flow::StreamChunk chunk;  // data points into `bytes` after Finish()
    size_t offset = 0;
    uint64_t ts_ns = 0;
  };
  void OnData(const flow::ConnectionInfo& c, flow::StreamDirection dir,
              const flow::StreamChunk& chunk) override {
    Event e{Event::Kind::kData, dir, Index(c), chunk, bytes.size(), chunk.timestamp_ns};
    bytes.append(reinterpret_cast<const char*>(chunk.data.data()), chunk.data.size());
    events.push_back(e);
  }
  void OnClose(const flow::ConnectionInfo& c, uint64_t ts) override {
    events.push_back({Event::Kind::kClose, flow::StreamDirection::kRequest, Index(c), {}, 0, ts});
  }
  void OnTick(uint64_t ts) override {
    events.push_back({Event::Kind::kTick, flow::StreamDirection::kRequest, 0, {}, 0, ts});
  }
  L7Protocol ProtocolOf(uint64_t) const override { return L7Protocol::L7_PROTOCOL_UNKNOWN; }
  void Finish() {
    for (Event& e : events) {
      if (e.kind == Event::Kind::kData) {
        e.chunk.data = {reinterpret_cast<const uint8_t*>(bytes.data()) + e.offset, e.chunk.data.size()};
      }
    }
  }
  uint32_t Index(const flow::ConnectionInfo& c) {
    auto [it, added] = index.try_emplace(c.flow_id, static_cast<uint32_t>(conns.size()));
    if (added) conns.push_back(c);
    return it->second;
  }
  std::vector<Event> events;
  std::vector<flow::ConnectionInfo> conns;
  std::map<uint64_t, uint32_t> index;
  std::string bytes;
};

double CpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

protocols::L7AnalyzerOptions Options() {
  protocols::L7AnalyzerOptions o;  // sonde-agent's defaults, RED metrics included
  return o;
}

// The whole agent pipeline over the file (pcap source -> flow tracker -> L7 analyzer) into
// `sink`, as sonde-agent --pcap runs it. Packets read, or -1 when the file cannot be read.
int64_t RunPipeline(const std::string& path, CountingSink& sink) {
  std::atomic<bool> stop{false};
  protocols::L7Analyzer analyzer(&sink, nullptr, Options());
  flow::FlowTracker tracker({}, &sink, &analyzer, nullptr);
  sonde::agent::capture::ClockedSink clocked(&tracker);
  sonde::agent::capture::PcapFileSource source(path);
  if (!source.Run(clocked, stop).ok()) return -1;
  tracker.FlushAll(clocked.last_ns());
  analyzer.FlushAll(clocked.last_ns());
  return static_cast<int64_t>(clocked.packets());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE.pcap [--repeat N]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  int repeat = 3;
  bool l7_only = false;  // skip the whole-pipeline runs (for profiling the protocol layer)
  bool pipeline_only = false;  // skip recording and L7-only runs (for profiling the pipeline)
  bool digest = false;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) repeat = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--l7-only") == 0) l7_only = true;
    if (std::strcmp(argv[i], "--pipeline-only") == 0) pipeline_only = true;
    if (std::strcmp(argv[i], "--digest") == 0) digest = true;
  }
  std::atomic<bool> stop{false};

  // Streams as flow tracking delivers them, recorded once.
  RecordingHandler rec;
  if (!pipeline_only) {
    CountingSink none;
    flow::FlowTracker tracker({}, &none, &rec, nullptr);
    sonde::agent::capture::ClockedSink clocked(&tracker);
    sonde::agent::capture::PcapFileSource source(path);
    auto s = source.Run(clocked, stop);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    tracker.FlushAll(clocked.last_ns());
    rec.Finish();
    std::printf("packets %llu\nstream_events %zu\nstream_bytes %zu\nconnections %zu\n",
                static_cast<unsigned long long>(clocked.packets()), rec.events.size(),
                rec.bytes.size(), rec.conns.size());
  }

  // (1) L7 parsing alone: best of `repeat` runs.
  double best = 1e99;
  CountingSink l7_sink;
  for (int r = 0; r < (pipeline_only ? 0 : repeat); ++r) {
    CountingSink sink;
    protocols::L7Analyzer analyzer(&sink, nullptr, Options());
    uint64_t last = 0;
    const double t0 = CpuSeconds();
    for (const auto& e : rec.events) {
      switch (e.kind) {
        case RecordingHandler::Event::Kind::kData:
          analyzer.OnData(rec.conns[e.conn], e.dir, e.chunk);
          break;
        case RecordingHandler::Event::Kind::kClose:
          analyzer.OnClose(rec.conns[e.conn], e.ts_ns);
          break;
        case RecordingHandler::Event::Kind::kTick:
          analyzer.OnTick(e.ts_ns);
          break;
      }
      last = e.ts_ns;
    }
    analyzer.FlushAll(last);
    const double t = CpuSeconds() - t0;
    if (t < best) best = t;
    l7_sink = sink;
  }
  std::printf("records %llu\n", static_cast<unsigned long long>(l7_sink.records));
  for (const auto& [p, n] : l7_sink.by_protocol) {
    std::printf("records_%s %llu\n", std::string(protocols::ProtocolName(p)).c_str(),
                static_cast<unsigned long long>(n));
  }
  std::printf("l7_only_cpu_s %.4f\nl7_only_records_per_s %.0f\n", best,
              best > 0 ? static_cast<double>(l7_sink.records) / best : 0.0);

  if (digest) {  // one untimed whole-pipeline run that hashes everything emitted
    CountingSink sink(true);
    if (RunPipeline(path, sink) < 0) return 1;
    const std::pair<const char*, const Digest*> kinds[] = {
        {"l7", &sink.l7}, {"l4", &sink.l4}, {"network", &sink.network}, {"application", &sink.application}};
    for (const auto& [name, d] : kinds) {
      std::printf("digest_%s %llu %016llx set %016llx\n", name,
                  static_cast<unsigned long long>(d->count), static_cast<unsigned long long>(d->hash),
                  static_cast<unsigned long long>(d->set_hash));
    }
  }
  if (l7_only) return 0;
  // (2) Whole pipeline from the file: best of `repeat` runs.
  best = 1e99;
  uint64_t records = 0, packets = 0;
  for (int r = 0; r < repeat; ++r) {
    CountingSink sink;
    const double t0 = CpuSeconds();
    const int64_t read = RunPipeline(path, sink);
    const double t = CpuSeconds() - t0;
    if (read < 0) return 1;
    if (t < best) best = t;
    records = sink.records;
    packets = static_cast<uint64_t>(read);
  }
  std::printf("pipeline_records %llu\npipeline_cpu_s %.4f\npipeline_records_per_s %.0f\n"
              "pipeline_packets_per_s %.0f\n",
              static_cast<unsigned long long>(records), best,
              best > 0 ? static_cast<double>(records) / best : 0.0,
              best > 0 ? static_cast<double>(packets) / best : 0.0);
  return 0;
}
