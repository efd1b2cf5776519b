// Gate for /v1/query: accepts exactly one read-only statement (SELECT, WITH, SHOW, DESCRIBE,
// DESC, EXISTS), with comments and one trailing ';' allowed.
#pragma once

#include <string>
#include <string_view>

#include "common/base/status.h"

namespace sonde::server::api {

// Returns the statement without comments-only prefix and trailing ';', or InvalidArgument
// explaining why it was refused. ClickHouse also runs it with readonly=2 (defense in depth).
StatusOr<std::string> CheckReadOnlySql(std::string_view sql);

}  // namespace sonde::server::api
