// Persistence behind SmartEncoding: the flow_tag claim tables and Kubernetes metadata. One
// ClickHouse implementation for production and an in-memory one for tests.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "server/enrich/tag_dimensions.h"

namespace sonde::server::storage::clickhouse {
class ClickHouseClient;
}

namespace sonde::server::enrich {

// One claim of `id` for `value` in a dictionary (see docs/design/smart-encoding.md).
struct TagClaim {
  uint32_t id = 0;
  std::string value;
  uint64_t claimed_at_ms = 0;
  bool released = false;
};

// A label or annotation of a pod, keyed by the pod's encoded identity.
struct PodMetadataRow {
  uint32_t pod_cluster_id = 0;
  uint32_t pod_ns_id = 0;
  uint32_t pod_id = 0;
  std::string key;
  std::string value;
  uint64_t version = 0;  // larger wins; use the Kubernetes resourceVersion or a clock
  bool deleted = false;
};

class TagStore {
 public:
  virtual ~TagStore() = default;
  // Creates the flow_tag tables when missing.
  virtual Status EnsureSchema() = 0;
  // Live (unreleased) claims of a dictionary; every one when `ids` is empty.
  virtual StatusOr<std::vector<TagClaim>> LiveClaims(TagDimension d, std::span<const uint32_t> ids) = 0;
  // Appends claims or releases (released = true replaces the live claim of the same id+value).
  // Visible to LiveClaims of any server once this returns OK.
  virtual Status InsertClaims(TagDimension d, std::span<const TagClaim> claims) = 0;
  virtual Status InsertPodMetadata(bool annotations, std::span<const PodMetadataRow> rows) = 0;
};

// Thread-safe in-memory store, shared by several TagDictionary instances to model several
// servers in tests.
class MemoryTagStore : public TagStore {
 public:
  Status EnsureSchema() override { return Status::Ok(); }
  StatusOr<std::vector<TagClaim>> LiveClaims(TagDimension d, std::span<const uint32_t> ids) override;
  Status InsertClaims(TagDimension d, std::span<const TagClaim> claims) override;
  Status InsertPodMetadata(bool annotations, std::span<const PodMetadataRow> rows) override;

  // Test hook: latest metadata value per (pod, key), deleted rows excluded.
  std::map<std::string, std::string> PodMetadata(bool annotations) const;

 private:
  mutable std::mutex mu_;
  // dimension -> (id, value) -> released
  std::map<TagDimension, std::map<std::pair<uint32_t, std::string>, bool>> claims_;
  std::map<std::string, PodMetadataRow> metadata_[2];
};

// flow_tag tables in ClickHouse through the storage client (which must outlive this).
class ClickHouseTagStore : public TagStore {
 public:
  explicit ClickHouseTagStore(const storage::clickhouse::ClickHouseClient* client) : client_(client) {}
  Status EnsureSchema() override;
  StatusOr<std::vector<TagClaim>> LiveClaims(TagDimension d, std::span<const uint32_t> ids) override;
  Status InsertClaims(TagDimension d, std::span<const TagClaim> claims) override;
  Status InsertPodMetadata(bool annotations, std::span<const PodMetadataRow> rows) override;

 private:
  const storage::clickhouse::ClickHouseClient* client_;
};

// 'text' as a ClickHouse string literal.
std::string ClickHouseStringLiteral(std::string_view text);

}  // namespace sonde::server::enrich
