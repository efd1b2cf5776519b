// The query catalog: stored tables from the generated schema plus the virtual columns the
// translator offers on top of them (ip_0/ip_1, SmartEncoding tags, Kubernetes labels).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "schema/tables.h"
#include "server/enrich/tag_dimensions.h"

namespace sonde::server::query {

enum class ColumnKind : uint8_t {
  kPhysical,       // a stored column
  kIp,             // ip_0 / ip_1: text rendering of ip4_N or ip6_N by is_ipv4
  kTag,            // pod_0, service_1, ...: the side's tag set, then the dimension's dictionary
  kTagId,          // pod_id_0, service_id_1, ...: the dimension's id inside the side's tag set
  kK8sLabel,       // k8s.label.<key>_N: the pod's label, from Kubernetes metadata
  kK8sAnnotation,  // k8s.annotation.<key>_N
};

struct ResolvedColumn {
  ColumnKind kind = ColumnKind::kPhysical;
  const schema::Column* column = nullptr;  // kPhysical only
  int side = 0;                            // all virtual kinds
  enrich::TagDimension dimension{};        // kTag, kTagId
  std::string key;                         // label or annotation key
};

struct VirtualColumnInfo {
  std::string name;
  std::string type;  // as shown by DESCRIBE
  std::string doc;
};

class Catalog {
 public:
  explicit Catalog(std::span<const schema::Table> tables) : tables_(tables) {}
  // The generated catalog of this build (schema::AllTables()).
  static Catalog FromSchema() { return Catalog(schema::AllTables()); }

  // `name` may be "table" (looked up in `db`, or in every database when db is empty and the
  // name is unique) or "database.table". nullptr when absent.
  const schema::Table* FindTable(std::string_view db, std::string_view name) const;
  std::vector<const schema::Table*> TablesIn(std::string_view db) const;
  bool HasDatabase(std::string_view db) const;

  // Physical columns first, then virtual ones. nullopt when the name means nothing here.
  std::optional<ResolvedColumn> Resolve(const schema::Table& table, std::string_view name) const;
  // Virtual columns the table offers, for DESCRIBE (labels are open-ended and listed as a
  // pattern).
  std::vector<VirtualColumnInfo> VirtualColumns(const schema::Table& table) const;

 private:
  std::span<const schema::Table> tables_;
};

}  // namespace sonde::server::query
