// Spool: file-per-batch durable queue with a byte bound.
#include "server/ingest/spool.h"

#include <fcntl.h>
#include <sys/uio.h>
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

// Files of removed batches kept for reuse: creating and deleting an inode per batch cost more CPU
// than everything else the spool does (ext4 inode allocation). Bounded in count (a write set of
// the drainer is up to a few hundred batches), per file, and in total to 1/8 of the spool bound.
constexpr size_t kMaxFreeFiles = 512;
constexpr uint64_t kMaxFreeFileBytes = 4u << 20;
constexpr std::string_view kFreePrefix = "free-";

// Writes header + payload (two buffers: the payload is the agent's bytes, never copied) over
// whatever `path` held (a recycled file keeps its blocks; the tail is cut).
Status WriteFileDurably(const std::string& path, std::string_view header, std::string_view payload,
                        bool do_fsync) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return UnavailableError(fmt::format("open {}: {}", path, std::strerror(errno)));
  const size_t total = header.size() + payload.size();
  size_t off = 0;
  while (off < total) {
    iovec iov[2];
    int n = 0;
    if (off < header.size()) {
      iov[n++] = {const_cast<char*>(header.data() + off), header.size() - off};
      iov[n++] = {const_cast<char*>(payload.data()), payload.size()};
    } else {
      iov[n++] = {const_cast<char*>(payload.data() + (off - header.size())), total - off};
    }
    ssize_t w = ::writev(fd, iov, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      Status s = UnavailableError(fmt::format("write {}: {}", path, std::strerror(errno)));
      ::close(fd);
      return s;
    }
    off += static_cast<size_t>(w);
  }
  if (::ftruncate(fd, static_cast<off_t>(total)) != 0) {
    Status s = UnavailableError(fmt::format("truncate {}: {}", path, std::strerror(errno)));
    ::close(fd);
    return s;
  }
  // fdatasync: the data and what reading it needs (size, extents); the name is made durable by
  // the rename + directory fsync that follow. Half the CPU of fsync here.
  if (do_fsync && ::fdatasync(fd) != 0) {
    Status s = UnavailableError(fmt::format("fsync {}: {}", path, std::strerror(errno)));
    ::close(fd);
    return s;
  }
  ::close(fd);
  return Status::Ok();
}

// Reads exactly n bytes; false on error or early end of file.
bool ReadFully(int fd, char* buf, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t r = ::read(fd, buf + off, n - off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    off += static_cast<size_t>(r);
  }
  return true;
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
    if (name.rfind(kFreePrefix, 0) == 0) {
      // A removed batch's file kept for reuse: its content is dead.
      const std::string_view number = std::string_view(name).substr(kFreePrefix.size());
      std::error_code size_ec;
      const uint64_t size = e.file_size(size_ec);
      if (!size_ec && free_files_.size() < kMaxFreeFiles && free_bytes_ + size <= options_.max_bytes / 8 &&
          !number.empty() && number.size() <= 19 &&
          number.find_first_not_of("0123456789") == std::string_view::npos) {
        free_files_.push_back({e.path().string(), size});
        free_bytes_ += size;
        next_free_ = std::max<uint64_t>(next_free_, std::stoull(std::string(number)) + 1);
      } else {
        fs::remove(e.path(), ec);
      }
      continue;
    }
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
  std::string wire;
  if (!records.SerializeToString(&wire)) return InternalError("cannot serialize batch");
  return Append(agent_id, wire);
}

StatusOr<uint64_t> Spool::Append(uint32_t agent_id, std::string_view records_wire) {
  if (records_wire.size() > UINT32_MAX - kHeaderBytes) return InvalidArgumentError("batch too large for the spool");
  char header[kHeaderBytes];
  std::memcpy(header, kMagic, 4);
  PutU32(agent_id, header + 4);
  PutU32(static_cast<uint32_t>(records_wire.size()), header + 8);
  const uint64_t file_bytes = kHeaderBytes + records_wire.size();

  uint64_t seq;
  std::string work_path;
  {
    std::lock_guard lock(mu_);
    if (committed_bytes_ + reserved_bytes_ + file_bytes > options_.max_bytes) {
      full_rejections_->Inc();
      return ResourceExhaustedError(fmt::format("spool full ({} of {} bytes)", committed_bytes_ + reserved_bytes_,
                                                options_.max_bytes));
    }
    reserved_bytes_ += file_bytes;
    seq = next_seq_++;
    if (!free_files_.empty()) {
      work_path = std::move(free_files_.back().path);
      free_bytes_ -= free_files_.back().bytes;
      free_files_.pop_back();
    }
  }
  // Written outside the lock so concurrent agents fsync in parallel; under its final name only
  // once complete (a recycled file too: a crash before the rename leaves it a free file).
  const std::string final_path = PathFor(seq);
  const std::string tmp_path = work_path.empty() ? final_path + ".tmp" : work_path;
  Status s = WriteFileDurably(tmp_path, std::string_view(header, kHeaderBytes), records_wire, options_.fsync);
  if (s.ok() && ::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    s = UnavailableError(fmt::format("rename {}: {}", tmp_path, std::strerror(errno)));
  }
  if (s.ok() && options_.fsync && ::fsync(dir_fd_) != 0) {
    s = UnavailableError(fmt::format("fsync {}: {}", options_.dir, std::strerror(errno)));
  }
  std::lock_guard lock(mu_);
  reserved_bytes_ -= file_bytes;
  if (!s.ok()) {
    std::error_code ec;
    fs::remove(tmp_path, ec);
    fs::remove(final_path, ec);
    return s;
  }
  entries_[seq] = Committed{file_bytes, Clock::now()};
  committed_bytes_ += file_bytes;
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
  storage::RecordBatchWire split;
  for (const auto& [seq, size] : want) {
    const std::string path = PathFor(seq);
    // Header and payload read separately so the payload lands in its own string (no shift).
    char header[kHeaderBytes];
    std::string payload;
    bool ok = false;
    if (int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
      ok = size >= kHeaderBytes && ReadFully(fd, header, kHeaderBytes) && std::memcmp(header, kMagic, 4) == 0 &&
           GetU32(header + 8) == size - kHeaderBytes;
      if (ok) {
        payload.resize(size - kHeaderBytes);
        ok = ReadFully(fd, payload.data(), payload.size());
      }
      ::close(fd);
    }
    SpoolEntry e;
    e.seq = seq;
    e.bytes = size;
    // Only the envelope is read: records stay wire bytes until the RowBinary encoder; the few
    // ProcessInfo records are parsed for the tagger.
    ok = ok && storage::SplitRecordBatch(payload, &split);
    for (size_t i = 0; ok && i < split.processes.size(); ++i) {
      ok = e.batch.records.add_processes()->ParseFromArray(split.processes[i].data(),
                                                           static_cast<int>(split.processes[i].size()));
    }
    if (!ok) {
      SONDE_LOG_EVERY(error, "spool: {} is unreadable; moving it to quarantine", path);
      bad.push_back(seq);
      continue;
    }
    e.batch.agent_id = GetU32(header + 4);
    e.records = split.RecordCount() + split.processes.size();
    e.batch.wire = std::move(payload);
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
    bool kept = false;
    if (free_files_.size() < kMaxFreeFiles && it->second.bytes <= kMaxFreeFileBytes &&
        free_bytes_ + it->second.bytes <= options_.max_bytes / 8) {
      std::string free_path = fmt::format("{}/{}{}", options_.dir, kFreePrefix, next_free_++);
      if (::rename(PathFor(seq).c_str(), free_path.c_str()) == 0) {
        free_files_.push_back({std::move(free_path), it->second.bytes});
        free_bytes_ += it->second.bytes;
        kept = true;
      }
    }
    if (!kept) fs::remove(PathFor(seq), ec);
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
