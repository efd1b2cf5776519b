// CheckReadOnlySql: a small lexer that knows strings, quoted identifiers and comments, enough to
// find statement separators and the leading keyword without parsing SQL.
#include "server/api/read_only_sql.h"

#include <cctype>

#include <fmt/format.h>

namespace sonde::server::api {

StatusOr<std::string> CheckReadOnlySql(std::string_view sql) {
  // Pass 1: blank out comments, find ';' outside quotes, remember where code starts.
  std::string code;  // the statement with comments replaced by spaces
  code.reserve(sql.size());
  size_t i = 0;
  bool seen_semicolon = false;
  while (i < sql.size()) {
    const char c = sql[i];
    if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      while (i < sql.size() && sql[i] != '\n') ++i;
      code.push_back(' ');
      continue;
    }
    if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      size_t end = sql.find("*/", i + 2);
      if (end == std::string_view::npos) return InvalidArgumentError("unterminated /* comment");
      i = end + 2;
      code.push_back(' ');
      continue;
    }
    if (c == '\'' || c == '"' || c == '`') {
      size_t j = i + 1;
      for (; j < sql.size(); ++j) {
        if (sql[j] == '\\') {
          ++j;
          continue;
        }
        if (sql[j] == c) break;
      }
      if (j >= sql.size()) return InvalidArgumentError(fmt::format("unterminated {} quote", c));
      if (seen_semicolon) return InvalidArgumentError("only one statement is allowed");
      code.append(sql.substr(i, j + 1 - i));
      i = j + 1;
      continue;
    }
    if (c == ';') {
      seen_semicolon = true;
      ++i;
      continue;
    }
    if (seen_semicolon && !std::isspace(static_cast<unsigned char>(c))) {
      return InvalidArgumentError("only one statement is allowed");
    }
    code.push_back(c);
    ++i;
  }
  size_t start = 0;
  while (start < code.size() && std::isspace(static_cast<unsigned char>(code[start]))) ++start;
  size_t end = code.size();
  while (end > start && std::isspace(static_cast<unsigned char>(code[end - 1]))) --end;
  if (start == end) return InvalidArgumentError("empty statement");
  std::string stmt = code.substr(start, end - start);
  size_t k = 0;
  while (k < stmt.size() && (std::isalpha(static_cast<unsigned char>(stmt[k])) || stmt[k] == '(')) {
    if (stmt[k] == '(') break;
    ++k;
  }
  std::string keyword;
  for (size_t p = 0; p < k; ++p) keyword.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(stmt[p]))));
  // "(SELECT ...) UNION ALL ..." starts with a parenthesis.
  if (keyword.empty() && !stmt.empty() && stmt[0] == '(') keyword = "SELECT";
  static constexpr std::string_view kAllowed[] = {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS"};
  for (std::string_view a : kAllowed) {
    if (keyword == a) return stmt;
  }
  return InvalidArgumentError(fmt::format(
      "only read-only statements (SELECT, WITH, SHOW, DESCRIBE, EXISTS) are allowed, got '{}'",
      keyword.empty() ? stmt.substr(0, 20) : keyword));
}

}  // namespace sonde::server::api
