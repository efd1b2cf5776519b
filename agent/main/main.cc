// sonde-agent: parses flags and wires capture -> flow -> protocols -> export. Nothing else.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include <httplib.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "agent/capture/afpacket/afpacket_source.h"
#include "agent/capture/clocked_sink.h"
#include "agent/capture/ebpf/ebpf_source.h"
#include "agent/capture/ebpf/socket_tracker.h"
#include "agent/capture/pcap/pcap_file_source.h"
#include "agent/export/jsonl_writer.h"
#include "agent/export/server_exporter.h"
#include "agent/flow/flow_tracker.h"
#include "agent/main/agent_options.h"
#include "agent/main/host_info.h"
#include "agent/main/process_reporter.h"
#include "agent/metadata/process_cache.h"
#include "agent/protocols/common/l7_analyzer.h"
#include "agent/tracing/syscall_trace_id.h"
#include "common/log/log.h"
#include "common/metrics/registry.h"

namespace sonde::agent {
namespace {

std::atomic<bool> g_stop{false};  // set by SIGINT/SIGTERM only

void OnSignal(int) { g_stop.store(true); }

uint64_t WallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

protocols::L7AnalyzerOptions L7Options(const AgentOptions& opts) {
  protocols::L7AnalyzerOptions l7;
  l7.parser.request_timeout_ns = uint64_t{opts.l7_timeout_ms} * 1'000'000;
  return l7;
}

// One packet pipeline: source -> flow tracker -> L7 analyzer -> sink, run on the calling thread.
Status RunPacketPipeline(capture::EventSource& source, const AgentOptions& opts,
                         exporting::RecordSink* sink, metrics::Registry* registry,
                         uint16_t worker_id) {
  protocols::L7Analyzer analyzer(sink, registry, L7Options(opts));
  flow::FlowTrackerConfig fc;
  fc.max_flows = opts.max_flows;
  fc.worker_id = worker_id;
  flow::FlowTracker tracker(fc, sink, &analyzer, registry);
  capture::ClockedSink clocked(&tracker);
  Status s = source.Run(clocked, g_stop);
  uint64_t end_ns = clocked.last_ns() ? clocked.last_ns() : WallNs();
  tracker.FlushAll(end_ns);
  analyzer.FlushAll(end_ns);
  auto st = source.stats();
  spdlog::info("{}: {} events, {} bytes, {} dropped, {} malformed", source.name(), st.events,
               st.bytes, st.dropped, st.malformed);
  return s;
}

// The eBPF pipeline: socket events -> per-socket tracker -> L7 analyzer -> sink.
Status RunEbpfPipeline(capture::EbpfSource& source, const AgentOptions& opts,
                       exporting::RecordSink* sink, metrics::Registry* registry) {
  // eBPF records name their processes: report those to the server for process tagging.
  ProcessReporter processes_out(sink);
  exporting::RecordSink* out = opts.output == "server" ? &processes_out : sink;
  protocols::L7Analyzer analyzer(out, registry, L7Options(opts));
  metadata::ProcessCache processes;
  tracing::SyscallTraceIds trace_ids({}, WallNs() ^ (uint64_t{static_cast<uint32_t>(getpid())} << 32));
  capture::SocketTracker tracker(analyzer, &processes, &trace_ids, registry);
  // Connections no protocol was recognised on stop being captured in the kernel.
  tracker.SetIgnoreHook([&source](uint32_t pid, int32_t fd, uint64_t generation) {
    if (Status st = source.IgnoreConnection(pid, fd, generation); !st.ok()) {
      SONDE_LOG_EVERY(warn, "ebpf: cannot ignore connection: {}", st.ToString());
    }
  });
  Status s = source.Run(tracker, g_stop);
  uint64_t end_ns = WallNs();
  tracker.CloseAll(end_ns);
  analyzer.FlushAll(end_ns);
  return s;
}

// Live mode: eBPF (when available and wanted) and AF_PACKET side by side, each on its own thread
// with its own flow/protocol state; both feed the one thread-safe sink.
Status RunLive(const AgentOptions& opts, exporting::RecordSink* sink, metrics::Registry* registry) {
  std::unique_ptr<capture::EbpfSource> ebpf;
  if (opts.ebpf != "off") {
    capture::EbpfSourceConfig ec;
    ec.metrics = registry;
    auto created = capture::EbpfSource::Create(ec);
    if (created.ok()) {
      ebpf = std::move(created).value();
      spdlog::info("eBPF socket tracing active");
    } else if (opts.ebpf == "on") {
      return created.status();
    } else {
      spdlog::warn("{}; falling back to packet capture only", created.status().message());
    }
  }
  Status ebpf_status;
  std::thread ebpf_thread;
  if (ebpf) {
    ebpf_thread = std::thread([&] { ebpf_status = RunEbpfPipeline(*ebpf, opts, sink, registry); });
  }
  capture::AfPacketConfig ac;
  ac.interfaces = opts.interfaces;
  ac.netns = opts.netns;
  ac.bpf_filter = opts.filter;
  capture::AfPacketSource packets(ac);
  spdlog::info("capturing packets on interfaces '{}'", opts.interfaces);
  Status packet_status;
  std::thread packet_thread([&] {
    packet_status = RunPacketPipeline(packets, opts, sink, registry, 1);
    if (!packet_status.ok()) spdlog::error("packet capture stopped: {}", packet_status.ToString());
  });
  packet_thread.join();
  if (ebpf_thread.joinable()) ebpf_thread.join();
  if (!packet_status.ok() && (!ebpf || !ebpf_status.ok())) return packet_status;
  return ebpf_status;
}

class MetricsEndpoint {
 public:
  MetricsEndpoint(const std::string& listen, metrics::Registry* registry) {
    auto colon = listen.rfind(':');
    host_ = listen.substr(0, colon);
    port_ = std::stoi(listen.substr(colon + 1));
    server_.Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
      res.set_content(registry->RenderPrometheus(), "text/plain; version=0.0.4");
    });
    if (!server_.bind_to_port(host_.c_str(), port_)) {
      spdlog::warn("cannot listen on {} for /metrics; self-metrics not served", listen);
      return;
    }
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~MetricsEndpoint() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  httplib::Server server_;
  std::string host_;
  int port_ = 0;
  std::thread thread_;
};

int Main(int argc, char** argv) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("sonde-agent"));
  auto parsed = ParseAgentOptions(argc, argv);
  if (!parsed.ok()) {
    bool help = parsed.status().code() == StatusCode::kCancelled;
    std::fputs(parsed.status().message().c_str(), help ? stdout : stderr);
    std::fputc('\n', help ? stdout : stderr);
    return help ? 0 : 2;
  }
  const AgentOptions& opts = *parsed;
  SetLogLevel(opts.log_level.c_str());
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  signal(SIGPIPE, SIG_IGN);

  metrics::Registry registry;
  std::unique_ptr<exporting::RecordSink> sink;
  exporting::ServerExporter* exporter = nullptr;
  if (opts.output == "jsonl") {
    sink = std::make_unique<exporting::JsonlWriter>(stdout);
  } else {
    exporting::ServerExporterConfig ec;
    auto colon = opts.server.rfind(':');
    if (colon == std::string::npos) {
      std::fprintf(stderr, "sonde-agent: --server must be HOST:PORT\n");
      return 2;
    }
    ec.server_host = opts.server.substr(0, colon);
    ec.server_port = static_cast<uint16_t>(std::stoi(opts.server.substr(colon + 1)));
    ec.host = ReadHostInfo(opts.hostname);
    ec.hostname = ec.host.hostname();
    ec.boot_id = ec.host.boot_id();
    ec.token = opts.token;
    ec.batch_max_records = opts.batch_max_records;
    auto e = std::make_unique<exporting::ServerExporter>(ec, &registry);
    exporter = e.get();
    exporter->Start();
    sink = std::move(e);
  }
  // Offline replays serve /metrics only when asked for explicitly (several may run at once).
  std::unique_ptr<MetricsEndpoint> endpoint;
  bool metrics_flag_given = false;
  for (int i = 1; i < argc; ++i) metrics_flag_given |= std::string_view(argv[i]).starts_with("--metrics-listen");
  if (!opts.metrics_listen.empty() && (opts.pcap.empty() || metrics_flag_given)) {
    endpoint = std::make_unique<MetricsEndpoint>(opts.metrics_listen, &registry);
  }

  Status result;
  if (!opts.pcap.empty()) {
    capture::PcapFileSource source(opts.pcap);
    result = RunPacketPipeline(source, opts, sink.get(), &registry, 0);
  } else {
    result = RunLive(opts, sink.get(), &registry);
  }
  sink->Flush();
  int rc = 0;
  if (!result.ok()) {
    std::fprintf(stderr, "sonde-agent: %s\n", result.ToString().c_str());
    rc = 1;
  }
  if (exporter && !exporter->Stop(std::chrono::milliseconds(opts.drain_timeout_ms))) {
    std::fprintf(stderr, "sonde-agent: the server did not acknowledge every record within %u ms\n",
                 opts.drain_timeout_ms);
    rc = rc ? rc : 3;
  }
  return rc;
}

}  // namespace
}  // namespace sonde::agent

int main(int argc, char** argv) { return sonde::agent::Main(argc, argv); }
