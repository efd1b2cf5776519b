// TCP listener for agents: framed AgentFrame/ServerFrame sessions, validation, spool-then-Ack.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/base/status.h"
#include "common/metrics/registry.h"
#include "server/ingest/agent_registry.h"
#include "server/ingest/spool.h"
#include "sonde/control/v1/control.pb.h"

namespace sonde::server::ingest {

struct IngestServerOptions {
  std::string listen_host = "0.0.0.0";
  uint16_t port = 20033;  // 0: any free port (see port())
  // When non-empty, Register.token must be one of these.
  std::vector<std::string> tokens;
  // A session with no frame for this long is closed (agents heartbeat every few seconds).
  int idle_timeout_ms = 120000;
  // Time allowed to receive the rest of a frame once its header arrived, and to send a reply.
  int io_timeout_ms = 30000;
  uint32_t max_frame_bytes = 64u << 20;
  size_t max_connections = 1024;
  // Nack retry hint when the spool is full.
  uint32_t nack_retry_after_ms = 1000;
  // Configuration handed to agents in RegisterReply.
  control::v1::AgentConfig agent_config;
};

// Thread per connection, by design: a session is a strict request/reply stream (the agent waits
// for each Ack), the server serves tens to a few hundred agents, and blocking code keeps the
// protocol handling linear and easy to audit. Each thread is mostly parked in poll(); the
// connection cap bounds the thread count. An epoll loop would only pay off at ~10k agents.
//
// Every bad frame (bad magic, unknown flags, oversized, truncated, bad zstd, bad protobuf,
// protocol violation, wrong token) is counted in sonde_server_frames_rejected_total{reason},
// answered with an Error frame where the socket still allows it, and closes only that session.
// A Batch is answered with Ack only after Spool::Append made it durable; a full spool answers
// Nack{retry_after_ms}, so agents keep their data and back off.
class IngestServer {
 public:
  // `spool`, `agents` and `registry` must outlive this object.
  IngestServer(IngestServerOptions options, Spool* spool, AgentRegistry* agents, metrics::Registry* registry);
  ~IngestServer();

  Status Start();
  // Stops accepting, closes every session and joins their threads.
  void Stop();
  uint16_t port() const { return port_; }
  uint64_t connections_open() const;

 private:
  struct Connection {
    int fd = -1;
    std::string remote;
    std::thread thread;
    std::atomic<bool> done{false};
  };

  void AcceptLoop();
  void Serve(Connection* conn);
  void Reject(int fd, const std::string& reason, const std::string& message);
  void ReapFinished(bool all);

  const IngestServerOptions options_;
  Spool* spool_;
  AgentRegistry* agents_;
  metrics::Registry* registry_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  mutable std::mutex mu_;
  std::list<std::unique_ptr<Connection>> connections_;

  metrics::Counter* connections_total_;
  metrics::Gauge* connections_open_;
  metrics::Gauge* agents_connected_;
  metrics::Counter* batches_acked_;
  metrics::Counter* batches_nacked_;
  metrics::Counter* heartbeats_;
};

}  // namespace sonde::server::ingest
