// Reports processes seen in records, at most once per refresh interval each.
#include "agent/main/process_reporter.h"

#include <chrono>

namespace sonde::agent {

ProcessReporter::ProcessReporter(exporting::RecordSink* next, uint64_t refresh_ns, size_t max_tracked,
                                 Reader read, Clock now)
    : next_(next), refresh_ns_(refresh_ns), max_tracked_(max_tracked), read_(std::move(read)),
      now_(std::move(now)) {
  if (!read_) read_ = [](uint32_t pid) { return metadata::ReadProcessInfo("/proc", pid); };
  if (!now_) {
    now_ = [] {
      return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    };
  }
}

void ProcessReporter::Report(uint32_t pid) {
  if (pid == 0) return;
  uint64_t now = now_();
  {
    std::lock_guard lock(mu_);
    auto it = reported_ns_.find(pid);
    if (it != reported_ns_.end() && now - it->second < refresh_ns_) return;
    if (it == reported_ns_.end() && reported_ns_.size() >= max_tracked_) {
      // Forget everything stale; if nothing is, forget everything: the bound wins over dedup.
      std::erase_if(reported_ns_, [&](const auto& e) { return now - e.second >= refresh_ns_; });
      if (reported_ns_.size() >= max_tracked_) reported_ns_.clear();
    }
    reported_ns_[pid] = now;
  }
  auto info = read_(pid);
  if (!info.ok()) return;  // exited already: the record still names it by pid and comm
  v1::ProcessInfo p;
  p.set_pid(info->pid);
  p.set_name(info->comm);
  p.set_cmdline(info->cmdline);
  p.set_container_id(info->container_id);
  p.set_netns_inode(info->netns_inode);
  next_->Emit(std::move(p));
}

void ProcessReporter::Emit(v1::L7RequestLog&& r) {
  Report(r.process_id_0());
  Report(r.process_id_1());
  next_->Emit(std::move(r));
}

void ProcessReporter::Emit(v1::L4FlowLog&& r) {
  Report(r.process_id_0());
  Report(r.process_id_1());
  next_->Emit(std::move(r));
}

}  // namespace sonde::agent
