// IngestServer: accept loop, per-connection session, frame validation with per-reason counters.
#include "server/ingest/ingest_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/log/log.h"
#include "common/wire/frame_codec.h"
#include "server/ingest/agent_frame_reader.h"
#include "server/ingest/payload_decoder.h"

namespace sonde::server::ingest {

namespace {

using Clock = std::chrono::steady_clock;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

enum class ReadResult { kOk, kClosed, kTimeout, kTruncated, kError };

// Reads exactly n bytes. kClosed only when the peer closed before the first byte.
ReadResult ReadExact(int fd, char* buf, size_t n, int timeout_ms, const std::atomic<bool>& stopping) {
  size_t got = 0;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (got < n) {
    if (stopping.load()) return ReadResult::kError;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return got == 0 ? ReadResult::kTimeout : ReadResult::kTruncated;
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 500)));
    if (rc < 0 && errno != EINTR) return ReadResult::kError;
    if (rc <= 0) continue;
    ssize_t r = ::recv(fd, buf + got, n - got, MSG_DONTWAIT);
    if (r > 0) {
      got += static_cast<size_t>(r);
    } else if (r == 0) {
      return got == 0 ? ReadResult::kClosed : ReadResult::kTruncated;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return got == 0 ? ReadResult::kError : ReadResult::kTruncated;
    }
  }
  return ReadResult::kOk;
}

std::string PeerName(const sockaddr_storage& ss) {
  char host[NI_MAXHOST] = {0};
  char port[NI_MAXSERV] = {0};
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&ss), sizeof(ss), host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "?";
  }
  return ss.ss_family == AF_INET6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

}  // namespace

IngestServer::IngestServer(IngestServerOptions options, Spool* spool, AgentRegistry* agents,
                           metrics::Registry* registry)
    : options_(std::move(options)),
      spool_(spool),
      agents_(agents),
      registry_(registry),
      connections_total_(registry->GetCounter("sonde_server_ingest_connections_total", "Agent connections accepted")),
      connections_open_(registry->GetGauge("sonde_server_ingest_connections_open", "Agent connections open")),
      agents_connected_(registry->GetGauge("sonde_server_agents_connected", "Registered agents with an open session")),
      batches_acked_(registry->GetCounter("sonde_server_ingest_batches_total", "Batches answered",
                                          {{"result", "ack"}})),
      batches_nacked_(registry->GetCounter("sonde_server_ingest_batches_total", "Batches answered",
                                           {{"result", "nack"}})),
      heartbeats_(registry->GetCounter("sonde_server_ingest_heartbeats_total", "Heartbeats received")) {
  // Pre-create the reasons so /metrics shows zeros before anything goes wrong.
  for (const char* reason : {"bad_magic", "bad_flags", "oversized", "truncated", "bad_payload", "bad_protobuf",
                             "protocol", "unauthenticated", "idle_timeout", "too_many_connections"}) {
    registry_->GetCounter("sonde_server_frames_rejected_total", "Frames or sessions rejected, by reason",
                          {{"reason", reason}});
  }
}

IngestServer::~IngestServer() { Stop(); }

Status IngestServer::Start() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(options_.port);
  const char* host = options_.listen_host.empty() ? nullptr : options_.listen_host.c_str();
  int rc = ::getaddrinfo(host, port.c_str(), &hints, &res);
  if (rc != 0) return InvalidArgumentError(fmt::format("listen address {}: {}", options_.listen_host, gai_strerror(rc)));
  Status last = UnavailableError("no usable listen address");
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 256) != 0) {
      last = UnavailableError(fmt::format("bind {}:{}: {}", options_.listen_host, options_.port, std::strerror(errno)));
      ::close(fd);
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    listen_fd_ = fd;
    break;
  }
  ::freeaddrinfo(res);
  if (listen_fd_ < 0) return last;
  spdlog::info("ingest listening on {}:{}", options_.listen_host, port_);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return Status::Ok();
}

void IngestServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (accept_thread_.joinable()) accept_thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  {
    std::lock_guard lock(mu_);
    for (auto& c : connections_) ::shutdown(c->fd, SHUT_RDWR);
  }
  ReapFinished(/*all=*/true);
}

uint64_t IngestServer::connections_open() const {
  std::lock_guard lock(mu_);
  return connections_.size();
}

void IngestServer::ReapFinished(bool all) {
  std::list<std::unique_ptr<Connection>> finished;
  {
    std::lock_guard lock(mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (all || (*it)->done.load()) {
        finished.push_back(std::move(*it));
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
    connections_open_->Set(static_cast<int64_t>(connections_.size()));
  }
  for (auto& c : finished) {
    if (c->thread.joinable()) c->thread.join();
    ::close(c->fd);
  }
}

void IngestServer::AcceptLoop() {
  while (!stopping_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, 200);
    ReapFinished(/*all=*/false);
    if (rc <= 0) continue;
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    connections_total_->Inc();
    std::lock_guard lock(mu_);
    if (connections_.size() >= options_.max_connections) {
      Reject(fd, "too_many_connections", "server has too many connections; retry later");
      ::close(fd);
      continue;
    }
    auto conn = std::make_unique<Connection>();
    conn->fd = fd;
    conn->remote = PeerName(ss);
    Connection* raw = conn.get();
    connections_.push_back(std::move(conn));
    connections_open_->Set(static_cast<int64_t>(connections_.size()));
    raw->thread = std::thread([this, raw] {
      Serve(raw);
      raw->done.store(true);
    });
  }
}

void IngestServer::Reject(int fd, const std::string& reason, const std::string& message) {
  registry_->GetCounter("sonde_server_frames_rejected_total", "Frames or sessions rejected, by reason",
                        {{"reason", reason}})
      ->Inc();
  control::v1::ServerFrame f;
  f.mutable_error()->set_message(message);
  // Best effort and short: the peer may be gone or not reading.
  wire::WriteFrame(fd, f.SerializeAsString(), false, 1000).IgnoreError();
}

void IngestServer::Serve(Connection* conn) {
  const int fd = conn->fd;
  uint32_t agent_id = 0;
  bool registered = false;
  std::string reject_reason;
  std::string reject_message;

  AgentFrameView frame;    // reused: its buffers keep their capacity across frames
  PayloadDecoder decoder;  // reused: its zstd context and buffer too
  auto reply = [&](const control::v1::ServerFrame& f) {
    return wire::WriteFrame(fd, f.SerializeAsString(), false, options_.io_timeout_ms);
  };

  while (!stopping_.load()) {
    // 1. One frame, validated step by step so each failure has its own reason.
    uint8_t header[wire::kHeaderBytes];
    ReadResult rr = ReadExact(fd, reinterpret_cast<char*>(header), sizeof(header),
                              options_.idle_timeout_ms, stopping_);
    if (rr == ReadResult::kClosed || rr == ReadResult::kError) break;
    if (rr == ReadResult::kTimeout) {
      reject_reason = "idle_timeout";
      reject_message = fmt::format("no frame for {} ms", options_.idle_timeout_ms);
      break;
    }
    if (rr == ReadResult::kTruncated) {
      reject_reason = "truncated";
      reject_message = "connection ended inside a frame header";
      break;
    }
    if (std::memcmp(header, "SND1", 4) != 0) {
      reject_reason = "bad_magic";
      reject_message = "bad frame magic (expected a Sonde agent speaking SND1 frames)";
      break;
    }
    auto h = wire::DecodeHeader(header);
    if (!h.ok()) {
      reject_reason = h.status().code() == StatusCode::kOutOfRange ? "oversized" : "bad_flags";
      reject_message = h.status().message();
      break;
    }
    if (h->payload_bytes > options_.max_frame_bytes) {
      reject_reason = "oversized";
      reject_message = fmt::format("frame of {} bytes exceeds the server limit of {}", h->payload_bytes,
                                   options_.max_frame_bytes);
      break;
    }
    std::string body(h->payload_bytes, '\0');
    if (!body.empty()) {
      rr = ReadExact(fd, body.data(), body.size(), options_.io_timeout_ms, stopping_);
      if (rr == ReadResult::kError && stopping_.load()) break;
      if (rr != ReadResult::kOk) {
        reject_reason = "truncated";
        reject_message = "frame body truncated";
        break;
      }
    }
    auto payload = decoder.Decode(*h, body);
    if (!payload.ok()) {
      reject_reason = "bad_payload";
      reject_message = payload.status().message();
      break;
    }
    // Register/Heartbeat are parsed; a Batch's records are checked as protobuf would check them
    // but stay wire bytes (they are spooled as received and encoded from those bytes).
    if (!ReadAgentFrame(*payload, &frame)) {
      reject_reason = "bad_protobuf";
      reject_message = "frame payload is not a sonde.control.v1.AgentFrame";
      break;
    }

    // 2. The session state machine: Register first, then Batch/Heartbeat.
    control::v1::ServerFrame out;
    if (frame.body == AgentFrameView::Body::kRegister) {
      const auto& reg = frame.register_;
      if (registered) {
        reject_reason = "protocol";
        reject_message = "Register sent twice";
        break;
      }
      if (reg.protocol_version() > 1) {
        reject_reason = "protocol";
        reject_message = fmt::format("protocol version {} not supported (server speaks 1)", reg.protocol_version());
        break;
      }
      if (!options_.tokens.empty()) {
        bool ok = false;
        for (const auto& t : options_.tokens) ok |= (t == reg.token());
        if (!ok) {
          reject_reason = "unauthenticated";
          reject_message = "invalid ingest token";
          break;
        }
      }
      agent_id = agents_->Register(reg, conn->remote);
      registered = true;
      agents_connected_->Set(agents_->connected());
      spdlog::info("agent {} registered: host={} boot_id={} version={} from {}", agent_id, reg.hostname(),
                   reg.boot_id(), reg.agent_version(), conn->remote);
      auto* rep = out.mutable_register_reply();
      rep->set_agent_id(agent_id);
      *rep->mutable_config() = options_.agent_config;
    } else if (!registered) {
      reject_reason = "protocol";
      reject_message = "the first frame must be Register";
      break;
    } else if (frame.body == AgentFrameView::Body::kHeartbeat) {
      heartbeats_->Inc();
      agents_->Heartbeat(agent_id, frame.heartbeat);
      out.mutable_heartbeat_reply()->set_server_time_us(static_cast<uint64_t>(NowUs()));
    } else if (frame.body == AgentFrameView::Body::kBatch) {
      const uint64_t records = frame.RecordCount();
      auto seq = records == 0 ? StatusOr<uint64_t>(uint64_t{0}) : spool_->Append(agent_id, frame.records);
      if (seq.ok()) {
        batches_acked_->Inc();
        agents_->Batch(agent_id, records);
        auto received = [&](const char* type, size_t n) {
          if (n > 0) {
            registry_->GetCounter("sonde_server_records_received_total", "Records received from agents",
                                  {{"type", type}})
                ->Inc(static_cast<uint64_t>(n));
          }
        };
        received("l7_request_log", frame.split.records[storage::kL7RequestLogs].size());
        received("l4_flow_log", frame.split.records[storage::kL4FlowLogs].size());
        received("network_metric", frame.split.records[storage::kNetworkMetrics].size());
        received("application_metric", frame.split.records[storage::kApplicationMetrics].size());
        received("process", frame.split.processes.size());
        out.mutable_ack()->set_batch_seq(frame.batch_seq);
      } else {
        batches_nacked_->Inc();
        SONDE_LOG_EVERY(warn, "nack batch from agent {}: {}", agent_id, seq.status().ToString());
        auto* nack = out.mutable_nack();
        nack->set_batch_seq(frame.batch_seq);
        nack->set_reason(seq.status().ToString());
        nack->set_retry_after_ms(options_.nack_retry_after_ms);
      }
    } else {
      reject_reason = "protocol";
      reject_message = "empty or unknown AgentFrame";
      break;
    }
    if (!reply(out).ok()) break;
  }

  if (!reject_reason.empty()) {
    SONDE_LOG_EVERY(warn, "closing agent connection {}: {} ({})", conn->remote, reject_message, reject_reason);
    Reject(fd, reject_reason, reject_message);
  }
  if (registered) {
    agents_->Disconnected(agent_id);
    agents_connected_->Set(agents_->connected());
  }
}

}  // namespace sonde::server::ingest
