// Golden-file helpers for parser tests.
#include "agent/protocols/common/testing/golden.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "agent/protocols/common/registry.h"
#include "agent/protocols/common/testing/collecting_sink.h"
#include "agent/protocols/common/testing/pcap_streams.h"

namespace sonde::agent::protocols::testing {

std::string RecordsToText(const std::vector<v1::L7RequestLog>& records) {
  std::ostringstream os;
  for (const auto& r : records) {
    os << ProtocolName(r.l7_protocol()) << " v=" << r.version() << " type=" << r.request_type()
       << " domain=" << r.request_domain() << " resource=" << r.request_resource()
       << " endpoint=" << r.endpoint() << " id=" << r.request_id()
       << " status=" << common::v1::ResponseStatus_Name(r.response_status())
       << " code=" << r.response_code() << " exception=" << r.response_exception()
       << " result=" << r.response_result() << " dur_us=" << r.response_duration()
       << " req_len=" << r.request_length() << " resp_len=" << r.response_length()
       << " ua=" << r.user_agent() << " xrid=" << r.x_request_id() << " trace=" << r.trace_id()
       << " span=" << r.span_id() << " enc=" << r.is_encrypted() << " ports=" << r.client_port()
       << ">" << r.server_port() << " l4=" << r.protocol() << "\n";
  }
  return os.str();
}

std::vector<v1::L7RequestLog> RecordsFromPcap(const std::string& pcap_path,
                                              L7AnalyzerOptions options) {
  CollectingSink sink;
  metrics::Registry metrics;
  options.app_metrics = false;
  L7Analyzer analyzer(&sink, &metrics, options);
  auto stats = ReplayPcap(pcap_path, &analyzer);
  if (!stats.ok()) return {};
  analyzer.FlushAll(stats.value().last_timestamp_ns);
  return std::move(sink.l7);
}

std::string SourcePath(const std::string& relative) {
  const char* root = std::getenv("SONDE_SOURCE_DIR");
  return root == nullptr ? relative : std::string(root) + "/" + relative;
}

std::string CompareWithGolden(const std::string& golden_path, const std::string& actual) {
  const std::string path = SourcePath(golden_path);
  const char* update = std::getenv("SONDE_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(path, std::ios::binary) << actual;
    return "";
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return "missing golden file " + path + " (run with SONDE_UPDATE_GOLDEN=1)";
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str() == actual) return "";
  return "golden mismatch for " + path + "\n--- expected\n" + ss.str() + "--- actual\n" + actual;
}

}  // namespace sonde::agent::protocols::testing
