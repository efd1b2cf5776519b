// DDL of the flow_tag database: one SmartEncoding dictionary per tag dimension and the
// Kubernetes label/annotation metadata. Owned here (not in schema/tables) because these tables
// need ReplacingMergeTree, which the generic table generator does not emit.
#pragma once

#include <string>
#include <vector>

namespace sonde::server::enrich {

// CREATE DATABASE / CREATE TABLE IF NOT EXISTS statements, in order.
std::vector<std::string> TagSchemaDdl();

}  // namespace sonde::server::enrich
