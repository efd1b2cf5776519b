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
  switch (Attempt(batches, &progress, options_.max_rejections, true)) {
    case Outcome::kStored:
      Stored(std::span<const SpoolEntry>(entries));
      return;
    case Outcome::kStopping:
      return;
    case Outcome::kRejected:
      // One bad batch must not take the good ones of its set with it: halve the set until the
      // batches storage rejects on their own are found; only those are quarantined.
      Isolate(entries, batches, progress);
      return;
  }
}

SpoolDrainer::Outcome SpoolDrainer::Attempt(std::span<const storage::AgentBatch> batches,
                                            storage::WriteProgress* progress, uint32_t max_rejections,
                                            bool reapply_schema) {
  auto backoff = options_.backoff_min;
  uint32_t rejections = 0;
  for (;;) {
    Status s = backend_->Write(batches, progress);
    if (s.ok()) return Outcome::kStored;
    write_failures_->Inc();
    consecutive_failures_.fetch_add(1);
    failing_gauge_->Set(1);
    SONDE_LOG_EVERY(warn, "storage write of {} spooled batches failed: {}", batches.size(), s.ToString());
    if (!Transient(s.code())) {
      if (++rejections >= max_rejections) {
        last_rejection_ = s;
        return Outcome::kRejected;
      }
      // A dropped table or an old schema is fixed by applying the schema again.
      if (reapply_schema) backend_->ApplySchema().IgnoreError();
    }
    // Back off; while stopping, give up once the drain deadline passed (files stay spooled).
    const auto until = Clock::now() + backoff;
    while (Clock::now() < until) {
      if (stopping_.load() &&
          Clock::now() >= Clock::time_point(Clock::duration(drain_deadline_ns_.load()))) {
        return Outcome::kStopping;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
}

void SpoolDrainer::Isolate(std::span<const SpoolEntry> entries, std::span<const storage::AgentBatch> batches,
                           const storage::WriteProgress& progress) {
  if (entries.size() == 1) {
    spdlog::error("storage rejected spooled batch {} ({} records); quarantining it: {}", entries[0].seq,
                  entries[0].records, last_rejection_.ToString());
    const uint64_t seq = entries[0].seq;
    spool_->Quarantine(std::span<const uint64_t>(&seq, 1));
    records_quarantined_->Inc(entries[0].records);
    consecutive_failures_.store(0);
    failing_gauge_->Set(0);
    return;
  }
  const size_t half = entries.size() / 2;
  for (size_t at : {size_t{0}, half}) {
    const size_t n = at == 0 ? half : entries.size() - half;
    // The tables the whole set already stored hold every batch of this part too.
    storage::WriteProgress part_progress = progress;
    // Storage already rejected the set max_rejections times (schema re-applied): one rejection
    // of a part is enough to look inside it.
    switch (Attempt(batches.subspan(at, n), &part_progress, 1, false)) {
      case Outcome::kStored:
        Stored(entries.subspan(at, n));
        break;
      case Outcome::kStopping:
        return;  // the rest stays spooled
      case Outcome::kRejected:
        Isolate(entries.subspan(at, n), batches.subspan(at, n), part_progress);
        break;
    }
  }
}

void SpoolDrainer::Stored(std::span<const SpoolEntry> entries) {
  std::vector<uint64_t> seqs;
  seqs.reserve(entries.size());
  for (const auto& e : entries) seqs.push_back(e.seq);
  spool_->Remove(seqs);
  batches_written_->Inc(seqs.size());
  consecutive_failures_.store(0);
  failing_gauge_->Set(0);
}

}  // namespace sonde::server::ingest
