// Test fixture: a private clickhouse-server on free loopback ports in a temp dir (~0.2 s startup).
//
//   class MyTest : public sonde::server::storage::clickhouse::testing::ClickHouseTest {};
//   TEST_F(MyTest, X) { clickhouse_client().Query("SELECT 1"); clickhouse_url(); clickhouse().Kill(); }
//
// Tests using it carry the CTest label `clickhouse`. When the binary is absent the test is skipped.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "server/storage/clickhouse/clickhouse_client.h"
#include "server/storage/clickhouse/clickhouse_process.h"

namespace sonde::server::storage::clickhouse::testing {

inline constexpr char kClickHouseBinary[] = "/usr/sbin/clickhouse-server";

// RAII owner of one ClickHouse for tests: Start() it, use url()/client()/process(); the destructor
// SIGKILLs it (no graceful shutdown: the data is thrown away) and removes the temp dir.
class ClickHouseFixture {
 public:
  ClickHouseFixture() = default;
  ~ClickHouseFixture() {
    process_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  ClickHouseFixture(const ClickHouseFixture&) = delete;
  ClickHouseFixture& operator=(const ClickHouseFixture&) = delete;

  static bool Available() { return ::access(kClickHouseBinary, X_OK) == 0; }

  Status Start() {
    char tmpl[] = "/tmp/sonde-clickhouse-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return UnavailableError("mkdtemp failed");
    dir_ = tmpl;
    ClickHouseProcessOptions options;
    options.binary = kClickHouseBinary;
    options.data_dir = dir_;
    options.stop_timeout = std::chrono::milliseconds(0);  // SIGKILL at teardown
    options.restart_backoff_min = std::chrono::milliseconds(100);
    process_ = std::make_unique<ClickHouseProcess>(options);
    SONDE_RETURN_IF_ERROR(process_->Start());
    ClickHouseClientOptions client_options;
    client_options.url = process_->http_url();
    client_options.timeout = std::chrono::milliseconds(10000);
    client_ = std::make_unique<ClickHouseClient>(client_options);
    return Status::Ok();
  }

  std::string url() const { return process_->http_url(); }
  ClickHouseProcess& process() { return *process_; }
  ClickHouseClient& client() { return *client_; }
  // SIGKILL; stays down until Restart().
  Status Kill() { return process_->Kill(); }
  // Starts it again on the same ports and data; returns once it answers.
  Status Restart() { return process_->Restart(); }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::unique_ptr<ClickHouseProcess> process_;
  std::unique_ptr<ClickHouseClient> client_;
};

// GoogleTest base class: one fresh ClickHouse per test.
class ClickHouseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ClickHouseFixture::Available()) GTEST_SKIP() << kClickHouseBinary << " not installed";
    Status s = fixture_.Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  ClickHouseFixture& clickhouse_fixture() { return fixture_; }
  ClickHouseProcess& clickhouse() { return fixture_.process(); }
  ClickHouseClient& clickhouse_client() { return fixture_.client(); }
  std::string clickhouse_url() const { return fixture_.url(); }

 private:
  ClickHouseFixture fixture_;
};

}  // namespace sonde::server::storage::clickhouse::testing
