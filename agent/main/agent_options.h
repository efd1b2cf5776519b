// sonde-agent's command line: every flag, its default and its help in one table.
#pragma once

#include <cstdint>
#include <string>

#include "common/base/status.h"

namespace sonde::agent {

struct AgentOptions {
  std::string pcap;                       // --pcap FILE: offline replay, exits at end of file
  std::string interfaces = "any";         // --interfaces GLOBS: live AF_PACKET capture
  std::string netns;                      // --netns NAME|PATH|all: capture inside that namespace
  std::string filter;                     // --filter EXPR: kernel BPF filter (tcpdump syntax)
  std::string ebpf = "auto";              // --ebpf auto|on|off
  std::string output = "server";          // --output server|jsonl
  std::string server = "127.0.0.1:20033"; // --server HOST:PORT
  std::string token;                      // --token: ingest token
  std::string metrics_listen = "127.0.0.1:20090";  // --metrics-listen ADDR:PORT ("" = off)
  std::string hostname;                   // --hostname: default gethostname()
  std::string log_level = "info";         // --log-level
  uint64_t max_flows = 1u << 20;          // --max-flows
  uint32_t l7_timeout_ms = 30000;         // --l7-timeout-ms: unanswered request -> timeout
  uint32_t batch_max_records = 4096;      // --batch-max-records
  uint32_t drain_timeout_ms = 120000;     // --drain-timeout-ms: wait for acks at exit
};

// Parses argv into options. `--help` yields a kCancelled status whose message is the usage.
StatusOr<AgentOptions> ParseAgentOptions(int argc, char** argv);

}  // namespace sonde::agent
