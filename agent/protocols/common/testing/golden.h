// Golden-file helpers for parser tests: a stable one-line-per-record text form of L7 records,
// and a comparison that rewrites the golden file when SONDE_UPDATE_GOLDEN=1.
#pragma once

#include <string>
#include <vector>

#include "agent/flow/stream_handler.h"
#include "agent/protocols/common/l7_analyzer.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::protocols::testing {

// One line per record with the protocol-relevant fields (times as durations, not absolutes).
std::string RecordsToText(const std::vector<v1::L7RequestLog>& records);

// Replays `pcap_path` through an L7Analyzer (default options) and returns its records.
std::vector<v1::L7RequestLog> RecordsFromPcap(const std::string& pcap_path,
                                              L7AnalyzerOptions options = {});

// Compares `actual` with the file at `golden_path` (repo-relative); with SONDE_UPDATE_GOLDEN=1
// writes it instead. Returns an empty string on match, else a diff-ish message.
std::string CompareWithGolden(const std::string& golden_path, const std::string& actual);

// Absolute path of a repo-relative path (uses SONDE_SOURCE_DIR, else the cwd).
std::string SourcePath(const std::string& relative);

}  // namespace sonde::agent::protocols::testing
