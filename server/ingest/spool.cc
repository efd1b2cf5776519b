// Spool: segment files appended in place with group commit, a byte bound, replay with torn-tail
// detection, and replay of the previous file-per-batch format.
#include "server/ingest/spool.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/log/log.h"
#include "server/ingest/spool_checksum.h"

namespace sonde::server::ingest {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// The previous format: one file per batch, "SSP1" | agent_id u32 | payload_bytes u32 | payload.
constexpr char kLegacyMagic[4] = {'S', 'S', 'P', '1'};
constexpr size_t kLegacyHeaderBytes = 12;

constexpr char kSegmentMagic[4] = {'S', 'S', 'G', '2'};
constexpr char kRecordMagic[4] = {'S', 'S', 'R', '2'};
constexpr char kHeadMagic[4] = {'S', 'S', 'H', '2'};
constexpr uint32_t kKindBatch = 1, kKindEnd = 2;
constexpr size_t kHeadBytes = 16;
constexpr std::string_view kSegmentSuffix = ".seg";

// Free segments kept for reuse: bounded in count and to 1/8 of the spool bound.
constexpr size_t kMaxFreeSegments = 64;

void PutU32(uint32_t v, char* p) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void PutU64(uint64_t v, char* p) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(p[i])} << (8 * i);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(p[i])} << (8 * i);
  return v;
}

void EncodeRecordHeader(uint32_t kind, uint64_t seq, uint32_t agent_id, uint32_t payload_bytes, uint32_t check,
                        char* h) {
  std::memcpy(h, kRecordMagic, 4);
  PutU32(kind, h + 4);
  PutU64(seq, h + 8);
  PutU32(agent_id, h + 16);
  PutU32(payload_bytes, h + 20);
  PutU32(check, h + 24);
  PutU32(Crc32c(std::string_view(h, 28)), h + 28);
}

struct RecordHeader {
  uint32_t kind;
  uint64_t seq;
  uint32_t agent_id;
  uint32_t payload_bytes;
  uint32_t check;
};

bool DecodeRecordHeader(const char* h, RecordHeader* out) {
  if (std::memcmp(h, kRecordMagic, 4) != 0 || GetU32(h + 28) != Crc32c(std::string_view(h, 28))) return false;
  out->kind = GetU32(h + 4);
  out->seq = GetU64(h + 8);
  out->agent_id = GetU32(h + 16);
  out->payload_bytes = GetU32(h + 20);
  out->check = GetU32(h + 24);
  return out->kind == kKindBatch || out->kind == kKindEnd;
}

// Writes all of `iov` at `offset` (partial writes and IOV_MAX handled).
Status PwritevAll(int fd, std::vector<iovec>& iov, uint64_t offset, const std::string& path) {
  size_t at = 0;
  while (at < iov.size()) {
    const int n = static_cast<int>(std::min<size_t>(iov.size() - at, IOV_MAX));
    ssize_t w = ::pwritev(fd, iov.data() + at, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return UnavailableError(fmt::format("write {}: {}", path, std::strerror(errno)));
    offset += static_cast<uint64_t>(w);
    auto left = static_cast<size_t>(w);
    while (at < iov.size() && left >= iov[at].iov_len) left -= iov[at++].iov_len;
    if (left > 0) {
      iov[at].iov_base = static_cast<char*>(iov[at].iov_base) + left;
      iov[at].iov_len -= left;
    }
  }
  return Status::Ok();
}

bool PreadFully(int fd, char* buf, size_t n, uint64_t offset) {
  size_t off = 0;
  while (off < n) {
    ssize_t r = ::pread(fd, buf + off, n - off, static_cast<off_t>(offset + off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    off += static_cast<size_t>(r);
  }
  return true;
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

bool ReadWholeFile(int fd, std::string* out) {
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size < 0) return false;
  out->resize(static_cast<size_t>(size));
  return PreadFully(fd, out->data(), out->size(), 0);
}

bool AllDigits(std::string_view s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos; }

}  // namespace

// One Append waiting for (or being) the leader of a group commit; lives on the caller's stack.
struct Spool::PendingAppend {
  uint64_t seq = 0;
  uint32_t agent_id = 0;
  std::string_view payload;
  uint32_t check = 0;
  char header[kRecordHeaderBytes];
  uint64_t offset = 0;  // of the payload, set by the leader
  bool done = false;
  Status status;
};

Spool::Spool(SpoolOptions options, metrics::Registry* registry)
    : options_(std::move(options)),
      segment_bytes_(options_.segment_bytes != 0
                         ? options_.segment_bytes
                         : std::clamp<uint64_t>(options_.max_bytes / 16, uint64_t{64} << 10, uint64_t{64} << 20)),
      bytes_gauge_(registry->GetGauge("sonde_server_spool_bytes", "Bytes of accepted batches waiting for storage")),
      files_gauge_(registry->GetGauge("sonde_server_spool_files", "Accepted batches waiting for storage")),
      full_rejections_(registry->GetCounter("sonde_server_spool_full_total",
                                            "Batches refused (Nack) because the spool was at its bound")),
      quarantined_(registry->GetCounter("sonde_server_spool_quarantined_total",
                                        "Spooled batches moved aside (unreadable, or rejected by storage)")),
      replayed_(registry->GetCounter("sonde_server_spool_replayed_total",
                                     "Spooled batches found at startup and queued again")),
      corrupt_(registry->GetCounter("sonde_server_spool_corrupt_total",
                                    "Damaged spool records or torn segment tails found at startup and skipped")) {}

Spool::~Spool() {
  for (auto& [id, s] : segments_) {
    if (s->fd >= 0) ::close(s->fd);
  }
  if (head_fd_ >= 0) ::close(head_fd_);
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
  // The removal watermark: batches below it were stored (absent or damaged: replay everything).
  uint64_t head = 0;
  const std::string head_path = options_.dir + "/head";
  head_fd_ = ::open(head_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (head_fd_ < 0) return UnavailableError(fmt::format("open {}: {}", head_path, std::strerror(errno)));
  if (char h[kHeadBytes]; PreadFully(head_fd_, h, kHeadBytes, 0) && std::memcmp(h, kHeadMagic, 4) == 0 &&
                          GetU32(h + 12) == Crc32c(std::string_view(h, 12))) {
    head = GetU64(h + 4);
  }
  std::vector<std::pair<uint64_t, std::string>> segment_files;
  for (const auto& e : fs::directory_iterator(options_.dir, ec)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    const std::string_view n = name;
    if (n.rfind("free-", 0) == 0 || (n.size() > 4 && n.substr(n.size() - 4) == ".tmp")) {
      // The previous format's reusable files (dead content) and unfinished appends (never acked).
      fs::remove(e.path(), ec);
      continue;
    }
    if (n.size() > kSegmentSuffix.size() && n.substr(n.size() - kSegmentSuffix.size()) == kSegmentSuffix &&
        AllDigits(n.substr(0, n.size() - kSegmentSuffix.size())) && n.size() - kSegmentSuffix.size() <= 19) {
      segment_files.emplace_back(std::stoull(name.substr(0, n.size() - kSegmentSuffix.size())), e.path().string());
      continue;
    }
    // A batch file of the previous format: queued, read as before, deleted once stored.
    const std::string_view kSuffix = ".batch";
    if (n.size() != 20 + kSuffix.size() || n.substr(20) != kSuffix || !AllDigits(n.substr(0, 20))) continue;
    const uint64_t seq = std::stoull(name.substr(0, 20));
    const uint64_t size = e.file_size(ec);
    entries_[seq] = Committed{size, Clock::time_point::min(), nullptr, 0, 0, 0, 0};  // due at once
    committed_bytes_ += size;
    next_seq_ = std::max(next_seq_, seq + 1);
    replayed_->Inc();
  }
  if (ec) return UnavailableError(fmt::format("scan {}: {}", options_.dir, ec.message()));
  std::sort(segment_files.begin(), segment_files.end());
  uint64_t max_seq = 0;
  for (const auto& [id, path] : segment_files) {
    SONDE_RETURN_IF_ERROR(ReplaySegment(path, id, head, &max_seq));
    next_segment_id_ = std::max(next_segment_id_, id + 1);
  }
  next_seq_ = std::max({next_seq_, max_seq + 1, head});
  if (!entries_.empty()) {
    spdlog::info("spool: replaying {} batches ({} bytes) from {}", entries_.size(), committed_bytes_, options_.dir);
  }
  WriteHead();
  UpdateGauges();
  return Status::Ok();
}

Status Spool::ReplaySegment(const std::string& path, uint64_t id, uint64_t head, uint64_t* max_seq) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return UnavailableError(fmt::format("open {}: {}", path, std::strerror(errno)));
  auto owned = std::make_unique<Segment>();
  Segment* seg = owned.get();
  seg->id = id;
  seg->path = path;
  seg->fd = fd;
  segments_[id] = std::move(owned);
  std::string data;
  if (!ReadWholeFile(fd, &data)) return UnavailableError(fmt::format("read {}: {}", path, std::strerror(errno)));
  seg->file_bytes = data.size();
  seg->end_offset = kSegmentHeaderBytes;
  if (data.size() < kSegmentHeaderBytes || std::memcmp(data.data(), kSegmentMagic, 4) != 0 ||
      GetU32(data.data() + 20) != Crc32c(std::string_view(data.data(), 20))) {
    // Created but its first write never completed (nothing in it was acknowledged).
    if (!data.empty()) corrupt_->Inc();
    Release(seg);
    return Status::Ok();
  }
  seg->first_seq = GetU64(data.data() + 4);
  *max_seq = std::max(*max_seq, seg->first_seq);
  const std::string_view bytes = data;
  uint64_t last = 0;
  size_t off = kSegmentHeaderBytes;
  bool clean = false;
  bool tail_counted = false;
  // A header that can be the next one: valid, of this segment's generation, after the last batch.
  auto next_header = [&](size_t at, RecordHeader* h) {
    return at + kRecordHeaderBytes <= bytes.size() && DecodeRecordHeader(bytes.data() + at, h) &&
           h->seq >= seg->first_seq && h->seq > last;
  };
  while (off < bytes.size()) {
    RecordHeader h;
    if (next_header(off, &h)) {
      *max_seq = std::max(*max_seq, h.seq);
      if (h.kind == kKindEnd) {
        clean = true;
        break;
      }
      const size_t payload_at = off + kRecordHeaderBytes;
      if (payload_at + h.payload_bytes <= bytes.size()) {
        last = h.seq;
        // Batches below the head were stored: not replayed, so not read.
        if (h.seq >= head) {
          if (PayloadChecksum(bytes.substr(payload_at, h.payload_bytes)) == h.check) {
            const uint64_t record_bytes = kRecordHeaderBytes + h.payload_bytes;
            entries_[h.seq] = Committed{record_bytes, Clock::time_point::min(), seg, payload_at, h.payload_bytes,
                                        h.agent_id, h.check};
            ++seg->live;
            committed_bytes_ += record_bytes;
            replayed_->Inc();
          } else {
            SONDE_LOG_EVERY(error, "spool: batch {} in {} fails its checksum; skipped", h.seq, path);
            corrupt_->Inc();
          }
        }
        off = payload_at + h.payload_bytes;
        tail_counted = false;
        continue;
      }
      // The payload runs past the end of the file: a torn tail.
    }
    // Not a valid next record: damaged bytes or a torn tail. Look for the next valid header.
    corrupt_->Inc();
    tail_counted = true;
    size_t at = off + 1;
    bool found = false;
    while ((at = bytes.find(std::string_view(kRecordMagic, 4), at)) != std::string_view::npos) {
      RecordHeader next;
      if (next_header(at, &next)) {
        found = true;
        break;
      }
      ++at;
    }
    if (!found) break;
    SONDE_LOG_EVERY(error, "spool: damaged bytes at offset {} of {}; skipped to offset {}", off, path, at);
    off = at;
  }
  if (!clean) {
    // No end record: the last group's write was torn by a crash (its batches were never acked).
    if (!tail_counted) corrupt_->Inc();
    SONDE_LOG_EVERY(warn, "spool: {} ends without an end record (torn by a crash)", path);
  }
  seg->end_offset = off;
  if (seg->live == 0) Release(seg);
  return Status::Ok();
}

void Spool::Release(Segment* seg) {
  if (seg == active_) return;
  uint64_t free_bytes = 0;
  for (const Segment* f : free_segments_) free_bytes += f->file_bytes;
  if (!seg->broken && free_segments_.size() < kMaxFreeSegments && seg->file_bytes <= 2 * segment_bytes_ &&
      free_bytes + seg->file_bytes <= options_.max_bytes / 8) {
    free_segments_.push_back(seg);
    return;
  }
  if (seg->fd >= 0) ::close(seg->fd);
  ::unlink(seg->path.c_str());
  segments_.erase(seg->id);
}

void Spool::UpdateGauges() {
  bytes_gauge_->Set(static_cast<int64_t>(committed_bytes_));
  files_gauge_->Set(static_cast<int64_t>(entries_.size()));
}

void Spool::WriteHead() {
  uint64_t head = next_seq_;
  if (!entries_.empty()) head = std::min(head, entries_.begin()->first);
  if (!in_flight_.empty()) head = std::min(head, *in_flight_.begin());
  if (head == written_head_ || head_fd_ < 0) return;
  char h[kHeadBytes];
  std::memcpy(h, kHeadMagic, 4);
  PutU64(head, h + 4);
  PutU32(Crc32c(std::string_view(h, 12)), h + 12);
  // No fsync: after a power loss an older head replays stored batches again (never loses any).
  if (::pwrite(head_fd_, h, kHeadBytes, 0) == static_cast<ssize_t>(kHeadBytes)) written_head_ = head;
}

StatusOr<uint64_t> Spool::Append(uint32_t agent_id, const agent::v1::RecordBatch& records) {
  std::string wire;
  if (!records.SerializeToString(&wire)) return InternalError("cannot serialize batch");
  return Append(agent_id, wire);
}

StatusOr<Spool::Segment*> Spool::NewSegment() {
  uint64_t id;
  {
    std::lock_guard lock(mu_);
    id = next_segment_id_++;
  }
  const std::string path = fmt::format("{}/{:019d}{}", options_.dir, id, kSegmentSuffix);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return UnavailableError(fmt::format("open {}: {}", path, std::strerror(errno)));
  // The name must survive a crash too (once per segment, not per batch).
  if (options_.fsync && ::fsync(dir_fd_) != 0) {
    Status s = UnavailableError(fmt::format("fsync {}: {}", options_.dir, std::strerror(errno)));
    ::close(fd);
    ::unlink(path.c_str());
    return s;
  }
  auto seg = std::make_unique<Segment>();
  seg->id = id;
  seg->path = path;
  seg->fd = fd;
  Segment* raw = seg.get();
  std::lock_guard lock(mu_);
  segments_[id] = std::move(seg);
  return raw;
}

Status Spool::WriteGroup(std::span<PendingAppend* const> group, Segment* seg, bool fresh_header, uint64_t offset) {
  std::vector<iovec> iov;
  iov.reserve(2 * group.size() + 2);
  char seg_header[kSegmentHeaderBytes];
  uint64_t at = offset;
  if (fresh_header) {
    std::memcpy(seg_header, kSegmentMagic, 4);
    PutU64(seg->first_seq, seg_header + 4);
    std::memset(seg_header + 12, 0, 8);
    PutU32(Crc32c(std::string_view(seg_header, 20)), seg_header + 20);
    iov.push_back({seg_header, kSegmentHeaderBytes});
    at += kSegmentHeaderBytes;
  }
  for (PendingAppend* p : group) {
    iov.push_back({p->header, kRecordHeaderBytes});
    iov.push_back({const_cast<char*>(p->payload.data()), p->payload.size()});
    p->offset = at + kRecordHeaderBytes;
    at += kRecordHeaderBytes + p->payload.size();
  }
  // The end record marks where the group ends; the next group is written over it.
  char end[kRecordHeaderBytes];
  EncodeRecordHeader(kKindEnd, group.back()->seq + 1, 0, 0, 0, end);
  iov.push_back({end, kRecordHeaderBytes});
  SONDE_RETURN_IF_ERROR(PwritevAll(seg->fd, iov, offset, seg->path));
  // fdatasync: in a reused segment the blocks exist and the size rarely changes, so this flushes
  // data pages without a metadata journal commit.
  if (options_.fsync && ::fdatasync(seg->fd) != 0) {
    return UnavailableError(fmt::format("fsync {}: {}", seg->path, std::strerror(errno)));
  }
  return Status::Ok();
}

StatusOr<uint64_t> Spool::Append(uint32_t agent_id, std::string_view records_wire) {
  if (records_wire.size() > UINT32_MAX - kRecordHeaderBytes) {
    return InvalidArgumentError("batch too large for the spool");
  }
  PendingAppend me;
  me.agent_id = agent_id;
  me.payload = records_wire;
  me.check = PayloadChecksum(records_wire);  // outside the lock
  const uint64_t record_bytes = kRecordHeaderBytes + records_wire.size();

  std::unique_lock lock(mu_);
  if (committed_bytes_ + reserved_bytes_ + record_bytes > options_.max_bytes) {
    full_rejections_->Inc();
    return ResourceExhaustedError(fmt::format("spool full ({} of {} bytes)", committed_bytes_ + reserved_bytes_,
                                              options_.max_bytes));
  }
  reserved_bytes_ += record_bytes;
  me.seq = next_seq_++;
  in_flight_.insert(me.seq);
  EncodeRecordHeader(kKindBatch, me.seq, agent_id, static_cast<uint32_t>(records_wire.size()), me.check, me.header);
  pending_.push_back(&me);
  while (!me.done) {
    if (writing_) {
      write_cv_.wait(lock);
      continue;
    }
    // Lead a group: everything pending, in sequence order, one write and one fdatasync.
    writing_ = true;
    std::vector<PendingAppend*> group;
    group.swap(pending_);
    uint64_t group_bytes = kRecordHeaderBytes;  // the end record
    for (const PendingAppend* p : group) group_bytes += kRecordHeaderBytes + p->payload.size();
    Segment* seg = active_;
    bool fresh = false;
    const bool roll = seg == nullptr || seg->broken ||
                      (seg->end_offset > kSegmentHeaderBytes && seg->end_offset + group_bytes > segment_bytes_);
    if (roll) {
      Segment* old = active_;
      active_ = nullptr;
      if (old != nullptr && old->live == 0) Release(old);
      seg = nullptr;
      if (!free_segments_.empty()) {
        seg = free_segments_.back();
        free_segments_.pop_back();
      }
      fresh = true;
    }
    lock.unlock();
    Status s;
    if (seg == nullptr) {
      auto created = NewSegment();
      if (created.ok()) {
        seg = *created;
      } else {
        s = created.status();
      }
    }
    uint64_t offset = 0;
    if (s.ok()) {
      if (fresh) seg->first_seq = group.front()->seq;
      offset = fresh ? 0 : seg->end_offset;
      s = WriteGroup(group, seg, fresh, offset);
    }
    lock.lock();
    if (seg != nullptr) {
      active_ = seg;
      if (s.ok()) {
        const uint64_t end = group.back()->offset + group.back()->payload.size();
        seg->end_offset = end;
        seg->file_bytes = std::max(seg->file_bytes, end + kRecordHeaderBytes);
        const auto now = Clock::now();
        for (const PendingAppend* p : group) {
          const uint64_t bytes = kRecordHeaderBytes + p->payload.size();
          entries_[p->seq] = Committed{bytes, now, seg, p->offset, static_cast<uint32_t>(p->payload.size()),
                                       p->agent_id, p->check};
          committed_bytes_ += bytes;
          ++seg->live;
        }
      } else {
        // Whatever reached the disk is never appended after; the segment goes once empty.
        seg->broken = true;
        active_ = nullptr;
        if (seg->live == 0) Release(seg);
      }
    }
    for (PendingAppend* p : group) {
      p->done = true;
      p->status = s;
      reserved_bytes_ -= kRecordHeaderBytes + p->payload.size();
      in_flight_.erase(p->seq);
    }
    writing_ = false;
    write_cv_.notify_all();
    if (s.ok()) {
      UpdateGauges();
      cv_.notify_all();
    }
  }
  if (!me.status.ok()) return me.status;
  return me.seq;
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

bool Spool::ReadPayload(uint64_t seq, const Committed& c, std::string* payload, uint32_t* agent_id) const {
  if (c.segment != nullptr) {
    payload->resize(c.payload_bytes);
    *agent_id = c.agent_id;
    return PreadFully(c.segment->fd, payload->data(), payload->size(), c.offset) &&
           PayloadChecksum(*payload) == c.check;
  }
  // The previous format. Header and payload read separately so the payload lands in its own string.
  const std::string path = PathFor(seq);
  char header[kLegacyHeaderBytes];
  bool ok = false;
  if (int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
    ok = c.bytes >= kLegacyHeaderBytes && ReadFully(fd, header, kLegacyHeaderBytes) &&
         std::memcmp(header, kLegacyMagic, 4) == 0 && GetU32(header + 8) == c.bytes - kLegacyHeaderBytes;
    if (ok) {
      payload->resize(c.bytes - kLegacyHeaderBytes);
      ok = ReadFully(fd, payload->data(), payload->size());
      *agent_id = GetU32(header + 4);
    }
    ::close(fd);
  }
  return ok;
}

std::vector<SpoolEntry> Spool::ReadOldest(size_t max_files, uint64_t max_bytes) {
  std::vector<std::pair<uint64_t, Committed>> want;
  {
    std::lock_guard lock(mu_);
    uint64_t total = 0;
    for (const auto& [seq, c] : entries_) {
      if (want.size() >= max_files || (!want.empty() && total + c.bytes > max_bytes)) break;
      want.emplace_back(seq, c);
      total += c.bytes;
    }
  }
  // Segments stay open while they hold a batch not removed; only this (the drainer's) thread removes.
  std::vector<SpoolEntry> out;
  std::vector<uint64_t> bad;
  storage::RecordBatchWire split;
  for (const auto& [seq, c] : want) {
    std::string payload;
    uint32_t agent_id = 0;
    bool ok = ReadPayload(seq, c, &payload, &agent_id);
    SpoolEntry e;
    e.seq = seq;
    e.bytes = c.bytes;
    // Only the envelope is read: records stay wire bytes until the RowBinary encoder; the few
    // ProcessInfo records are parsed for the tagger.
    ok = ok && storage::SplitRecordBatch(payload, &split);
    for (size_t i = 0; ok && i < split.processes.size(); ++i) {
      ok = e.batch.records.add_processes()->ParseFromArray(split.processes[i].data(),
                                                           static_cast<int>(split.processes[i].size()));
    }
    if (!ok) {
      SONDE_LOG_EVERY(error, "spool: batch {} is unreadable; moving it to quarantine", seq);
      bad.push_back(seq);
      continue;
    }
    e.batch.agent_id = agent_id;
    e.records = split.RecordCount() + split.processes.size();
    e.batch.wire = std::move(payload);
    out.push_back(std::move(e));
  }
  if (!bad.empty()) Quarantine(bad);
  return out;
}

void Spool::RemoveLocked(uint64_t seq, bool quarantine) {
  auto it = entries_.find(seq);
  if (it == entries_.end()) return;
  const Committed& c = it->second;
  std::error_code ec;
  const fs::path qdir = fs::path(options_.dir) / "quarantine";
  if (c.segment == nullptr) {
    if (quarantine) {
      fs::create_directories(qdir, ec);
      fs::rename(PathFor(seq), qdir / fs::path(PathFor(seq)).filename(), ec);
    }
    if (!quarantine || ec) fs::remove(PathFor(seq), ec);
  } else {
    if (quarantine) {
      // Kept for an operator in the previous one-file format (whatever bytes are readable).
      std::string payload(c.payload_bytes, '\0');
      if (!PreadFully(c.segment->fd, payload.data(), payload.size(), c.offset)) payload.clear();
      char header[kLegacyHeaderBytes];
      std::memcpy(header, kLegacyMagic, 4);
      PutU32(c.agent_id, header + 4);
      PutU32(static_cast<uint32_t>(payload.size()), header + 8);
      fs::create_directories(qdir, ec);
      const std::string qpath = (qdir / fs::path(PathFor(seq)).filename()).string();
      if (int fd = ::open(qpath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644); fd >= 0) {
        std::vector<iovec> iov = {{header, kLegacyHeaderBytes}, {payload.data(), payload.size()}};
        PwritevAll(fd, iov, 0, qpath).IgnoreError();
        ::close(fd);
      }
    }
    Segment* seg = c.segment;
    if (--seg->live == 0) Release(seg);
  }
  if (quarantine) quarantined_->Inc();
  committed_bytes_ -= c.bytes;
  entries_.erase(it);
}

void Spool::Remove(std::span<const uint64_t> seqs) {
  std::lock_guard lock(mu_);
  for (uint64_t seq : seqs) RemoveLocked(seq, /*quarantine=*/false);
  WriteHead();
  UpdateGauges();
}

void Spool::Quarantine(std::span<const uint64_t> seqs) {
  std::lock_guard lock(mu_);
  for (uint64_t seq : seqs) RemoveLocked(seq, /*quarantine=*/true);
  WriteHead();
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

size_t Spool::segment_files() const {
  std::lock_guard lock(mu_);
  return segments_.size();
}

}  // namespace sonde::server::ingest
