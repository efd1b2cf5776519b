// syscall_trace_id assignment per thread.
#include "agent/tracing/syscall_trace_id.h"

#include <algorithm>

namespace sonde::agent::tracing {

SyscallTraceIds::SyscallTraceIds(Options options, uint64_t seed)
    : options_(options), next_id_(((seed & 0xffffff) << 40) + 1) {}

uint64_t SyscallTraceIds::OnIo(uint32_t tid, uint64_t conn_key, bool server_side, bool ingress,
                               uint64_t now_ns) {
  auto it = threads_.find(tid);
  if (it == threads_.end()) {
    if (threads_.size() >= options_.max_threads) Reap(now_ns);
    if (threads_.size() >= options_.max_threads) {
      auto oldest = std::min_element(threads_.begin(), threads_.end(), [](const auto& a, const auto& b) {
        return a.second.last_ns < b.second.last_ns;
      });
      threads_.erase(oldest);
    }
    it = threads_.emplace(tid, ThreadState{}).first;
  }
  ThreadState& t = it->second;
  const bool request_read = server_side && ingress;
  if (request_read) {
    // Consecutive reads of one inbound request share its id; anything in between starts anew.
    if (!(t.last_was_request_read && t.last_conn == conn_key) || t.id == 0) t.id = next_id_++;
  }
  t.last_was_request_read = request_read;
  t.last_conn = conn_key;
  t.last_ns = now_ns;
  return t.id;
}

void SyscallTraceIds::Reap(uint64_t now_ns) {
  std::erase_if(threads_, [&](const auto& kv) { return now_ns - kv.second.last_ns >= options_.idle_ns; });
}

}  // namespace sonde::agent::tracing
