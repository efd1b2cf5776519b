// Starts and supervises a private clickhouse-server (Debian's 18.16) with a generated config.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "common/base/status.h"

namespace sonde::server::storage::clickhouse {

struct ClickHouseProcessOptions {
  std::string binary = "/usr/sbin/clickhouse-server";
  // Data, config and logs live here (created when missing).
  std::string data_dir;
  // 0 picks a free loopback port at Start().
  uint16_t http_port = 0;
  uint16_t tcp_port = 0;
  std::chrono::milliseconds startup_timeout{30000};
  // SIGTERM grace period before SIGKILL on Stop().
  std::chrono::milliseconds stop_timeout{15000};
  // Restart the server when it dies unexpectedly (backoff doubles from min to max).
  bool supervise = true;
  std::chrono::milliseconds restart_backoff_min{200};
  std::chrono::milliseconds restart_backoff_max{10000};
};

// Owns one clickhouse-server child process listening on 127.0.0.1 only. Start() writes
// config.xml/users.xml under data_dir, spawns the server and waits until `SELECT 1` answers.
// A supervisor thread restarts it with backoff when it dies; Stop() (and the destructor) stop it.
// The child gets PR_SET_PDEATHSIG so it does not outlive a crashed parent.
// Thread-safe.
class ClickHouseProcess {
 public:
  explicit ClickHouseProcess(ClickHouseProcessOptions options);
  ~ClickHouseProcess();
  ClickHouseProcess(const ClickHouseProcess&) = delete;
  ClickHouseProcess& operator=(const ClickHouseProcess&) = delete;

  Status Start();
  // SIGTERM, then SIGKILL after stop_timeout. Idempotent.
  void Stop();

  // "http://127.0.0.1:<port>" once started.
  std::string http_url() const;
  uint16_t http_port() const { return http_port_; }
  uint16_t tcp_port() const { return tcp_port_; }
  const std::string& data_dir() const { return options_.data_dir; }
  bool running() const;
  // Pid of the current child (-1 when none), e.g. to read its CPU time from /proc.
  pid_t pid() const {
    std::lock_guard lock(mu_);
    return pid_;
  }
  // Restarts performed by the supervisor (not counting Restart()).
  uint32_t supervisor_restarts() const { return supervisor_restarts_.load(); }

  // Test hooks. Kill() SIGKILLs the server and suspends supervision, so it stays down until
  // Restart(), which starts it again (same ports and data) and waits until it answers.
  Status Kill();
  Status Restart();

  // Answers `SELECT 1` within timeout_ms.
  bool Ping(int timeout_ms = 1000) const;

 private:
  Status WriteConfig();
  Status Spawn();           // requires mu_
  Status WaitReady();       // polls until SELECT 1 answers or startup_timeout
  void SupervisorLoop();
  void KillChild(bool graceful);  // requires mu_ not held

  ClickHouseProcessOptions options_;
  uint16_t http_port_ = 0;
  uint16_t tcp_port_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  pid_t pid_ = -1;
  bool started_ = false;
  bool stopping_ = false;
  bool suspended_ = false;  // Kill() hook: do not restart
  std::atomic<uint32_t> supervisor_restarts_{0};
  std::thread supervisor_;
};

// A free TCP port on 127.0.0.1 (bound then released; racy by nature, fine for tests and setup).
StatusOr<uint16_t> PickFreePort();

}  // namespace sonde::server::storage::clickhouse
