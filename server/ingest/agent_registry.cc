// AgentRegistry: id assignment (optionally persisted) and per-agent bookkeeping.
#include "server/ingest/agent_registry.h"

#include <chrono>
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace sonde::server::ingest {

namespace {
int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

AgentRegistry::AgentRegistry(std::string state_path) : state_path_(std::move(state_path)) {
  if (state_path_.empty()) return;
  std::ifstream in(state_path_);
  if (!in) return;
  nlohmann::json doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("agents") || !doc["agents"].is_array()) {
    spdlog::warn("ignoring unreadable agent state {}", state_path_);
    return;
  }
  for (const auto& a : doc["agents"]) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_unsigned()) continue;
    const uint32_t id = a["id"].get<uint32_t>();
    const std::string hostname = a.value("hostname", "");
    const std::string boot_id = a.value("boot_id", "");
    ids_[{hostname, boot_id}] = id;
    AgentInfo info;
    info.id = id;
    info.hostname = hostname;
    info.boot_id = boot_id;
    agents_[id] = info;
    next_id_ = std::max(next_id_, id + 1);
  }
}

void AgentRegistry::SaveLocked() const {
  if (state_path_.empty()) return;
  nlohmann::json doc;
  doc["agents"] = nlohmann::json::array();
  for (const auto& [key, id] : ids_) {
    doc["agents"].push_back({{"id", id}, {"hostname", key.first}, {"boot_id", key.second}});
  }
  const std::string tmp = state_path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << doc.dump(1) << "\n";
    if (!out) {
      spdlog::warn("cannot write agent state {}", tmp);
      return;
    }
  }
  if (std::rename(tmp.c_str(), state_path_.c_str()) != 0) spdlog::warn("cannot rename {}", tmp);
}

uint32_t AgentRegistry::Register(const control::v1::Register& reg, const std::string& remote_address) {
  std::lock_guard lock(mu_);
  const auto key = std::make_pair(reg.hostname(), reg.boot_id());
  uint32_t id;
  auto it = ids_.find(key);
  // An empty boot id cannot identify a restart: such agents always get a fresh id.
  if (it != ids_.end() && !reg.boot_id().empty()) {
    id = it->second;
  } else {
    id = next_id_++;
    if (!reg.boot_id().empty()) {
      ids_[key] = id;
      SaveLocked();
    }
  }
  AgentInfo& info = agents_[id];
  info.id = id;
  info.hostname = reg.hostname();
  info.boot_id = reg.boot_id();
  info.agent_version = reg.agent_version();
  info.host = reg.host();
  info.remote_address = remote_address;
  info.connections++;
  info.registered_unix_us = info.last_seen_unix_us = NowUs();
  return id;
}

void AgentRegistry::Heartbeat(uint32_t id, const control::v1::Heartbeat& hb) {
  std::lock_guard lock(mu_);
  auto it = agents_.find(id);
  if (it == agents_.end()) return;
  it->second.last_heartbeat = hb;
  it->second.last_heartbeat_unix_us = it->second.last_seen_unix_us = NowUs();
}

void AgentRegistry::Batch(uint32_t id, uint64_t records) {
  std::lock_guard lock(mu_);
  auto it = agents_.find(id);
  if (it == agents_.end()) return;
  it->second.batches++;
  it->second.records += records;
  it->second.last_seen_unix_us = NowUs();
}

void AgentRegistry::Disconnected(uint32_t id) {
  std::lock_guard lock(mu_);
  auto it = agents_.find(id);
  if (it != agents_.end() && it->second.connections > 0) it->second.connections--;
}

std::vector<AgentInfo> AgentRegistry::Snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<AgentInfo> out;
  for (const auto& [id, info] : agents_) {
    if (info.registered_unix_us != 0) out.push_back(info);  // only agents seen this run
  }
  return out;
}

std::optional<AgentInfo> AgentRegistry::Find(uint32_t id) const {
  std::lock_guard lock(mu_);
  auto it = agents_.find(id);
  if (it == agents_.end()) return std::nullopt;
  return it->second;
}

uint32_t AgentRegistry::connected() const {
  std::lock_guard lock(mu_);
  uint32_t n = 0;
  for (const auto& [id, info] : agents_) n += info.connections > 0 ? 1 : 0;
  return n;
}

}  // namespace sonde::server::ingest
