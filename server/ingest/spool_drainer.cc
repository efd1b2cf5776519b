// SpoolDrainer: the single writer between the spool and storage.
#include "server/ingest/spool_drainer.h"

#include <spdlog/spdlog.h>

#include "common/log/log.h"

namespace sonde::server::ingest {

using Clock = std::chrono::steady_clock;

namespace {
bool Transient(StatusCode code) {
  return code == StatusCode::kUnavailable || code == StatusCode::kDeadlineExceeded;
}
}  // namespace

SpoolDrainer::SpoolDrainer(Spool* spool, storage::StorageBackend* backend, SpoolDrainerOptions options,
                           metrics::Registry* registry)
    : spool_(spool),
      backend_(backend),
      options_(options),
      batches_written_(registry->GetCounter("sonde_server_spool_batches_written_total",
                                            "Spooled batches stored and deleted from the spool")),
      write_failures_(registry->GetCounter("sonde_server_storage_write_failures_total",
                                           "Storage writes that failed and will be retried")),
      records_quarantined_(registry->GetCounter("sonde_server_records_dropped_total",
                                                "Records the server could not store",
                                                {{"table", "any"}, {"reason", "rejected_by_storage"}})),
      failing_gauge_(registry->GetGauge("sonde_server_storage_failing",
                                        "1 while storage writes fail (the spool is growing)")) {}

SpoolDrainer::~SpoolDrainer() { Stop(std::chrono::milliseconds(0)); }

void SpoolDrainer::Start() {
  if (running_.exchange(true)) return;
  thread_ = std::thread([this] { Loop(); });
}

bool SpoolDrainer::Stop(std::chrono::milliseconds drain) {
  if (!running_.load()) return spool_->files() == 0;
  drain_deadline_ns_.store((Clock::now() + drain).time_since_epoch().count());
  stopping_.store(true);
  spool_->Wake();
  if (thread_.joinable()) thread_.join();
  running_.store(false);
  return spool_->files() == 0;
}

void SpoolDrainer::Loop() {
  for (;;) {
    const bool stopping = stopping_.load();
    if (stopping) {
      const auto deadline = Clock::time_point(Clock::duration(drain_deadline_ns_.load()));
      if (spool_->files() == 0 || Clock::now() >= deadline) break;
    } else {
      spool_->WaitReady(options_.flush_bytes, options_.flush_interval, Clock::now() + std::chrono::seconds(1));
      if (stopping_.load()) continue;  // re-evaluate with the drain deadline
    }
    std::vector<SpoolEntry> entries = spool_->ReadOldest(options_.max_files_per_write, options_.max_bytes_per_write);
    if (entries.empty()) continue;
    WriteSet(entries);
  }
}

void SpoolDrainer::WriteSet(std::vector<SpoolEntry>& entries) {
  std::vector<storage::AgentBatch> batches;
  batches.reserve(entries.size());
  for (auto& e : entries) batches.push_back(std::move(e.batch));
  storage::WriteProgress progress;
  auto backoff = options_.backoff_min;
  uint32_t rejections = 0;
  for (;;) {
    Status s = backend_->Write(batches, &progress);
    if (s.ok()) break;
    write_failures_->Inc();
    consecutive_failures_.fetch_add(1);
    failing_gauge_->Set(1);
    SONDE_LOG_EVERY(warn, "storage write of {} spooled batches failed (will retry): {}", entries.size(),
                    s.ToString());
    if (!Transient(s.code())) {
      if (++rejections >= options_.max_rejections) {
        std::vector<uint64_t> seqs;
        uint64_t records = 0;
        for (const auto& e : entries) {
          seqs.push_back(e.seq);
          records += e.records;
        }
        spdlog::error("storage rejected {} batches {} times; quarantining them: {}", seqs.size(), rejections,
                      s.ToString());
        spool_->Quarantine(seqs);
        records_quarantined_->Inc(records);
        consecutive_failures_.store(0);
        failing_gauge_->Set(0);
        return;
      }
      // A dropped table or an old schema is fixed by applying the schema again.
      backend_->ApplySchema().IgnoreError();
    }
    // Back off; while stopping, give up once the drain deadline passed (files stay spooled).
    const auto until = Clock::now() + backoff;
    while (Clock::now() < until) {
      if (stopping_.load() &&
          Clock::now() >= Clock::time_point(Clock::duration(drain_deadline_ns_.load()))) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
  std::vector<uint64_t> seqs;
  for (const auto& e : entries) seqs.push_back(e.seq);
  spool_->Remove(seqs);
  batches_written_->Inc(seqs.size());
  consecutive_failures_.store(0);
  failing_gauge_->Set(0);
}

}  // namespace sonde::server::ingest
