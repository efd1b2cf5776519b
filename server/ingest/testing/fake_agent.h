// A minimal agent for tests: connects, registers, sends batches/heartbeats/raw bytes, reads replies.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "common/base/status.h"
#include "common/wire/frame_codec.h"
#include "sonde/control/v1/control.pb.h"

namespace sonde::server::ingest::testing {

class FakeAgent {
 public:
  FakeAgent() = default;
  ~FakeAgent() { Close(); }
  FakeAgent(const FakeAgent&) = delete;
  FakeAgent& operator=(const FakeAgent&) = delete;

  Status Connect(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return UnavailableError("connect failed");
    }
    return Status::Ok();
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  StatusOr<control::v1::ServerFrame> Call(const control::v1::AgentFrame& f, bool compress = false) {
    SONDE_RETURN_IF_ERROR(wire::WriteFrame(fd_, f.SerializeAsString(), compress, 5000));
    return Read();
  }
  StatusOr<control::v1::ServerFrame> Read(int timeout_ms = 10000) {
    SONDE_ASSIGN_OR_RETURN(std::string bytes, wire::ReadFrame(fd_, timeout_ms));
    control::v1::ServerFrame out;
    if (!out.ParseFromString(bytes)) return DataLossError("bad ServerFrame");
    return out;
  }
  // Registers and returns the agent id.
  // `host` (optional) is the HostInfo the agent reports, e.g. its interfaces.
  StatusOr<uint32_t> Register(const std::string& hostname, const std::string& boot_id, const std::string& token = "",
                              const agent::v1::HostInfo* host = nullptr) {
    control::v1::AgentFrame f;
    auto* r = f.mutable_register_();
    r->set_protocol_version(1);
    r->set_agent_version("test");
    r->set_hostname(hostname);
    r->set_boot_id(boot_id);
    r->set_token(token);
    if (host != nullptr) *r->mutable_host() = *host;
    SONDE_ASSIGN_OR_RETURN(auto reply, Call(f));
    if (reply.has_error()) return PermissionDeniedError(reply.error().message());
    if (!reply.has_register_reply()) return DataLossError("expected RegisterReply");
    return reply.register_reply().agent_id();
  }
  // Sends one batch; returns the reply (Ack or Nack).
  StatusOr<control::v1::ServerFrame> SendBatch(uint64_t seq, const agent::v1::RecordBatch& records,
                                               bool compress = true) {
    control::v1::AgentFrame f;
    f.mutable_batch()->set_batch_seq(seq);
    *f.mutable_batch()->mutable_records() = records;
    return Call(f, compress);
  }
  Status SendRaw(std::string_view bytes) {
    if (::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size())) {
      return UnavailableError("send failed");
    }
    return Status::Ok();
  }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

}  // namespace sonde::server::ingest::testing
