// flow_tag DDL (see docs/design/smart-encoding.md for why the tables look like this).
#include "server/enrich/tag_schema.h"

#include "server/enrich/tag_dimensions.h"

namespace sonde::server::enrich {

std::vector<std::string> TagSchemaDdl() {
  const std::string db(kTagDatabase);
  std::vector<std::string> out;
  out.push_back("CREATE DATABASE IF NOT EXISTS " + db);
  // One row per claim of (id, value). A claim that lost a collision is released (released = 1
  // replaces the 0 row). Readers take, per id, the smallest value among live claims.
  for (const auto& d : AllTagDictionaries()) {
    out.push_back("CREATE TABLE IF NOT EXISTS " + db + "." + std::string(d.dictionary) +
                  " (id UInt32, value String, claimed_at_ms UInt64, released UInt8)"
                  " ENGINE = ReplacingMergeTree(released) ORDER BY (id, value)");
  }
  // Latest row per (pod, key) wins; deleted = 1 when the label disappeared.
  for (auto table : {kPodLabelTable, kPodAnnotationTable}) {
    out.push_back("CREATE TABLE IF NOT EXISTS " + db + "." + std::string(table) +
                  " (pod_cluster_id UInt32, pod_ns_id UInt32, pod_id UInt32, key String,"
                  " value String, version UInt64, deleted UInt8)"
                  " ENGINE = ReplacingMergeTree(version) ORDER BY (pod_cluster_id, pod_ns_id, pod_id, key)");
  }
  return out;
}

}  // namespace sonde::server::enrich
