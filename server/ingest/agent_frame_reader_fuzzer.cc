// Fuzzes ReadAgentFrame on arbitrary payloads: no crash, and the same accept/reject decision, body
// and record counts as protobuf's full parse of the AgentFrame.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/ingest/agent_frame_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using sonde::server::ingest::AgentFrameView;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  AgentFrameView view;
  const bool ok = sonde::server::ingest::ReadAgentFrame(bytes, &view);
  sonde::control::v1::AgentFrame frame;
  if (frame.ParseFromArray(data, static_cast<int>(size)) != ok) std::abort();
  if (!ok) return 0;
  if (frame.has_batch() != (view.body == AgentFrameView::Body::kBatch)) std::abort();
  if (frame.has_register_() != (view.body == AgentFrameView::Body::kRegister)) std::abort();
  if (frame.has_heartbeat() != (view.body == AgentFrameView::Body::kHeartbeat)) std::abort();
  if (frame.has_batch()) {
    const auto& r = frame.batch().records();
    if (frame.batch().batch_seq() != view.batch_seq) std::abort();
    if (static_cast<size_t>(r.l7_request_logs_size()) != view.split.records[0].size() ||
        static_cast<size_t>(r.l4_flow_logs_size()) != view.split.records[1].size() ||
        static_cast<size_t>(r.network_metrics_size()) != view.split.records[2].size() ||
        static_cast<size_t>(r.application_metrics_size()) != view.split.records[3].size() ||
        static_cast<size_t>(r.processes_size()) != view.split.processes.size()) {
      std::abort();
    }
  }
  return 0;
}
