// TagStore implementations: in memory and ClickHouse.
#include "server/enrich/tag_store.h"

#include <fmt/format.h>

#include "server/enrich/tag_schema.h"
#include "server/storage/clickhouse/clickhouse_client.h"

namespace sonde::server::enrich {
namespace {

std::string MetaKey(const PodMetadataRow& r) {
  return std::to_string(r.pod_cluster_id) + "/" + std::to_string(r.pod_ns_id) + "/" +
         std::to_string(r.pod_id) + "/" + r.key;
}

std::string DictTable(TagDimension d) {
  return std::string(kTagDatabase) + "." + std::string(InfoOf(d).dictionary);
}

}  // namespace

std::string ClickHouseStringLiteral(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    switch (c) {
      case '\'': out += "\\'"; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\0': out += "\\0"; break;
      default: out += c;
    }
  }
  return out + "'";
}

StatusOr<std::vector<TagClaim>> MemoryTagStore::LiveClaims(TagDimension d, std::span<const uint32_t> ids) {
  std::lock_guard lock(mu_);
  std::vector<TagClaim> out;
  for (const auto& [k, released] : claims_[d]) {
    if (released) continue;
    if (!ids.empty() && std::find(ids.begin(), ids.end(), k.first) == ids.end()) continue;
    out.push_back({k.first, k.second, 0, false});
  }
  return out;
}

Status MemoryTagStore::InsertClaims(TagDimension d, std::span<const TagClaim> claims) {
  std::lock_guard lock(mu_);
  for (const auto& c : claims) {
    bool& released = claims_[d][{c.id, c.value}];
    released = released || c.released;  // ReplacingMergeTree(released): 1 beats 0
  }
  return Status::Ok();
}

Status MemoryTagStore::InsertPodMetadata(bool annotations, std::span<const PodMetadataRow> rows) {
  std::lock_guard lock(mu_);
  auto& m = metadata_[annotations ? 1 : 0];
  for (const auto& r : rows) {
    auto [it, inserted] = m.emplace(MetaKey(r), r);
    if (!inserted && r.version >= it->second.version) it->second = r;
  }
  return Status::Ok();
}

std::map<std::string, std::string> MemoryTagStore::PodMetadata(bool annotations) const {
  std::lock_guard lock(mu_);
  std::map<std::string, std::string> out;
  for (const auto& [k, r] : metadata_[annotations ? 1 : 0]) {
    if (!r.deleted) out[k] = r.value;
  }
  return out;
}

Status ClickHouseTagStore::EnsureSchema() {
  for (const auto& sql : TagSchemaDdl()) {
    auto r = client_->Execute(sql);
    if (!r.ok()) return r.status();
  }
  return Status::Ok();
}

StatusOr<std::vector<TagClaim>> ClickHouseTagStore::LiveClaims(TagDimension d,
                                                               std::span<const uint32_t> ids) {
  std::string sql = "SELECT id, value, claimed_at_ms FROM " + DictTable(d) + " FINAL WHERE released = 0";
  if (!ids.empty()) {
    sql += " AND id IN (";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) sql += ",";
      sql += std::to_string(ids[i]);
    }
    sql += ")";
  }
  SONDE_ASSIGN_OR_RETURN(auto result, client_->Query(sql));
  std::vector<TagClaim> out;
  out.reserve(result.rows.size());
  for (const auto& row : result.rows) {
    if (!row.is_array() || row.size() != 3 || !row[0].is_number_unsigned() || !row[1].is_string()) {
      return DataLossError("unexpected row from " + DictTable(d));
    }
    TagClaim c;
    c.id = row[0].get<uint32_t>();
    c.value = row[1].get<std::string>();
    c.claimed_at_ms = row[2].is_number() ? row[2].get<uint64_t>() : 0;
    out.push_back(std::move(c));
  }
  return out;
}

Status ClickHouseTagStore::InsertClaims(TagDimension d, std::span<const TagClaim> claims) {
  if (claims.empty()) return Status::Ok();
  std::string sql = "INSERT INTO " + DictTable(d) + " (id, value, claimed_at_ms, released) VALUES ";
  for (size_t i = 0; i < claims.size(); ++i) {
    const auto& c = claims[i];
    if (i) sql += ",";
    // fmt, not "(" + std::string&&: GCC 12 -O3 reports a false -Wrestrict on the latter.
    sql += fmt::format("({},{},{},{})", c.id, ClickHouseStringLiteral(c.value), c.claimed_at_ms,
                       c.released ? 1 : 0);
  }
  auto r = client_->Execute(sql);
  return r.ok() ? Status::Ok() : r.status();
}

Status ClickHouseTagStore::InsertPodMetadata(bool annotations, std::span<const PodMetadataRow> rows) {
  if (rows.empty()) return Status::Ok();
  std::string sql = "INSERT INTO " + std::string(kTagDatabase) + "." +
                    std::string(annotations ? kPodAnnotationTable : kPodLabelTable) +
                    " (pod_cluster_id, pod_ns_id, pod_id, key, value, version, deleted) VALUES ";
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (i) sql += ",";
    sql += fmt::format("({},{},{},{},{},{},{})", r.pod_cluster_id, r.pod_ns_id, r.pod_id,
                       ClickHouseStringLiteral(r.key), ClickHouseStringLiteral(r.value), r.version,
                       r.deleted ? 1 : 0);
  }
  auto r = client_->Execute(sql);
  return r.ok() ? Status::Ok() : r.status();
}

}  // namespace sonde::server::enrich
