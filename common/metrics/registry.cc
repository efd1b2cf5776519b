// Metric storage and Prometheus text rendering.
#include "common/metrics/registry.h"

#include <fmt/format.h>

#include <algorithm>

namespace sonde::metrics {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  std::sort(bounds_.begin(), bounds_.end());
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  if (v > 0) sum_micro_.fetch_add(static_cast<uint64_t>(v * 1e6), std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t acc = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    acc += buckets_[i].load(std::memory_order_relaxed);
    out[i] = acc;
  }
  return out;
}

double Histogram::Sum() const { return sum_micro_.load(std::memory_order_relaxed) / 1e6; }

namespace {
std::string Escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Inserts an extra label into an already rendered label string.
std::string WithLabel(const std::string& rendered, const std::string& extra) {
  if (rendered.empty()) return "{" + extra + "}";
  return rendered.substr(0, rendered.size() - 1) + "," + extra + "}";
}
}  // namespace

std::string RenderLabels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ',';
    out += labels[i].first;
    out += "=\"";
    out += Escape(labels[i].second);
    out += '"';
  }
  out += '}';
  return out;
}

Registry::Family& Registry::FamilyFor(const std::string& name, const std::string& help, Kind kind) {
  auto [it, inserted] = families_.try_emplace(name);
  if (inserted) {
    it->second.kind = kind;
    it->second.help = help;
  }
  return it->second;
}

Counter* Registry::GetCounter(const std::string& name, const std::string& help,
                              const Labels& labels) {
  std::lock_guard lock(mu_);
  auto& fam = FamilyFor(name, help, Kind::kCounter);
  auto& slot = fam.counters[RenderLabels(labels)];
  if (!slot) slot = std::make_unique<Counter>();
  return slot.get();
}

Gauge* Registry::GetGauge(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard lock(mu_);
  auto& fam = FamilyFor(name, help, Kind::kGauge);
  auto& slot = fam.gauges[RenderLabels(labels)];
  if (!slot) slot = std::make_unique<Gauge>();
  return slot.get();
}

Histogram* Registry::GetHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds, const Labels& labels) {
  std::lock_guard lock(mu_);
  auto& fam = FamilyFor(name, help, Kind::kHistogram);
  auto& slot = fam.histograms[RenderLabels(labels)];
  if (!slot) slot = std::make_unique<Histogram>(std::move(bounds));
  return slot.get();
}

uint64_t Registry::CounterTotal(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  uint64_t total = 0;
  for (const auto& [_, c] : it->second.counters) total += c->Value();
  return total;
}

std::string Registry::RenderPrometheus() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, fam] : families_) {
    const char* type = fam.kind == Kind::kCounter ? "counter"
                       : fam.kind == Kind::kGauge ? "gauge"
                                                  : "histogram";
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, fam.help, name, type);
    for (const auto& [labels, c] : fam.counters) out += fmt::format("{}{} {}\n", name, labels, c->Value());
    for (const auto& [labels, g] : fam.gauges) out += fmt::format("{}{} {}\n", name, labels, g->Value());
    for (const auto& [labels, h] : fam.histograms) {
      auto counts = h->CumulativeCounts();
      for (size_t i = 0; i < h->bounds().size(); ++i) {
        out += fmt::format("{}_bucket{} {}\n", name,
                           WithLabel(labels, fmt::format("le=\"{}\"", h->bounds()[i])), counts[i]);
      }
      out += fmt::format("{}_bucket{} {}\n", name, WithLabel(labels, "le=\"+Inf\""), counts.back());
      out += fmt::format("{}_sum{} {}\n", name, labels, h->Sum());
      out += fmt::format("{}_count{} {}\n", name, labels, h->Count());
    }
  }
  return out;
}

}  // namespace sonde::metrics
