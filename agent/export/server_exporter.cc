// Batching, sending and retrying records to sonde-server.
#include "agent/export/server_exporter.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "agent/export/utf8_sanitizer.h"
#include "common/log/log.h"
#include "common/wire/frame_codec.h"

namespace sonde::agent::exporting {

namespace {

using Clock = std::chrono::steady_clock;

StatusOr<int> Connect(const std::string& host, uint16_t port, int timeout_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) return UnavailableError(fmt::format("resolve {}: {}", host, gai_strerror(rc)));
  Status last = UnavailableError("no address");
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int r = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (r < 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, timeout_ms) == 1) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        r = err == 0 ? 0 : -1;
        errno = err;
      } else {
        errno = ETIMEDOUT;
      }
    }
    if (r == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      freeaddrinfo(res);
      return fd;
    }
    last = UnavailableError(fmt::format("connect {}:{}: {}", host, port, std::strerror(errno)));
    ::close(fd);
  }
  freeaddrinfo(res);
  return last;
}

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

}  // namespace

std::string EncodeBatchFrame(uint64_t batch_seq, std::string_view records) {
  // Splices the already serialized RecordBatch into AgentFrame{batch: Batch{batch_seq, records}}
  // without parsing it again: a length-delimited field is tag, length, bytes.
  std::string inner;
  inner.push_back(0x08);  // Batch.batch_seq: field 1, varint
  AppendVarint(&inner, batch_seq);
  inner.push_back(0x12);  // Batch.records: field 2, length-delimited
  AppendVarint(&inner, records.size());
  std::string out;
  out.reserve(inner.size() + records.size() + 12);
  out.push_back(0x1a);  // AgentFrame.batch: field 3, length-delimited
  AppendVarint(&out, inner.size() + records.size());
  out += inner;
  out += records;
  return out;
}

ServerExporter::ServerExporter(ServerExporterConfig config, metrics::Registry* registry)
    : config_(std::move(config)) {
  records_enqueued_ = registry->GetCounter("sonde_agent_export_records_total",
                                           "Records handed to the exporter");
  records_acked_ = registry->GetCounter("sonde_agent_export_records_acked_total",
                                        "Records acknowledged by the server");
  records_dropped_ = registry->GetCounter("sonde_agent_export_records_dropped_total",
                                          "Records dropped because the send queue was full",
                                          {{"reason", "queue_full"}});
  batches_sent_ = registry->GetCounter("sonde_agent_export_batches_sent_total", "Batches sent");
  invalid_utf8_fields_ = registry->GetCounter(
      "sonde_agent_export_invalid_utf8_fields_total",
      "String fields whose non-UTF-8 bytes were replaced by U+FFFD before sending (the server refuses them)");
  batches_nacked_ = registry->GetCounter("sonde_agent_export_batches_nacked_total",
                                         "Batches refused by the server (push back)");
  connect_failures_ = registry->GetCounter("sonde_agent_export_connect_failures_total",
                                           "Failed connection attempts to the server");
  queue_bytes_gauge_ = registry->GetGauge("sonde_agent_export_queue_bytes",
                                          "Serialized bytes waiting for acknowledgement");
  connected_gauge_ = registry->GetGauge("sonde_agent_export_connected", "1 while connected");
  current_started_ = Clock::now();
}

ServerExporter::~ServerExporter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (sender_.joinable()) sender_.join();
}

void ServerExporter::Start() { sender_ = std::thread([this] { SenderLoop(); }); }

bool ServerExporter::Stop(std::chrono::milliseconds drain) {
  Flush();
  bool drained = WaitAcked(drain);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (sender_.joinable()) sender_.join();
  return drained;
}

template <typename Fn>
void ServerExporter::Append(Fn&& add) {
  std::lock_guard lock(mu_);
  if (current_count_ == 0) current_started_ = Clock::now();
  add(current_);
  ++current_count_;
  records_enqueued_->Inc();
  if (current_count_ >= config_.batch_max_records) {
    SealLocked();
    cv_.notify_all();
  }
}

void ServerExporter::Emit(v1::L7RequestLog&& r) {
  if (const int n = SanitizeStringFields(&r); n > 0) {
    invalid_utf8_fields_->Inc(static_cast<uint64_t>(n));
    SONDE_LOG_EVERY(warn, "L7 record with {} non-UTF-8 field(s) ({}): invalid bytes replaced by U+FFFD", n,
                    common::v1::L7Protocol_Name(r.l7_protocol()));
  }
  Append([&](v1::RecordBatch& b) { *b.add_l7_request_logs() = std::move(r); });
}
void ServerExporter::Emit(v1::L4FlowLog&& r) {
  if (const int n = SanitizeStringFields(&r); n > 0) invalid_utf8_fields_->Inc(static_cast<uint64_t>(n));
  Append([&](v1::RecordBatch& b) { *b.add_l4_flow_logs() = std::move(r); });
}
void ServerExporter::Emit(v1::NetworkMetric&& r) {
  if (const int n = SanitizeStringFields(&r); n > 0) invalid_utf8_fields_->Inc(static_cast<uint64_t>(n));
  Append([&](v1::RecordBatch& b) { *b.add_network_metrics() = std::move(r); });
}
void ServerExporter::Emit(v1::ApplicationMetric&& r) {
  if (const int n = SanitizeStringFields(&r); n > 0) invalid_utf8_fields_->Inc(static_cast<uint64_t>(n));
  Append([&](v1::RecordBatch& b) { *b.add_application_metrics() = std::move(r); });
}
void ServerExporter::Emit(v1::ProcessInfo&& r) {
  if (const int n = SanitizeStringFields(&r); n > 0) invalid_utf8_fields_->Inc(static_cast<uint64_t>(n));
  Append([&](v1::RecordBatch& b) { *b.add_processes() = std::move(r); });
}

void ServerExporter::Flush() {
  {
    std::lock_guard lock(mu_);
    SealLocked();
  }
  cv_.notify_all();
}

void ServerExporter::SealLocked() {
  if (current_count_ == 0) return;
  PendingBatch b;
  b.records = std::make_shared<const std::string>(current_.SerializeAsString());
  b.record_count = current_count_;
  current_.Clear();
  current_count_ = 0;
  if (queue_bytes_ + b.records->size() > config_.queue_max_bytes) {
    records_dropped_->Inc(b.record_count);
    SONDE_LOG_EVERY(warn, "export queue full ({} bytes): dropped a batch of {} records",
                    queue_bytes_, b.record_count);
    return;
  }
  queue_bytes_ += b.records->size();
  queue_bytes_gauge_->Set(static_cast<int64_t>(queue_bytes_));
  queue_.push_back(std::move(b));
}

bool ServerExporter::WaitAcked(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return queue_.empty() && current_count_ == 0; });
}

void ServerExporter::SenderLoop() {
  uint32_t backoff_ms = 100;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    auto fd = Connect(config_.server_host, config_.server_port, 5000);
    if (!fd.ok()) {
      connect_failures_->Inc();
      SONDE_LOG_EVERY(warn, "cannot reach sonde-server: {}", fd.status().message());
    } else {
      Status s = RunSession(*fd);
      ::close(*fd);
      connected_.store(false);
      connected_gauge_->Set(0);
      if (s.code() == StatusCode::kCancelled) return;
      SONDE_LOG_EVERY(warn, "server session ended: {}", s.ToString());
      backoff_ms = 100;
    }
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(backoff_ms), [this] { return stopping_; });
    if (stopping_) return;
    backoff_ms = std::min(backoff_ms * 2, config_.reconnect_max_backoff_ms);
  }
}

Status ServerExporter::RunSession(int fd) {
  const int timeout = config_.io_timeout_ms;
  control::v1::AgentFrame reg;
  auto* r = reg.mutable_register_();
  r->set_protocol_version(1);
  r->set_agent_version("0.1.0");
  r->set_hostname(config_.hostname);
  r->set_boot_id(config_.boot_id);
  r->set_token(config_.token);
  *r->mutable_host() = config_.host;
  r->mutable_host()->set_hostname(config_.hostname);
  SONDE_RETURN_IF_ERROR(wire::WriteFrame(fd, reg.SerializeAsString(), false, timeout));
  SONDE_ASSIGN_OR_RETURN(std::string reply_bytes, wire::ReadFrame(fd, timeout));
  control::v1::ServerFrame reply;
  if (!reply.ParseFromString(reply_bytes)) return DataLossError("unreadable RegisterReply");
  if (reply.has_error()) return PermissionDeniedError("server refused registration: " + reply.error().message());
  if (!reply.has_register_reply()) return DataLossError("expected RegisterReply");
  agent_id_.store(reply.register_reply().agent_id());
  connected_.store(true);
  connected_gauge_->Set(1);
  spdlog::info("connected to sonde-server {}:{} as agent {}", config_.server_host,
               config_.server_port, agent_id_.load());

  auto last_heartbeat = Clock::now();
  for (;;) {
    PendingBatch batch;
    uint64_t seq = 0;
    bool have_batch = false;
    bool heartbeat_due = false;
    {
      std::unique_lock lock(mu_);
      auto deadline = last_heartbeat + std::chrono::milliseconds(config_.heartbeat_interval_ms);
      cv_.wait_until(lock, std::min(deadline, current_started_ + std::chrono::milliseconds(
                                                                   config_.batch_max_delay_ms)),
                     [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return CancelledError("stopping");
      if (queue_.empty() && current_count_ > 0 &&
          Clock::now() - current_started_ >= std::chrono::milliseconds(config_.batch_max_delay_ms)) {
        SealLocked();
      }
      if (!queue_.empty()) {
        batch = queue_.front();  // shares the bytes: the batch stays queued until acknowledged
        seq = next_seq_++;
        have_batch = true;
      } else {
        heartbeat_due = Clock::now() >= deadline;
      }
    }
    if (heartbeat_due) {
      control::v1::AgentFrame hb;
      hb.mutable_heartbeat()->set_time_us(std::chrono::duration_cast<std::chrono::microseconds>(
                                               std::chrono::system_clock::now().time_since_epoch())
                                               .count());
      hb.mutable_heartbeat()->set_records_sent(records_acked_->Value());
      hb.mutable_heartbeat()->set_records_dropped(records_dropped_->Value());
      SONDE_RETURN_IF_ERROR(wire::WriteFrame(fd, hb.SerializeAsString(), false, timeout));
      SONDE_ASSIGN_OR_RETURN(std::string hb_reply, wire::ReadFrame(fd, timeout));
      last_heartbeat = Clock::now();
      continue;
    }
    if (!have_batch) continue;

    SONDE_RETURN_IF_ERROR(
        wire::WriteFrame(fd, EncodeBatchFrame(seq, *batch.records), config_.compress, timeout));
    batches_sent_->Inc();
    SONDE_ASSIGN_OR_RETURN(std::string ack_bytes, wire::ReadFrame(fd, timeout));
    control::v1::ServerFrame ack;
    if (!ack.ParseFromString(ack_bytes)) return DataLossError("unreadable reply to a batch");
    if (ack.has_ack() && ack.ack().batch_seq() == seq) {
      std::lock_guard lock(mu_);
      queue_bytes_ -= queue_.front().records->size();
      queue_bytes_gauge_->Set(static_cast<int64_t>(queue_bytes_));
      records_acked_->Inc(queue_.front().record_count);
      queue_.pop_front();
      cv_.notify_all();
      continue;
    }
    if (ack.has_nack()) {
      batches_nacked_->Inc();
      if (ack.nack().permanent()) {
        SONDE_LOG_EVERY(error, "server rejected a batch permanently: {}", ack.nack().reason());
        std::lock_guard lock(mu_);
        queue_bytes_ -= queue_.front().records->size();
        records_dropped_->Inc(queue_.front().record_count);
        queue_.pop_front();
        cv_.notify_all();
        continue;
      }
      uint32_t wait_ms = std::max<uint32_t>(ack.nack().retry_after_ms(), 50);
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [this] { return stopping_; });
      continue;
    }
    if (ack.has_error()) return UnavailableError("server closed the session: " + ack.error().message());
    return DataLossError("unexpected reply to a batch");
  }
}

}  // namespace sonde::agent::exporting
