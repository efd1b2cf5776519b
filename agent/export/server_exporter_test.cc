#include "agent/export/server_exporter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "common/wire/frame_codec.h"

namespace sonde::agent::exporting {
namespace {

// A scripted stand-in for sonde-server: registers agents and answers batches according to a
// policy, counting the records it acknowledged.
class FakeServer {
 public:
  enum class Policy { kAck, kNackFirst, kDropConnectionOnFirst };

  explicit FakeServer(Policy policy) : policy_(policy) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(listen_fd_, 8);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeServer() {
    stop_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    close(listen_fd_);
    thread_.join();
  }
  uint16_t port() const { return port_; }
  uint64_t acked_records() const { return acked_records_.load(); }
  int sessions() const { return sessions_.load(); }
  uint64_t nacks() const { return nacks_.load(); }

 private:
  void Serve() {
    while (!stop_) {
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      ++sessions_;
      ServeOne(fd);
      close(fd);
    }
  }
  void ServeOne(int fd) {
    for (;;) {
      auto bytes = wire::ReadFrame(fd, 5000);
      if (!bytes.ok()) return;
      control::v1::AgentFrame in;
      ASSERT_TRUE(in.ParseFromString(*bytes));
      control::v1::ServerFrame out;
      if (in.has_register_()) {
        out.mutable_register_reply()->set_agent_id(7);
      } else if (in.has_heartbeat()) {
        out.mutable_heartbeat_reply();
      } else if (in.has_batch()) {
        ++batches_seen_;
        if (policy_ == Policy::kDropConnectionOnFirst && batches_seen_ == 1) return;
        if (policy_ == Policy::kNackFirst && batches_seen_ == 1) {
          out.mutable_nack()->set_batch_seq(in.batch().batch_seq());
          out.mutable_nack()->set_retry_after_ms(20);
          ++nacks_;
        } else {
          const auto& r = in.batch().records();
          acked_records_ += r.l7_request_logs_size() + r.l4_flow_logs_size() +
                            r.network_metrics_size() + r.application_metrics_size();
          out.mutable_ack()->set_batch_seq(in.batch().batch_seq());
        }
      }
      if (!wire::WriteFrame(fd, out.SerializeAsString(), false).ok()) return;
    }
  }

  Policy policy_;
  int listen_fd_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> acked_records_{0};
  std::atomic<int> sessions_{0};
  std::atomic<uint64_t> nacks_{0};
  int batches_seen_ = 0;
};

ServerExporterConfig ConfigFor(uint16_t port) {
  ServerExporterConfig c;
  c.server_port = port;
  c.hostname = "test-host";
  c.batch_max_records = 10;
  c.batch_max_delay_ms = 50;
  return c;
}

void EmitN(ServerExporter& e, int n) {
  for (int i = 0; i < n; ++i) {
    v1::L7RequestLog r;
    r.set_request_id(i);
    e.Emit(std::move(r));
  }
}

TEST(ServerExporterTest, BatchFrameSpliceParses) {
  v1::RecordBatch b;
  b.add_l7_request_logs()->set_request_resource("/x");
  std::string frame = EncodeBatchFrame(42, b.SerializeAsString());
  control::v1::AgentFrame f;
  ASSERT_TRUE(f.ParseFromString(frame));
  EXPECT_EQ(f.batch().batch_seq(), 42u);
  EXPECT_EQ(f.batch().records().l7_request_logs(0).request_resource(), "/x");
}

TEST(ServerExporterTest, DeliversEverythingAndRetriesNacks) {
  FakeServer server(FakeServer::Policy::kNackFirst);
  metrics::Registry reg;
  ServerExporter e(ConfigFor(server.port()), &reg);
  e.Start();
  EmitN(e, 95);
  EXPECT_TRUE(e.Stop(std::chrono::seconds(20)));
  EXPECT_EQ(server.acked_records(), 95u);
  EXPECT_EQ(server.nacks(), 1u);
  EXPECT_EQ(reg.CounterTotal("sonde_agent_export_records_acked_total"), 95u);
}

TEST(ServerExporterTest, ResendsUnacknowledgedBatchAfterDisconnect) {
  FakeServer server(FakeServer::Policy::kDropConnectionOnFirst);
  metrics::Registry reg;
  ServerExporter e(ConfigFor(server.port()), &reg);
  e.Start();
  EmitN(e, 30);
  EXPECT_TRUE(e.Stop(std::chrono::seconds(20)));
  EXPECT_EQ(server.acked_records(), 30u);
  EXPECT_GE(server.sessions(), 2);
}

TEST(ServerExporterTest, BoundedQueueDropsAndCountsWhenServerIsAbsent) {
  metrics::Registry reg;
  ServerExporterConfig c = ConfigFor(1);  // nothing listens on port 1
  c.queue_max_bytes = 200;
  ServerExporter e(c, &reg);
  e.Start();
  EmitN(e, 100);
  e.Flush();
  EXPECT_FALSE(e.Stop(std::chrono::milliseconds(200)));
  EXPECT_GT(reg.CounterTotal("sonde_agent_export_records_dropped_total"), 0u);
}

}  // namespace
}  // namespace sonde::agent::exporting
