// Sonde SQL -> ClickHouse SQL (Debian's 18.16 dialect) over the virtual wide tables.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "server/query/catalog.h"

namespace sonde::server::query {

struct Translation {
  std::string sql;                   // ClickHouse SQL, read-only, ready to run
  std::vector<std::string> columns;  // result column names in order, as the user sees them
};

// Translates one statement. `db` picks the database for unqualified table names (may be empty
// when the table name is unique). Unknown tables/columns/functions and syntax errors are
// InvalidArgument whose message starts with "line L:C:" and carries a caret excerpt.
//
// Virtual columns: ip_0/ip_1 (text address), <tag>_0/<tag>_1 and <tag>_id_0/<tag>_id_1 for
// every SmartEncoding dimension (pod, service, host, region, ...; see
// server/enrich/tag_dimensions.h), and k8s.label.<key>_N / k8s.annotation.<key>_N (write them
// `quoted` when the key has characters other than letters, digits and '_'). All of them come from
// the row's tag set (tag_set_id_N). Tag filters compared with literals become tag set lookups
// (`tag_set_id_0 IN (SELECT id FROM <tag sets> WHERE ...)`); anywhere else a tag is a
// transform() over constant arrays built once per query from flow_tag, and a query grouped by
// tags aggregates on dimension ids first (see docs/design/smart-encoding.md).
[[nodiscard]] StatusOr<Translation> Translate(std::string_view db, std::string_view sql,
                                              const Catalog& catalog);

}  // namespace sonde::server::query
