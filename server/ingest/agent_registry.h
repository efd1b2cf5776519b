// Registered agents: ids stable per (hostname, boot_id), liveness and counters for /v1/status.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sonde/control/v1/control.pb.h"

namespace sonde::server::ingest {

struct AgentInfo {
  uint32_t id = 0;
  std::string hostname;
  std::string boot_id;
  std::string agent_version;
  std::string remote_address;
  uint32_t connections = 0;  // open sessions (0: disconnected)
  int64_t registered_unix_us = 0;
  int64_t last_seen_unix_us = 0;       // any frame
  int64_t last_heartbeat_unix_us = 0;
  uint64_t batches = 0;
  uint64_t records = 0;                // records accepted (spooled) from this agent
  control::v1::Heartbeat last_heartbeat;  // the agent's own counters
  agent::v1::HostInfo host;                // as registered (interfaces feed host tagging)
};

// Thread-safe. With a state path, the (hostname, boot_id) -> id map survives server restarts
// (JSON file rewritten atomically on each new agent); otherwise ids are unique per run.
class AgentRegistry {
 public:
  explicit AgentRegistry(std::string state_path = "");

  // Returns the agent's id and marks one more open session.
  uint32_t Register(const control::v1::Register& reg, const std::string& remote_address);
  void Heartbeat(uint32_t id, const control::v1::Heartbeat& hb);
  void Batch(uint32_t id, uint64_t records);
  void Disconnected(uint32_t id);

  std::vector<AgentInfo> Snapshot() const;
  // One agent, also those only known from the state file (hostname and boot id only).
  std::optional<AgentInfo> Find(uint32_t id) const;
  uint32_t connected() const;

 private:
  void SaveLocked() const;

  const std::string state_path_;
  mutable std::mutex mu_;
  uint32_t next_id_ = 1;
  std::map<std::pair<std::string, std::string>, uint32_t> ids_;
  std::map<uint32_t, AgentInfo> agents_;
};

}  // namespace sonde::server::ingest
