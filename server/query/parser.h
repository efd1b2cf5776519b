// Recursive-descent parser for Sonde SQL: SELECT (expressions, WHERE, GROUP BY, HAVING,
// ORDER BY, LIMIT/OFFSET), SHOW TABLES and DESCRIBE. Nothing that writes can be parsed.
#pragma once

#include <string_view>

#include "common/base/status.h"
#include "server/query/ast.h"

namespace sonde::server::query {

// Syntax errors are InvalidArgument with "line L:C" and a caret excerpt.
[[nodiscard]] StatusOr<Statement> Parse(std::string_view sql);

}  // namespace sonde::server::query
