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
// Virtual columns: ip_0/ip_1 (text address), <tag>_0/<tag>_1 for every SmartEncoding dimension
// (pod, service, host, region, ...; see server/enrich/tag_dimensions.h), and
// k8s.label.<key>_N / k8s.annotation.<key>_N (write them `quoted` when the key has characters
// other than letters, digits and '_'). Tag filters compared with literals become id lookups
// (`pod_id_0 IN (SELECT id FROM flow_tag...)`); tags in SELECT/GROUP BY/ORDER BY or other
// expressions join the flow_tag dictionaries at query time.
[[nodiscard]] StatusOr<Translation> Translate(std::string_view db, std::string_view sql,
                                              const Catalog& catalog);

}  // namespace sonde::server::query
