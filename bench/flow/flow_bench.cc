// Flow-tracking throughput on a capture held in memory (so disk speed does not count), printed as
// packets per second per core, plus the memory cost of one million concurrent flows.
// Usage: sonde_flow_bench FILE.pcap [--streams] [--memory-flows N]
#include <pcap/pcap.h>
#include <sys/resource.h>
#include <time.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "agent/capture/pcap/pcap_file_source.h"
#include "agent/flow/flow_tracker.h"

namespace {

using sonde::agent::capture::LinkType;
using sonde::agent::capture::PacketView;
namespace flow = sonde::agent::flow;
namespace v1 = sonde::agent::v1;

class CountingSink : public sonde::agent::exporting::RecordSink {
 public:
  void Emit(v1::L7RequestLog&&) override {}
  void Emit(v1::L4FlowLog&&) override { ++flow_logs; }
  void Emit(v1::NetworkMetric&&) override { ++metrics; }
  void Emit(v1::ApplicationMetric&&) override {}
  void Emit(v1::ProcessInfo&&) override {}
  uint64_t flow_logs = 0, metrics = 0;
};

class CountingHandler : public flow::StreamHandler {
 public:
  void OnData(const flow::ConnectionInfo&, flow::StreamDirection, const flow::StreamChunk& c) override {
    bytes += c.data.size();
  }
  void OnClose(const flow::ConnectionInfo&, uint64_t) override {}
  void OnTick(uint64_t) override {}
  sonde::common::v1::L7Protocol ProtocolOf(uint64_t) const override {
    return sonde::common::v1::L7_PROTOCOL_UNKNOWN;
  }
  uint64_t bytes = 0;
};

struct Packet {
  uint64_t ts_ns;
  uint32_t offset, length;
};

double CpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + t.tv_nsec / 1e9;
}

long RssKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

int RunMemory(uint64_t n) {
  CountingSink sink;
  flow::FlowTrackerConfig cfg;
  cfg.max_flows = n + 1;
  cfg.emit_network_metrics = false;
  cfg.tcp_syn_timeout_ns = 3600ull * 1'000'000'000ull;
  long before = RssKb();
  {
    flow::FlowTracker tracker(cfg, &sink, nullptr, nullptr);
    uint8_t pkt[54] = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6};
    pkt[46] = 0x50;  // TCP data offset
    pkt[47] = 0x02;  // SYN
    for (uint64_t i = 0; i < n; ++i) {
      uint32_t src = 0x0A000000u | static_cast<uint32_t>(i >> 8);
      uint32_t dst = 0xC0A80001u;
      for (int b = 0; b < 4; ++b) {
        pkt[26 + b] = static_cast<uint8_t>(src >> (24 - 8 * b));
        pkt[30 + b] = static_cast<uint8_t>(dst >> (24 - 8 * b));
      }
      uint16_t sport = static_cast<uint16_t>(1024 + (i & 0xFF));
      pkt[34] = static_cast<uint8_t>(sport >> 8);
      pkt[35] = static_cast<uint8_t>(sport);
      pkt[36] = 0;
      pkt[37] = 80;
      PacketView v;
      v.timestamp_ns = 1'000'000'000ull + i;
      v.data = std::span<const uint8_t>(pkt, sizeof(pkt));
      v.wire_length = sizeof(pkt);
      tracker.OnPacket(v);
    }
    long after = RssKb();
    std::printf("memory: %zu concurrent flows, RSS +%.1f MiB (%.0f bytes/flow; table %.0f bytes/flow), dropped %lu\n",
                tracker.active_flows(), (after - before) / 1024.0,
                (after - before) * 1024.0 / static_cast<double>(tracker.active_flows()),
                static_cast<double>(tracker.table_memory_bytes()) / static_cast<double>(tracker.active_flows()),
                static_cast<unsigned long>(tracker.dropped_flows()));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE.pcap [--streams] [--memory-flows N]\n", argv[0]);
    return 2;
  }
  bool streams = false;
  uint64_t memory_flows = 0;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--streams") == 0) streams = true;
    if (std::strcmp(argv[i], "--memory-flows") == 0 && i + 1 < argc) memory_flows = std::strtoull(argv[++i], nullptr, 10);
  }
  if (memory_flows) return RunMemory(memory_flows);

  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline_with_tstamp_precision(argv[1], PCAP_TSTAMP_PRECISION_NANO, err);
  if (p == nullptr) {
    std::fprintf(stderr, "%s\n", err);
    return 1;
  }
  LinkType link;
  if (!sonde::agent::capture::LinkTypeFromDlt(pcap_datalink(p), &link)) return 1;
  std::vector<uint8_t> bytes;
  std::vector<Packet> packets;
  pcap_pkthdr* h;
  const u_char* d;
  while (pcap_next_ex(p, &h, &d) == 1) {
    packets.push_back({static_cast<uint64_t>(h->ts.tv_sec) * 1'000'000'000ull + h->ts.tv_usec,
                       static_cast<uint32_t>(bytes.size()), h->caplen});
    bytes.insert(bytes.end(), d, d + h->caplen);
  }
  pcap_close(p);

  CountingSink sink;
  CountingHandler handler;
  flow::FlowTrackerConfig cfg;
  flow::FlowTracker tracker(cfg, &sink, streams ? &handler : nullptr, nullptr);
  uint64_t wire_bytes = 0;
  for (const Packet& pk : packets) wire_bytes += pk.length;
  double cpu0 = CpuSeconds();
  for (const Packet& pk : packets) {
    PacketView v;
    v.timestamp_ns = pk.ts_ns;
    v.data = std::span<const uint8_t>(bytes.data() + pk.offset, pk.length);
    v.wire_length = pk.length;
    v.link_type = link;
    tracker.OnPacket(v);
  }
  tracker.FlushAll(0);
  double cpu = CpuSeconds() - cpu0;
  std::printf("sonde FlowTracker%s: %zu packets in %.3f s CPU = %.0f packets/s = %.2f Gbit/s per core; %lu flow logs, %lu metric rows%s\n",
              streams ? " (+stream reassembly)" : "", packets.size(), cpu, packets.size() / cpu,
              wire_bytes * 8.0 / cpu / 1e9,
              static_cast<unsigned long>(sink.flow_logs), static_cast<unsigned long>(sink.metrics),
              streams ? (", " + std::to_string(handler.bytes) + " stream bytes").c_str() : "");
  return 0;
}
