#include "agent/main/process_reporter.h"

#include <gtest/gtest.h>

namespace sonde::agent {
namespace {

struct Collect : exporting::RecordSink {
  int l7 = 0;
  std::vector<v1::ProcessInfo> procs;
  void Emit(v1::L7RequestLog&&) override { ++l7; }
  void Emit(v1::L4FlowLog&&) override {}
  void Emit(v1::NetworkMetric&&) override {}
  void Emit(v1::ApplicationMetric&&) override {}
  void Emit(v1::ProcessInfo&& p) override { procs.push_back(std::move(p)); }
};

TEST(ProcessReporterTest, ReportsEachProcessOncePerInterval) {
  Collect out;
  uint64_t now = 1'000;
  int reads = 0;
  ProcessReporter rep(
      &out, /*refresh_ns=*/100, /*max_tracked=*/16,
      [&](uint32_t pid) -> StatusOr<metadata::ProcessInfo> {
        ++reads;
        if (pid == 99) return NotFoundError("gone");
        metadata::ProcessInfo i;
        i.pid = pid;
        i.comm = "nginx";
        i.container_id = "abc";
        return i;
      },
      [&] { return now; });
  v1::L7RequestLog r;
  r.set_process_id_0(10);
  r.set_process_id_1(20);
  rep.Emit(v1::L7RequestLog(r));
  rep.Emit(v1::L7RequestLog(r));
  EXPECT_EQ(out.l7, 2);
  ASSERT_EQ(out.procs.size(), 2u);
  EXPECT_EQ(out.procs[0].pid(), 10u);
  EXPECT_EQ(out.procs[0].name(), "nginx");
  EXPECT_EQ(out.procs[0].container_id(), "abc");
  now += 150;  // past the refresh interval: reported again
  rep.Emit(v1::L7RequestLog(r));
  EXPECT_EQ(out.procs.size(), 4u);
  v1::L7RequestLog gone;
  gone.set_process_id_0(99);
  rep.Emit(std::move(gone));
  EXPECT_EQ(out.procs.size(), 4u);  // unreadable process: no report, record still passes
  EXPECT_EQ(out.l7, 4);
  EXPECT_EQ(reads, 5);
}

}  // namespace
}  // namespace sonde::agent
