// Spool: file-per-batch durable queue with a byte bound.
#include "server/ingest/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/log/log.h"

namespace sonde::server::ingest {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr char kMagic[4] = {'S', 'S', 'P', '1'};
constexpr size_t kHeaderBytes = 12;

void PutU32(uint32_t v, char* p) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(p[i])} << (8 * i);
  return v;
}

Status WriteFileDurably(const std::string& path, const std::string& data, bool do_fsync) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return UnavailableError(fmt::format("open {}: {}", path, std::strerror(errno)));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      Status s = UnavailableError(fmt::format("write {}: {}", path, std::strerror(errno)));
      ::close(fd);
      return s;
    }
    off += static_cast<size_t>(w);
  }
  if (do_fsync && ::fsync(fd) != 0) {
    Status s = UnavailableError(fmt::format("fsync {}: {}", path, std::strerror(errno)));
    ::close(fd);
    return s;
  }
  ::close(fd);
  return Status::Ok();
}

uint64_t CountRecords(const agent::v1::RecordBatch& b) {
  return static_cast<uint64_t>(b.l7_request_logs_size()) + b.l4_flow_logs_size() + b.network_metrics_size() +
         b.application_metrics_size() + b.processes_size();
}

}  // namespace

Spool::Spool(SpoolOptions options, metrics::Registry* registry)
    : options_(std::move(options)),
      bytes_gauge_(registry->GetGauge("sonde_server_spool_bytes", "Bytes of accepted batches waiting for storage")),
      files_gauge_(registry->GetGauge("sonde_server_spool_files", "Accepted batches waiting for storage")),
      full_rejections_(registry->GetCounter("sonde_server_spool_full_total",
                                            "Batches refused (Nack) because the spool was at its bound")),
      quarantined_(registry->GetCounter("sonde_server_spool_quarantined_total",
                                        "Spool files moved aside (unreadable, or rejected by storage)")),
      replayed_(registry->GetCounter("sonde_server_spool_replayed_total",
                                     "Spooled batches found at startup and queued again")) {}

Spool::~Spool() {
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

StatusOr<std::unique_ptr<Spool>> Spool::Open(SpoolOptions options, metrics::Registry* registry) {
  if (options.dir.empty()) return InvalidArgumentError("spool needs a directory");
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) return UnavailableError(fmt::format("cannot create spool dir {}: {}", options.dir, ec.message()));
  std::unique_ptr<Spool> spool(new Spool(std::move(options), registry));
  spool->dir_fd_ = ::open(spool->options_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (spool->dir_fd_ < 0) return UnavailableError(fmt::format("open {}: {}", spool->options_.dir, std::strerror(errno)));
  SONDE_RETURN_IF_ERROR(spool->Replay());
  return spool;
}

std::string Spool::PathFor(uint64_t seq) const { return fmt::format("{}/{:020d}.batch", options_.dir, seq); }

Status Spool::Replay() {
  std::error_code ec;
  std::lock_guard lock(mu_);
  for (const auto& e : fs::directory_iterator(options_.dir, ec)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    if (name.size() > 4 && name.substr(name.size() - 4) == ".tmp") {
      fs::remove(e.path(), ec);  // an Append that never completed: it was never acknowledged
      continue;
    }
    const std::string_view kSuffix = ".batch";
    if (name.size() != 20 + kSuffix.size() || name.substr(20) != kSuffix ||
        name.substr(0, 20).find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    const uint64_t seq = std::stoull(name.substr(0, 20));
    const uint64_t size = e.file_size(ec);
    entries_[seq] = Committed{size, Clock::time_point::min()};  // due at once
    committed_bytes_ += size;
    next_seq_ = std::max(next_seq_, seq + 1);
    replayed_->Inc();
  }
  if (ec) return UnavailableError(fmt::format("scan {}: {}", options_.dir, ec.message()));
  if (!entries_.empty()) {
    spdlog::info("spool: replaying {} batches ({} bytes) from {}", entries_.size(), committed_bytes_, options_.dir);
  }
  UpdateGauges();
  return Status::Ok();
}

void Spool::UpdateGauges() {
  bytes_gauge_->Set(static_cast<int64_t>(committed_bytes_));
  files_gauge_->Set(static_cast<int64_t>(entries_.size()));
}

StatusOr<uint64_t> Spool::Append(uint32_t agent_id, const agent::v1::RecordBatch& records) {
  std::string data(kHeaderBytes, '\0');
  std::memcpy(data.data(), kMagic, 4);
  PutU32(agent_id, data.data() + 4);
  if (!records.AppendToString(&data)) return InternalError("cannot serialize batch");
  const uint64_t payload = data.size() - kHeaderBytes;
  if (payload > UINT32_MAX) return InvalidArgumentError("batch too large for the spool");
  PutU32(static_cast<uint32_t>(payload), data.data() + 8);

  uint64_t seq;
  {
    std::lock_guard lock(mu_);
    if (committed_bytes_ + reserved_bytes_ + data.size() > options_.max_bytes) {
      full_rejections_->Inc();
      return ResourceExhaustedError(fmt::format("spool full ({} of {} bytes)", committed_bytes_ + reserved_bytes_,
                                                options_.max_bytes));
    }
    reserved_bytes_ += data.size();
    seq = next_seq_++;
  }
  // Written outside the lock so concurrent agents fsync in parallel.
  const std::string final_path = PathFor(seq);
  const std::string tmp_path = final_path + ".tmp";
  Status s = WriteFileDurably(tmp_path, data, options_.fsync);
  if (s.ok() && ::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    s = UnavailableError(fmt::format("rename {}: {}", tmp_path, std::strerror(errno)));
  }
  if (s.ok() && options_.fsync && ::fsync(dir_fd_) != 0) {
    s = UnavailableError(fmt::format("fsync {}: {}", options_.dir, std::strerror(errno)));
  }
  std::lock_guard lock(mu_);
  reserved_bytes_ -= data.size();
  if (!s.ok()) {
    std::error_code ec;
    fs::remove(tmp_path, ec);
    fs::remove(final_path, ec);
    return s;
  }
  entries_[seq] = Committed{data.size(), Clock::now()};
  committed_bytes_ += data.size();
  UpdateGauges();
  cv_.notify_all();
  return seq;
}

bool Spool::WaitReady(uint64_t min_bytes, std::chrono::milliseconds max_delay, Clock::time_point deadline) {
  std::unique_lock lock(mu_);
  for (;;) {
    if (woken_) {
      woken_ = false;
      return !entries_.empty();
    }
    if (!entries_.empty()) {
      if (committed_bytes_ >= min_bytes) return true;
      const auto oldest = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
                            return a.second.at < b.second.at;
                          })->second.at;
      const auto due = oldest + max_delay;
      if (Clock::now() >= due) return true;
      if (Clock::now() >= deadline) return false;
      cv_.wait_until(lock, std::min(due, deadline));
      continue;
    }
    if (Clock::now() >= deadline) return false;
    cv_.wait_until(lock, deadline);
  }
}

void Spool::Wake() {
  std::lock_guard lock(mu_);
  woken_ = true;
  cv_.notify_all();
}

std::vector<SpoolEntry> Spool::ReadOldest(size_t max_files, uint64_t max_bytes) {
  std::vector<std::pair<uint64_t, uint64_t>> want;
  {
    std::lock_guard lock(mu_);
    uint64_t total = 0;
    for (const auto& [seq, c] : entries_) {
      if (want.size() >= max_files || (!want.empty() && total + c.bytes > max_bytes)) break;
      want.emplace_back(seq, c.bytes);
      total += c.bytes;
    }
  }
  std::vector<SpoolEntry> out;
  std::vector<uint64_t> bad;
  for (const auto& [seq, size] : want) {
    const std::string path = PathFor(seq);
    std::string data;
    {
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        data.resize(size);
        size_t off = 0;
        while (off < size) {
          ssize_t r = ::read(fd, data.data() + off, size - off);
          if (r < 0 && errno == EINTR) continue;
          if (r <= 0) break;
          off += static_cast<size_t>(r);
        }
        data.resize(off);
        ::close(fd);
      }
    }
    SpoolEntry e;
    e.seq = seq;
    e.bytes = size;
    bool ok = data.size() >= kHeaderBytes && std::memcmp(data.data(), kMagic, 4) == 0 &&
              GetU32(data.data() + 8) == data.size() - kHeaderBytes &&
              e.batch.records.ParseFromArray(data.data() + kHeaderBytes, static_cast<int>(data.size() - kHeaderBytes));
    if (!ok) {
      SONDE_LOG_EVERY(error, "spool: {} is unreadable; moving it to quarantine", path);
      bad.push_back(seq);
      continue;
    }
    e.batch.agent_id = GetU32(data.data() + 4);
    e.records = CountRecords(e.batch.records);
    // Storage encodes rows from these bytes instead of walking the parsed messages.
    data.erase(0, kHeaderBytes);
    e.batch.wire = std::move(data);
    out.push_back(std::move(e));
  }
  if (!bad.empty()) Quarantine(bad);
  return out;
}

void Spool::Remove(std::span<const uint64_t> seqs) {
  std::lock_guard lock(mu_);
  for (uint64_t seq : seqs) {
    auto it = entries_.find(seq);
    if (it == entries_.end()) continue;
    std::error_code ec;
    fs::remove(PathFor(seq), ec);
    committed_bytes_ -= it->second.bytes;
    entries_.erase(it);
  }
  UpdateGauges();
}

void Spool::Quarantine(std::span<const uint64_t> seqs) {
  std::lock_guard lock(mu_);
  const fs::path qdir = fs::path(options_.dir) / "quarantine";
  std::error_code ec;
  fs::create_directories(qdir, ec);
  for (uint64_t seq : seqs) {
    auto it = entries_.find(seq);
    if (it == entries_.end()) continue;
    fs::rename(PathFor(seq), qdir / fs::path(PathFor(seq)).filename(), ec);
    if (ec) fs::remove(PathFor(seq), ec);
    committed_bytes_ -= it->second.bytes;
    entries_.erase(it);
    quarantined_->Inc();
  }
  UpdateGauges();
}

uint64_t Spool::bytes() const {
  std::lock_guard lock(mu_);
  return committed_bytes_;
}

size_t Spool::files() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

}  // namespace sonde::server::ingest
