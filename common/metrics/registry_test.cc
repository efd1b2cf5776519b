#include "common/metrics/registry.h"

#include <gtest/gtest.h>

namespace sonde::metrics {
namespace {

TEST(RegistryTest, RendersCountersGaugesHistograms) {
  Registry r;
  r.GetCounter("sonde_test_total", "things", {{"reason", "bad\"quote"}})->Inc(3);
  r.GetCounter("sonde_test_total", "things", {{"reason", "ok"}})->Inc();
  r.GetGauge("sonde_queue_depth", "depth")->Set(7);
  auto* h = r.GetHistogram("sonde_latency_seconds", "latency", {0.1, 1});
  h->Observe(0.05);
  h->Observe(0.5);
  h->Observe(5);
  std::string text = r.RenderPrometheus();
  EXPECT_NE(text.find("# TYPE sonde_test_total counter"), std::string::npos);
  EXPECT_NE(text.find("sonde_test_total{reason=\"bad\\\"quote\"} 3"), std::string::npos);
  EXPECT_NE(text.find("sonde_queue_depth 7"), std::string::npos);
  EXPECT_NE(text.find("sonde_latency_seconds_bucket{le=\"0.1\"} 1"), std::string::npos);
  EXPECT_NE(text.find("sonde_latency_seconds_bucket{le=\"1\"} 2"), std::string::npos);
  EXPECT_NE(text.find("sonde_latency_seconds_bucket{le=\"+Inf\"} 3"), std::string::npos);
  EXPECT_NE(text.find("sonde_latency_seconds_count 3"), std::string::npos);
  EXPECT_EQ(r.CounterTotal("sonde_test_total"), 4u);
  EXPECT_EQ(r.CounterTotal("absent"), 0u);
}

TEST(RegistryTest, SameNameAndLabelsIsSameMetric) {
  Registry r;
  auto* a = r.GetCounter("x_total", "x", {{"a", "1"}});
  auto* b = r.GetCounter("x_total", "x", {{"a", "1"}});
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace sonde::metrics
