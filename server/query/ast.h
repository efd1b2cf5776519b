// Syntax tree of a parsed Sonde SQL statement (before names are resolved against the catalog).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sonde::server::query {

enum class ExprKind : uint8_t {
  kColumn,   // text = name as written (dotted parts joined with '.')
  kNumber,   // text = literal as written
  kString,   // text = unescaped value
  kStar,     // * (only in count(*) and SELECT *)
  kUnary,    // text = "NOT" or "-"; args[0]
  kBinary,   // text = OR AND = != < <= > >= LIKE + - * / %; args[0], args[1]; negated for NOT LIKE
  kCall,     // text = function name as written (case kept); args; distinct for f(DISTINCT x)
  kIn,       // args[0] IN (args[1..]); negated for NOT IN
  kBetween,  // args[0] BETWEEN args[1] AND args[2]; negated for NOT BETWEEN
};

struct Expr {
  ExprKind kind;
  std::string text;
  std::vector<std::unique_ptr<Expr>> args;
  bool negated = false;
  bool distinct = false;
  size_t pos = 0;       // byte offset of the first token
  size_t end_pos = 0;   // byte offset just past the last token
};
using ExprPtr = std::unique_ptr<Expr>;

struct SelectItem {
  ExprPtr expr;
  std::string alias;  // empty when none
  size_t alias_pos = 0;
};

struct OrderItem {
  ExprPtr expr;
  bool descending = false;
};

struct SelectStmt {
  bool distinct = false;
  std::vector<SelectItem> items;
  std::string table;  // as written; may be "db.table"
  size_t table_pos = 0;
  ExprPtr where;
  std::vector<ExprPtr> group_by;
  ExprPtr having;
  std::vector<OrderItem> order_by;
  std::optional<uint64_t> limit;
  std::optional<uint64_t> offset;
};

enum class StatementKind : uint8_t { kSelect, kShowTables, kDescribe };

struct Statement {
  StatementKind kind = StatementKind::kSelect;
  SelectStmt select;       // kSelect
  std::string table;       // kDescribe
  size_t table_pos = 0;
};

}  // namespace sonde::server::query
