// Field-for-field acceptance against the expected outputs other projects ship next to the shared
// corpus captures (DeepFlow *.result, Packetbeat *.expected.txt, Arkime *.arkime.test.json, nDPI
// *.ndpiReader.out). Captures run through the real agent pipeline (PcapFileSource -> FlowTracker
// -> L7Analyzer, as `sonde-agent --pcap`). Shared by tests/corpus_l7 and tests/corpus_l7b.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::corpus {

// One request as a source project reports it. Unset fields are not compared.
struct ExpectedRequest {
  std::optional<std::string> method;    // request_type (HTTP method, DNS qtype, SQL verb, ...)
  std::optional<std::string> resource;  // path / query name / topic / statement / SNI
  std::optional<bool> ok;               // the source's status: success or error
  std::optional<int64_t> code;          // status code / error code / rcode
};

struct ExpectedCapture {
  std::string source;  // deepflow | packetbeat | arkime | ndpi
  std::vector<ExpectedRequest> requests;
  // When the source states which connection its requests are on (Packetbeat: "N transactions on
  // A:p -> B:q"), only records of that connection are compared.
  std::optional<std::string> client_ip, server_ip;
  std::optional<uint32_t> client_port, server_port;
};

// The records `sonde-agent --pcap path` would emit (L7 request logs only).
[[nodiscard]] StatusOr<std::vector<agent::v1::L7RequestLog>> RunAgentPipeline(
    const std::filesystem::path& pcap);

// Reads the expected output shipped next to `pcap` (same stem) for corpus folder `folder`;
// nullopt when there is none or it says nothing about requests of that protocol.
std::optional<ExpectedCapture> LoadExpected(const std::filesystem::path& pcap,
                                            const std::string& folder);

// True when `record` belongs to the protocol family of corpus folder `folder`.
bool InFamily(const std::string& folder, const agent::v1::L7RequestLog& record);

struct Agreement {
  int expected = 0, found = 0;
  int method_expected = 0, method_matched = 0;
  int resource_expected = 0, resource_matched = 0;
  int status_expected = 0, status_matched = 0;
  int code_expected = 0, code_matched = 0;
  void Add(const Agreement& o);
};

// Pairs expected requests with records (same method and resource first, then same method, then
// in order; each record used once) and counts field agreement. `misses` (optional) receives one
// line per expected request not found or not matching.
Agreement Compare(const std::string& folder, const ExpectedCapture& expected,
                  const std::vector<agent::v1::L7RequestLog>& records,
                  std::vector<std::string>* misses);

// Runs every capture of `folders` that has an expected output, prints per-capture and
// per-folder tables, and returns per-folder agreement. Fails the current test (gtest) on a
// pipeline error. `corpus` is the corpus root.
std::map<std::string, Agreement> RunAcceptance(const std::filesystem::path& corpus,
                                               const std::vector<std::string>& folders);

// Checks per-folder ratios against `baseline_file` lines "<folder>.<field> <ratio>" (fields:
// found method resource status code); SONDE_UPDATE_BASELINE=1 rewrites it from `results`.
void CheckBaseline(const std::filesystem::path& baseline_file,
                   const std::map<std::string, Agreement>& results);

}  // namespace sonde::corpus
