// Flag table and parser for sonde-agent.
#include "agent/main/agent_options.h"

#include <charconv>
#include <functional>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace sonde::agent {

namespace {

struct Flag {
  std::string_view name;
  std::string_view help;
  std::function<Status(AgentOptions&, std::string_view)> set;
};

Status SetUint(std::string_view v, uint64_t* out, std::string_view name) {
  uint64_t x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || p != v.data() + v.size()) {
    return InvalidArgumentError(fmt::format("--{} expects a number, got '{}'", name, v));
  }
  *out = x;
  return Status::Ok();
}

template <typename T>
std::function<Status(AgentOptions&, std::string_view)> Uint(T AgentOptions::*field, std::string_view name) {
  return [field, name](AgentOptions& o, std::string_view v) {
    uint64_t x = 0;
    SONDE_RETURN_IF_ERROR(SetUint(v, &x, name));
    o.*field = static_cast<T>(x);
    return Status::Ok();
  };
}

std::function<Status(AgentOptions&, std::string_view)> Str(std::string AgentOptions::*field) {
  return [field](AgentOptions& o, std::string_view v) {
    o.*field = std::string(v);
    return Status::Ok();
  };
}

const std::vector<Flag>& Flags() {
  static const std::vector<Flag> flags = {
      {"pcap", "replay a pcap/pcapng file and exit at its end", Str(&AgentOptions::pcap)},
      {"interfaces", "live capture interfaces, comma-separated globs ('any' = all)",
       Str(&AgentOptions::interfaces)},
      {"netns", "capture inside this network namespace (name in /run/netns, a path, or 'all')",
       Str(&AgentOptions::netns)},
      {"filter", "kernel packet filter for live capture, tcpdump syntax", Str(&AgentOptions::filter)},
      {"ebpf", "eBPF socket tracing: auto|on|off", Str(&AgentOptions::ebpf)},
      {"output", "server (send to sonde-server) or jsonl (print records to stdout)",
       Str(&AgentOptions::output)},
      {"server", "sonde-server ingest address HOST:PORT", Str(&AgentOptions::server)},
      {"token", "ingest token when the server requires one", Str(&AgentOptions::token)},
      {"metrics-listen", "ADDR:PORT for /metrics ('' disables)", Str(&AgentOptions::metrics_listen)},
      {"hostname", "host name to report (default: this host's)", Str(&AgentOptions::hostname)},
      {"log-level", "trace|debug|info|warn|error", Str(&AgentOptions::log_level)},
      {"max-flows", "flow table capacity", Uint(&AgentOptions::max_flows, "max-flows")},
      {"l7-timeout-ms", "unanswered requests become timeouts after this",
       Uint(&AgentOptions::l7_timeout_ms, "l7-timeout-ms")},
      {"batch-max-records", "records per batch sent to the server",
       Uint(&AgentOptions::batch_max_records, "batch-max-records")},
      {"drain-timeout-ms", "at exit, how long to wait for the server to acknowledge everything",
       Uint(&AgentOptions::drain_timeout_ms, "drain-timeout-ms")},
  };
  return flags;
}

std::string Usage() {
  std::string out = "usage: sonde-agent [flags]\n";
  AgentOptions defaults;
  for (const auto& f : Flags()) out += fmt::format("  --{:<20} {}\n", f.name, f.help);
  return out;
}

}  // namespace

StatusOr<AgentOptions> ParseAgentOptions(int argc, char** argv) {
  AgentOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") return CancelledError(Usage());
    if (a.substr(0, 2) != "--") return InvalidArgumentError(fmt::format("unexpected argument '{}'\n{}", a, Usage()));
    a.remove_prefix(2);
    std::string_view value;
    bool inline_value = false;
    if (auto eq = a.find('='); eq != std::string_view::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      inline_value = true;
    }
    const Flag* flag = nullptr;
    for (const auto& f : Flags()) {
      if (f.name == a) flag = &f;
    }
    if (!flag) return InvalidArgumentError(fmt::format("unknown flag --{}\n{}", a, Usage()));
    if (!inline_value) {
      if (i + 1 >= argc) return InvalidArgumentError(fmt::format("--{} needs a value", a));
      value = argv[++i];
    }
    SONDE_RETURN_IF_ERROR(flag->set(o, value));
  }
  if (o.output != "server" && o.output != "jsonl") {
    return InvalidArgumentError(fmt::format("--output must be server or jsonl, got '{}'", o.output));
  }
  if (o.ebpf != "auto" && o.ebpf != "on" && o.ebpf != "off") {
    return InvalidArgumentError(fmt::format("--ebpf must be auto, on or off, got '{}'", o.ebpf));
  }
  return o;
}

}  // namespace sonde::agent
