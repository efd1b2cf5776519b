// Sonde SQL -> ClickHouse SQL. Parse, resolve names against the catalog, render ClickHouse text.
#include "server/query/translator.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <set>
#include <strings.h>

#include "server/query/lexer.h"
#include "server/query/parser.h"

namespace sonde::server::query {
namespace {

using enrich::TagDimension;

// Operator precedence of rendered ClickHouse text, for minimal parentheses.
enum Prec : int {
  kPrecOr = 1,
  kPrecAnd = 2,
  kPrecNot = 3,
  kPrecCompare = 4,
  kPrecAdd = 5,
  kPrecMul = 6,
  kPrecUnary = 7,
  kPrecPrimary = 8,
};

struct Rendered {
  std::string text;
  int prec = kPrecPrimary;
  bool aggregate = false;  // contains an aggregate function
};

bool IsPlainIdent(std::string_view s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

std::string QuoteIdent(std::string_view s) {
  if (IsPlainIdent(s)) return std::string(s);
  std::string out = "`";
  for (char c : s) {
    if (c == '`' || c == '\\') out += '\\';
    out += c;
  }
  out += '`';
  return out;
}

std::string QuoteString(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
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
  out += '\'';
  return out;
}

std::string Paren(const Rendered& r, int min_prec) {
  return r.prec < min_prec ? "(" + r.text + ")" : r.text;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// Functions users may call, with their ClickHouse spelling. Everything else is rejected so a
// query cannot reach table functions (url, file, remote) or anything with side effects.
struct FunctionSpec {
  std::string_view name;
  std::string_view clickhouse;
  int min_args;
  int max_args;
  bool aggregate;
};
constexpr FunctionSpec kFunctions[] = {
    {"count", "count", 0, 1, true},       {"sum", "sum", 1, 1, true},
    {"avg", "avg", 1, 1, true},           {"min", "min", 1, 1, true},
    {"max", "max", 1, 1, true},           {"uniq", "uniq", 1, 8, true},
    {"uniqexact", "uniqExact", 1, 8, true}, {"countif", "countIf", 1, 1, true},
    {"sumif", "sumIf", 2, 2, true},       {"avgif", "avgIf", 2, 2, true},
    {"maxif", "maxIf", 2, 2, true},       {"minif", "minIf", 2, 2, true},
    {"percentile", "quantile", 2, 2, true},
    {"time", "", 2, 2, false},  // time bucketing, rendered specially
    {"abs", "abs", 1, 1, false},          {"round", "round", 1, 2, false},
    {"floor", "floor", 1, 2, false},      {"ceil", "ceil", 1, 2, false},
    {"lower", "lower", 1, 1, false},      {"upper", "upper", 1, 1, false},
    {"length", "length", 1, 1, false},    {"concat", "concat", 2, 16, false},
    {"tostring", "toString", 1, 1, false}, {"if", "if", 3, 3, false},
    {"greatest", "greatest", 2, 2, false}, {"least", "least", 2, 2, false},
    {"now", "now", 0, 0, false},          {"todatetime", "toDateTime", 1, 1, false},
    {"tounixtimestamp", "toUnixTimestamp", 1, 1, false},
    {"tostartofminute", "toStartOfMinute", 1, 1, false},
    {"tostartofhour", "toStartOfHour", 1, 1, false},
    {"tostartofday", "toStartOfDay", 1, 1, false},
};

const FunctionSpec* FindFunction(std::string_view name) {
  for (const auto& f : kFunctions) {
    if (EqualsIgnoreCase(f.name, name)) return &f;
  }
  return nullptr;
}

// "99" -> "0.99", "99.9" -> "0.999"; nullopt outside (0, 100].
std::optional<std::string> PercentToLevel(std::string_view text) {
  const std::string s(text);
  char* end = nullptr;
  const double p = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !(p > 0 && p <= 100)) return std::nullopt;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", p / 100);
  return std::string(buf);
}

enum class Clause : uint8_t { kSelect, kWhere, kGroupBy, kHaving, kOrderBy };

class Translator {
 public:
  // `pushdown`: aggregate on dimension ids before naming tags (see PushdownApplies()).
  Translator(std::string_view db, std::string_view sql, const Catalog& catalog, bool pushdown = false)
      : db_(db), sql_(sql), catalog_(catalog), pushdown_(pushdown) {}

  // True when the statement just translated groups by tags in a way that lets the aggregation
  // run on dimension ids and the names be looked up on its (few) groups only: GROUP BY
  // present, tags read outside aggregates, no tag inside an aggregate's arguments. The stored
  // rows are then grouped by every stored column the outer query reads plus the dimension ids
  // of the tags it shows; aggregates become -State/-Merge pairs.
  bool PushdownApplies() const { return pushdown_candidate_; }

  StatusOr<Translation> Run() {
    SONDE_ASSIGN_OR_RETURN(Statement st, Parse(sql_));
    switch (st.kind) {
      case StatementKind::kShowTables:
        return ShowTables();
      case StatementKind::kDescribe:
        return Describe(st.table, st.table_pos);
      case StatementKind::kSelect:
        return Select(st.select);
    }
    return InternalError("unknown statement kind");
  }

 private:
  Status Error(size_t pos, std::string_view msg) const {
    return InvalidArgumentError(FormatPositionError(sql_, pos, msg));
  }

  StatusOr<Translation> ShowTables() {
    if (!catalog_.HasDatabase(db_)) return InvalidArgumentError("unknown database '" + std::string(db_) + "'");
    Translation t;
    std::string list;
    for (const schema::Table* table : catalog_.TablesIn(db_)) {
      if (!list.empty()) list += ", ";
      list += QuoteString(table->name);
    }
    t.sql = "SELECT arrayJoin([" + list + "]) AS name";
    t.columns = {"name"};
    return t;
  }

  StatusOr<Translation> Describe(const std::string& name, size_t pos) {
    const schema::Table* table = catalog_.FindTable(db_, name);
    if (table == nullptr) return Error(pos, "unknown table '" + name + "'");
    std::string rows;
    auto add = [&](std::string_view n, std::string_view type, std::string_view doc) {
      if (!rows.empty()) rows += ", ";
      rows += "(" + QuoteString(n) + ", " + QuoteString(type) + ", " + QuoteString(doc) + ")";
    };
    for (const auto& c : table->columns) add(c.name, c.clickhouse_type, c.doc);
    for (const auto& v : catalog_.VirtualColumns(*table)) add(v.name, v.type, v.doc);
    Translation t;
    t.sql = "SELECT c.1 AS name, c.2 AS type, c.3 AS doc FROM (SELECT arrayJoin([" + rows +
            "]) AS c)";
    t.columns = {"name", "type", "doc"};
    return t;
  }

  StatusOr<Translation> Select(const SelectStmt& s) {
    table_ = catalog_.FindTable(db_, s.table);
    if (table_ == nullptr) {
      return Error(s.table_pos, "unknown table '" + s.table + "'" +
                                    (db_.empty() ? "" : " in database '" + std::string(db_) + "'"));
    }
    // Aliases first, so GROUP BY / HAVING / ORDER BY may refer to them.
    for (size_t i = 0; i < s.items.size(); ++i) {
      const auto& item = s.items[i];
      if (item.alias.empty()) continue;
      if (catalog_.Resolve(*table_, item.alias) &&
          !(item.expr->kind == ExprKind::kColumn && item.expr->text == item.alias)) {
        return Error(item.alias_pos, "alias '" + item.alias +
                                         "' is also a column name; choose another alias");
      }
      if (!aliases_.emplace(item.alias, i).second) {
        return Error(item.alias_pos, "duplicate alias '" + item.alias + "'");
      }
    }

    Translation out;
    std::vector<std::string> select_parts;
    for (const auto& item : s.items) {
      clause_ = Clause::kSelect;
      SONDE_ASSIGN_OR_RETURN(Rendered r, Render(*item.expr, false));
      std::string name = item.alias;
      if (name.empty()) {
        name = item.expr->kind == ExprKind::kColumn
                   ? item.expr->text
                   : std::string(sql_.substr(item.expr->pos, item.expr->end_pos - item.expr->pos));
      }
      std::string part = r.text;
      if (item.expr->kind != ExprKind::kStar && r.text != QuoteIdent(name)) {
        part += " AS " + QuoteIdent(name);
      }
      select_parts.push_back(std::move(part));
      out.columns.push_back(std::move(name));
    }

    std::vector<std::string> where;
    if (s.where) {
      clause_ = Clause::kWhere;
      std::vector<const Expr*> conjuncts;
      SplitAnd(*s.where, &conjuncts);
      for (const Expr* c : conjuncts) {
        SONDE_ASSIGN_OR_RETURN(Rendered r, Render(*c, false));
        where.push_back(Paren(r, kPrecAnd));
      }
    }
    std::vector<std::string> group_parts;
    for (const auto& g : s.group_by) {
      clause_ = Clause::kGroupBy;
      SONDE_ASSIGN_OR_RETURN(Rendered r, Render(*g, false));
      group_parts.push_back(r.text);
    }
    std::string having;
    if (s.having) {
      clause_ = Clause::kHaving;
      SONDE_ASSIGN_OR_RETURN(Rendered r, Render(*s.having, false));
      having = r.text;
    }
    std::vector<std::string> order_parts;
    for (const auto& o : s.order_by) {
      clause_ = Clause::kOrderBy;
      SONDE_ASSIGN_OR_RETURN(Rendered r, Render(*o.expr, false));
      order_parts.push_back(r.text + (o.descending ? " DESC" : " ASC"));
    }

    const std::string table_ref =
        QuoteIdent(table_->database) + "." + QuoteIdent(table_->name);
    pushdown_candidate_ = !pushdown_ && !s.group_by.empty() && tag_outside_aggregate_ &&
                          !tag_in_aggregate_ && !select_star_;
    std::string sql;
    if (!outer_withs_.empty()) sql += "WITH " + Join(outer_withs_, ",\n  ") + "\n";
    sql += "SELECT ";
    if (s.distinct) sql += "DISTINCT ";
    sql += Join(select_parts, ", ");
    if (pushdown_) {
      // Stored rows grouped by what the outer query reads (stored columns and tag dimension
      // ids); the outer query names the groups and merges the aggregate states.
      std::vector<std::string> keys;
      for (const auto& c : table_->columns) {
        if (keys_.count(std::string(c.name))) keys.push_back(QuoteIdent(c.name));
      }
      std::vector<std::string> items = keys;
      std::vector<std::string> group = keys;
      for (const auto& [alias, expr] : inner_keys_) {
        items.push_back(expr + " AS " + alias);
        group.push_back(alias);
      }
      items.insert(items.end(), states_.begin(), states_.end());
      std::string inner;
      if (!withs_.empty()) inner += "WITH " + Join(withs_, ",\n  ") + "\n";
      inner += "SELECT " + Join(items, ", ") + "\nFROM " + table_ref;
      if (!where.empty()) inner += "\nWHERE " + Join(where, " AND ");
      inner += "\nGROUP BY " + Join(group, ", ");
      sql += "\nFROM (\n" + inner + "\n)";
    } else {
      if (!withs_.empty()) sql = "WITH " + Join(withs_, ",\n  ") + "\n" + sql;
      sql += "\nFROM " + table_ref;
      if (!where.empty()) sql += "\nWHERE " + Join(where, " AND ");
    }
    if (!group_parts.empty()) sql += "\nGROUP BY " + Join(group_parts, ", ");
    if (!having.empty()) sql += "\nHAVING " + having;
    if (!order_parts.empty()) sql += "\nORDER BY " + Join(order_parts, ", ");
    if (s.limit) {
      sql += "\nLIMIT ";
      if (s.offset) sql += std::to_string(*s.offset) + ", ";
      sql += std::to_string(*s.limit);
    } else if (s.offset) {
      return Error(0, "OFFSET needs LIMIT");
    }
    out.sql = std::move(sql);
    return out;
  }

  static std::string Join(const std::vector<std::string>& v, std::string_view sep) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out += sep;
      out += v[i];
    }
    return out;
  }

  static void SplitAnd(const Expr& e, std::vector<const Expr*>* out) {
    if (e.kind == ExprKind::kBinary && e.text == "AND") {
      SplitAnd(*e.args[0], out);
      SplitAnd(*e.args[1], out);
    } else {
      out->push_back(&e);
    }
  }

  std::string Use(std::string_view physical) {
    // Outside aggregates and WHERE, a pushed-down query reads the column from the groups.
    if (pushdown_ && !in_aggregate_ && clause_ != Clause::kWhere) keys_.insert(std::string(physical));
    return QuoteIdent(physical);
  }

  // --- flow_tag lookups -------------------------------------------------------------------
  //
  // Rows store one tag set id per side (tag_set_id_0/1); a tag set's value lists the ids of
  // every dimension (enrich::TagSetValue), and each dimension's dictionary maps ids to names.

  static std::string DictReader(TagDimension d) {
    // One value per id: the allocation protocol's winner is the smallest live claim
    // (docs/design/smart-encoding.md).
    return "SELECT id, min(value) AS name FROM " + std::string(enrich::kTagDatabase) + "." +
           std::string(enrich::InfoOf(d).dictionary) + " FINAL WHERE released = 0 GROUP BY id";
  }

  // Tag sets as (id, t): t is the array of the set's dimension ids as text.
  static std::string TagSetReader() {
    return "SELECT id, splitByChar(',', min(value)) AS t FROM " + std::string(enrich::kTagDatabase) +
           "." + std::string(enrich::InfoOf(TagDimension::kTagSet).dictionary) +
           " FINAL WHERE released = 0 GROUP BY id";
  }

  // The id of dimension `d` inside a TagSetReader row.
  static std::string IdInSet(TagDimension d) {
    return "toUInt32OrZero(t[" + std::to_string(enrich::TagSetPosition(d)) + "])";
  }

  static std::string_view MetaTable(ColumnKind k) {
    return k == ColumnKind::kK8sLabel ? enrich::kPodLabelTable : enrich::kPodAnnotationTable;
  }

  std::string MetaReader(const ResolvedColumn& c, std::string_view select_list) {
    return "SELECT " + std::string(select_list) + " FROM " + std::string(enrich::kTagDatabase) +
           "." + std::string(MetaTable(c.kind)) + " FINAL WHERE key = " + QuoteString(c.key) +
           " AND deleted = 0";
  }

  // Read only by tag lookups and filters, never a group key itself.
  static std::string TagSetColumn(int side) {
    return QuoteIdent(enrich::IdColumnName(TagDimension::kTagSet, side));
  }

  // A constant (keys, values) pair of arrays computed once per query by a scalar subquery:
  // `transform(x, _mN.1, _mN.2, default)` looks x up in it. The pair always holds 0 -> default
  // (ClickHouse's transform() refuses empty arrays; 0 is "untagged" everywhere).
  std::string LookupArrays(std::vector<std::string>* withs, const std::string& keys_expr,
                           const std::string& values_expr, const std::string& zero_value,
                           const std::string& from) {
    const std::string scalar = "(SELECT (arrayConcat([toUInt32(0)], groupArray(" + keys_expr +
                               ")), arrayConcat([" + zero_value + "], groupArray(" + values_expr +
                               "))) FROM (" + from + "))";
    auto it = with_alias_.find(scalar);
    if (it == with_alias_.end()) {
      it = with_alias_.emplace(scalar, "_m" + std::to_string(with_alias_.size())).first;
    }
    const std::string entry = scalar + " AS " + it->second;
    if (std::find(withs->begin(), withs->end(), entry) == withs->end()) withs->push_back(entry);
    return it->second;
  }

  static std::string Transform(const std::string& key, const std::string& arrays, const std::string& zero) {
    return "transform(" + key + ", " + arrays + ".1, " + arrays + ".2, " + zero + ")";
  }

  // tag set id -> the set's id of dimension d.
  std::string SetToId(std::vector<std::string>* withs, TagDimension d) {
    return LookupArrays(withs, "id", IdInSet(d), "toUInt32(0)", TagSetReader());
  }
  // tag set id -> name of the set's dimension d.
  std::string SetToName(std::vector<std::string>* withs, TagDimension d) {
    return LookupArrays(withs, "set_id", "name", "''",
                        "SELECT set_id, name FROM (SELECT id AS set_id, " + IdInSet(d) + " AS dim_id FROM (" +
                            TagSetReader() + ")) ANY INNER JOIN (SELECT id AS dim_id, name FROM (" +
                            DictReader(d) + ")) USING dim_id");
  }
  // dimension id -> name.
  std::string IdToName(std::vector<std::string>* withs, TagDimension d) {
    return LookupArrays(withs, "id", "name", "''", DictReader(d));
  }
  // tag set id -> the label or annotation of the set's pod.
  std::string SetToMeta(std::vector<std::string>* withs, const ResolvedColumn& c) {
    return LookupArrays(
        withs, "set_id", "value", "''",
        "SELECT set_id, value FROM (SELECT id AS set_id, " + IdInSet(TagDimension::kPodCluster) +
            " AS pod_cluster_id, " + IdInSet(TagDimension::kPodNamespace) + " AS pod_ns_id, " +
            IdInSet(TagDimension::kPod) + " AS pod_id FROM (" + TagSetReader() + ")) ANY INNER JOIN (" +
            MetaReader(c, "pod_cluster_id, pod_ns_id, pod_id, value") +
            ") USING (pod_cluster_id, pod_ns_id, pod_id)");
  }

  // A tag, tag id, label or annotation of one side as ClickHouse text: a lookup of the row's
  // tag set id. In a pushed-down query (outside aggregates and WHERE) the stored rows are
  // grouped by the dimension id (or label value) and the outer query names the groups.
  std::string TagLookup(const ResolvedColumn& c, std::string_view user_name) {
    if (in_aggregate_) {
      tag_in_aggregate_ = true;
    } else {
      tag_outside_aggregate_ = true;
    }
    const bool inner_key = pushdown_ && !in_aggregate_ && clause_ != Clause::kWhere;
    std::vector<std::string>* withs = &withs_;
    const std::string set_col = TagSetColumn(c.side);
    if (!inner_key) {
      if (c.kind == ColumnKind::kTag) return Transform(set_col, SetToName(withs, c.dimension), "''");
      if (c.kind == ColumnKind::kTagId) return Transform(set_col, SetToId(withs, c.dimension), "toUInt32(0)");
      return Transform(set_col, SetToMeta(withs, c), "''");
    }
    if (c.kind == ColumnKind::kTag || c.kind == ColumnKind::kTagId) {
      const std::string alias = "_k_" + enrich::IdColumnName(c.dimension, c.side);
      AddInnerKey(alias, Transform(set_col, SetToId(withs, c.dimension), "toUInt32(0)"));
      if (c.kind == ColumnKind::kTagId) return alias;
      return Transform(alias, IdToName(&outer_withs_, c.dimension), "''");
    }
    const std::string expr = Transform(set_col, SetToMeta(withs, c), "''");
    for (const auto& k : inner_keys_) {
      if (k.second == expr) return k.first;
    }
    const std::string alias = "_k_meta_" + std::to_string(inner_keys_.size());
    AddInnerKey(alias, expr);
    return alias;
  }

  void AddInnerKey(const std::string& alias, const std::string& expr) {
    for (const auto& k : inner_keys_) {
      if (k.first == alias) return;
    }
    inner_keys_.emplace_back(alias, expr);
  }

  // `tag OP 'literal'` (and IN lists) in WHERE as a tag set lookup that needs no join. nullopt
  // when the shape does not fit (the generic lookup path handles it).
  std::optional<std::string> TagFilter(const Expr& e) {
    const Expr* col = nullptr;
    std::vector<const Expr*> literals;
    std::string op;
    bool negated = e.negated;
    if (e.kind == ExprKind::kBinary && (e.text == "=" || e.text == "!=" || e.text == "LIKE")) {
      if (e.args[0]->kind == ExprKind::kColumn && e.args[1]->kind == ExprKind::kString) {
        col = e.args[0].get();
        literals.push_back(e.args[1].get());
      } else if (e.text != "LIKE" && e.args[1]->kind == ExprKind::kColumn &&
                 e.args[0]->kind == ExprKind::kString) {
        col = e.args[1].get();
        literals.push_back(e.args[0].get());
      }
      op = e.text == "LIKE" ? "LIKE" : "=";
      if (e.text == "!=") negated = true;
    } else if (e.kind == ExprKind::kIn && e.args[0]->kind == ExprKind::kColumn) {
      col = e.args[0].get();
      for (size_t i = 1; i < e.args.size(); ++i) {
        if (e.args[i]->kind != ExprKind::kString) return std::nullopt;
        literals.push_back(e.args[i].get());
      }
      op = "IN";
    }
    if (col == nullptr) return std::nullopt;
    auto rc = catalog_.Resolve(*table_, col->text);
    if (!rc || (rc->kind != ColumnKind::kTag && rc->kind != ColumnKind::kK8sLabel &&
                rc->kind != ColumnKind::kK8sAnnotation)) {
      return std::nullopt;
    }
    std::string cond;
    if (op == "IN") {
      std::vector<std::string> v;
      for (const Expr* l : literals) v.push_back(QuoteString(l->text));
      cond = "IN (" + Join(v, ", ") + ")";
    } else {
      cond = op + " " + QuoteString(literals[0]->text);
    }
    const std::string sets = "(SELECT id FROM (" + TagSetReader() + ") WHERE ";
    if (rc->kind == ColumnKind::kTag) {
      const std::string id = IdInSet(rc->dimension);
      // Untagged rows carry tag set 0 and sets without the dimension id 0: '' means "no tag".
      if (op == "=" && literals[0]->text.empty()) {
        return TagSetColumn(rc->side) + (negated ? " IN " : " NOT IN ") + sets + id + " != 0)";
      }
      return TagSetColumn(rc->side) + (negated ? " NOT IN " : " IN ") + sets + id + " IN (SELECT id FROM (" +
             DictReader(rc->dimension) + ") WHERE name " + cond + "))";
    }
    return TagSetColumn(rc->side) + (negated ? " NOT IN " : " IN ") + sets + "(" +
           IdInSet(TagDimension::kPodCluster) + ", " + IdInSet(TagDimension::kPodNamespace) + ", " +
           IdInSet(TagDimension::kPod) + ") IN (" + MetaReader(*rc, "pod_cluster_id, pod_ns_id, pod_id") +
           " AND value " + cond + "))";
  }

  // --- expressions ------------------------------------------------------------------------

  StatusOr<Rendered> RenderColumn(const Expr& e) {
    if (auto rc = catalog_.Resolve(*table_, e.text)) {
      Rendered r;
      switch (rc->kind) {
        case ColumnKind::kPhysical:
          r.text = Use(rc->column->name);
          return r;
        case ColumnKind::kIp: {
          const std::string n = std::to_string(rc->side);
          r.text = "if(" + Use("is_ipv4") + ", IPv4NumToString(" + Use("ip4_" + n) +
                   "), IPv6NumToString(" + Use("ip6_" + n) + "))";
          return r;
        }
        case ColumnKind::kTag:
        case ColumnKind::kTagId:
        case ColumnKind::kK8sLabel:
        case ColumnKind::kK8sAnnotation:
          r.text = TagLookup(*rc, e.text);
          return r;
      }
    }
    if (clause_ != Clause::kSelect && clause_ != Clause::kWhere && aliases_.count(e.text)) {
      Rendered r;
      r.text = QuoteIdent(e.text);
      return r;
    }
    return Error(e.pos, "unknown column '" + e.text + "' in " + std::string(table_->database) + "." +
                            std::string(table_->name));
  }

  // Validates 'name' against an Enum8 column's values, so typos fail here with a position.
  Status CheckEnumLiteral(const Expr& col, const Expr& lit) {
    if (col.kind != ExprKind::kColumn || lit.kind != ExprKind::kString) return Status::Ok();
    auto rc = catalog_.Resolve(*table_, col.text);
    if (!rc || rc->kind != ColumnKind::kPhysical || rc->column->enumeration == nullptr) {
      return Status::Ok();
    }
    std::string names;
    for (const auto& v : rc->column->enumeration->values) {
      if (v.name == lit.text) return Status::Ok();
      if (!names.empty()) names += ", ";
      names += v.name;
    }
    return Error(lit.pos, "'" + lit.text + "' is not a value of " + col.text + " (one of: " + names + ")");
  }

  StatusOr<Rendered> Render(const Expr& e, bool in_aggregate) {
    Rendered r;
    switch (e.kind) {
      case ExprKind::kColumn:
        return RenderColumn(e);
      case ExprKind::kNumber:
        r.text = e.text[0] == '.' ? "0" + e.text : e.text;
        return r;
      case ExprKind::kString:
        r.text = QuoteString(e.text);
        return r;
      case ExprKind::kStar:
        if (clause_ != Clause::kSelect) return Error(e.pos, "'*' is only allowed in SELECT and count(*)");
        select_star_ = true;
        r.text = "*";
        return r;
      case ExprKind::kUnary: {
        SONDE_ASSIGN_OR_RETURN(Rendered a, Render(*e.args[0], in_aggregate));
        const bool is_not = e.text == "NOT";
        r.prec = is_not ? kPrecNot : kPrecUnary;
        // NOT's operand is always parenthesized unless primary: ClickHouse's NOT binds looser
        // than comparison, which readers of the SQL often do not expect.
        r.text = (is_not ? "NOT " : "-") + Paren(a, is_not ? kPrecPrimary : r.prec);
        r.aggregate = a.aggregate;
        return r;
      }
      case ExprKind::kBinary:
      case ExprKind::kIn:
        if (clause_ == Clause::kWhere) {
          if (auto f = TagFilter(e)) {
            r.text = *f;
            r.prec = kPrecCompare;
            return r;
          }
        }
        return e.kind == ExprKind::kIn ? RenderIn(e, in_aggregate) : RenderBinary(e, in_aggregate);
      case ExprKind::kBetween: {
        r.prec = kPrecCompare;
        std::string parts[3];
        for (int i = 0; i < 3; ++i) {
          SONDE_ASSIGN_OR_RETURN(Rendered a, Render(*e.args[i], in_aggregate));
          parts[i] = Paren(a, kPrecAdd);
          r.aggregate |= a.aggregate;
        }
        // Spelled out: clearer and valid in every ClickHouse version.
        if (e.negated) {
          r.prec = kPrecOr;
          r.text = parts[0] + " < " + parts[1] + " OR " + parts[0] + " > " + parts[2];
        } else {
          r.prec = kPrecAnd;
          r.text = parts[0] + " >= " + parts[1] + " AND " + parts[0] + " <= " + parts[2];
        }
        return r;
      }
      case ExprKind::kCall:
        return RenderCall(e, in_aggregate);
    }
    return Error(e.pos, "internal: unknown expression");
  }

  StatusOr<Rendered> RenderBinary(const Expr& e, bool in_aggregate) {
    Rendered r;
    const std::string& op = e.text;
    int prec;
    if (op == "OR") prec = kPrecOr;
    else if (op == "AND") prec = kPrecAnd;
    else if (op == "+" || op == "-") prec = kPrecAdd;
    else if (op == "*" || op == "/" || op == "%") prec = kPrecMul;
    else prec = kPrecCompare;
    if (prec == kPrecCompare && op != "LIKE") {
      SONDE_RETURN_IF_ERROR(CheckEnumLiteral(*e.args[0], *e.args[1]));
      SONDE_RETURN_IF_ERROR(CheckEnumLiteral(*e.args[1], *e.args[0]));
    }
    SONDE_ASSIGN_OR_RETURN(Rendered a, Render(*e.args[0], in_aggregate));
    SONDE_ASSIGN_OR_RETURN(Rendered b, Render(*e.args[1], in_aggregate));
    // Left-associative: the right operand needs parentheses at equal precedence.
    const int right_min = (prec == kPrecCompare) ? kPrecAdd : prec + 1;
    const int left_min = (prec == kPrecCompare) ? kPrecAdd : prec;
    std::string sym = op;
    if (op == "LIKE" && e.negated) sym = "NOT LIKE";
    r.text = Paren(a, left_min) + " " + sym + " " + Paren(b, right_min);
    r.prec = prec;
    r.aggregate = a.aggregate || b.aggregate;
    return r;
  }

  StatusOr<Rendered> RenderIn(const Expr& e, bool in_aggregate) {
    Rendered r;
    r.prec = kPrecCompare;
    SONDE_ASSIGN_OR_RETURN(Rendered lhs, Render(*e.args[0], in_aggregate));
    std::vector<std::string> items;
    for (size_t i = 1; i < e.args.size(); ++i) {
      SONDE_RETURN_IF_ERROR(CheckEnumLiteral(*e.args[0], *e.args[i]));
      SONDE_ASSIGN_OR_RETURN(Rendered a, Render(*e.args[i], in_aggregate));
      items.push_back(a.text);
      r.aggregate |= a.aggregate;
    }
    r.text = Paren(lhs, kPrecAdd) + (e.negated ? " NOT IN (" : " IN (") + Join(items, ", ") + ")";
    r.aggregate |= lhs.aggregate;
    return r;
  }

  StatusOr<Rendered> RenderCall(const Expr& e, bool in_aggregate) {
    const FunctionSpec* f = FindFunction(e.text);
    if (f == nullptr) return Error(e.pos, "unknown function '" + e.text + "'");
    const int n = static_cast<int>(e.args.size());
    if (n < f->min_args || n > f->max_args) {
      return Error(e.pos, std::string(f->name) + "() takes " +
                              (f->min_args == f->max_args ? std::to_string(f->min_args)
                                                          : std::to_string(f->min_args) + " to " +
                                                                std::to_string(f->max_args)) +
                              " argument(s), got " + std::to_string(n));
    }
    if (f->aggregate) {
      if (clause_ == Clause::kWhere || clause_ == Clause::kGroupBy) {
        return Error(e.pos, "aggregate function " + std::string(f->name) +
                                "() is not allowed in " +
                                (clause_ == Clause::kWhere ? "WHERE (use HAVING)" : "GROUP BY"));
      }
      if (in_aggregate) return Error(e.pos, "aggregate functions cannot be nested");
    }
    if (e.distinct && f->name != "count") return Error(e.pos, "DISTINCT is only supported in count()");
    if (f->aggregate && !in_aggregate_) {
      in_aggregate_ = true;
      auto r = RenderAggregate(e, *f, in_aggregate);
      in_aggregate_ = false;
      return r;
    }
    return RenderAggregate(e, *f, in_aggregate);
  }

  // An aggregate as ClickHouse text; in a pushed-down query, a -State in the grouped rows
  // (`_a_N`) and its -Merge in the outer query.
  StatusOr<Rendered> RenderAggregate(const Expr& e, const FunctionSpec& spec, bool in_aggregate) {
    SONDE_ASSIGN_OR_RETURN(Rendered r, RenderCallText(e, spec, in_aggregate));
    if (!pushdown_ || !spec.aggregate) return r;
    // r.text is name(args) or name(params)(args): insert the combinator after the name.
    const size_t open = r.text.find('(');
    const std::string name = r.text.substr(0, open);
    const std::string rest = r.text.substr(open);
    std::string params;
    if (spec.name == "percentile") params = rest.substr(0, rest.find(')') + 1);
    const std::string alias = "_a_" + std::to_string(states_.size());
    states_.push_back(name + "State" + rest + " AS " + alias);
    r.text = name + "Merge" + params + "(" + alias + ")";
    return r;
  }

  StatusOr<Rendered> RenderCallText(const Expr& e, const FunctionSpec& spec, bool in_aggregate) {
    const FunctionSpec* f = &spec;
    const int n = static_cast<int>(e.args.size());
    Rendered r;
    r.aggregate = f->aggregate;
    const bool inner_agg = in_aggregate || f->aggregate;
    // Special forms first.
    if (f->name == "count") {
      if (n == 0 || e.args[0]->kind == ExprKind::kStar) {
        if (e.distinct) return Error(e.pos, "count(DISTINCT *) is not supported");
        r.text = "count()";
        return r;
      }
      SONDE_ASSIGN_OR_RETURN(Rendered a, Render(*e.args[0], true));
      r.text = (e.distinct ? "uniqExact(" : "count(") + a.text + ")";
      return r;
    }
    if (f->name == "percentile") {
      const Expr& p = *e.args[1];
      std::optional<std::string> level;
      if (p.kind == ExprKind::kNumber) level = PercentToLevel(p.text);
      if (!level) return Error(p.pos, "percentile level must be a number in (0, 100]");
      SONDE_ASSIGN_OR_RETURN(Rendered a, Render(*e.args[0], true));
      r.text = "quantile(" + *level + ")(" + a.text + ")";
      return r;
    }
    if (f->name == "time") {
      const Expr& col = *e.args[0];
      auto rc = col.kind == ExprKind::kColumn ? catalog_.Resolve(*table_, col.text) : std::nullopt;
      if (!rc || rc->kind != ColumnKind::kPhysical || rc->column->type != schema::ColumnType::kDateTime) {
        return Error(col.pos, "time() buckets a DateTime column, e.g. time(time, 60)");
      }
      const Expr& step = *e.args[1];
      uint64_t seconds = 0;
      if (step.kind == ExprKind::kNumber) {
        seconds = std::strtoull(step.text.c_str(), nullptr, 10);
        if (std::to_string(seconds) != step.text) seconds = 0;
      }
      if (seconds == 0 || seconds > 366u * 86400) {
        return Error(step.pos, "time() interval must be a whole number of seconds (1 to 31622400)");
      }
      if (pushdown_ && !in_aggregate_ && clause_ != Clause::kWhere) {
        // A pushed-down query groups the stored rows by the bucket itself, not by the second.
        const std::string alias = "_t_" + std::string(rc->column->name) + "_" + step.text;
        AddInnerKey(alias, "intDiv(toUInt32(" + QuoteIdent(rc->column->name) + "), " + step.text + ") * " +
                               step.text);
        r.text = alias;
        return r;
      }
      r.prec = kPrecMul;
      r.text = "intDiv(toUInt32(" + Use(rc->column->name) + "), " + step.text + ") * " + step.text;
      return r;
    }
    std::vector<std::string> args;
    for (const auto& a : e.args) {
      if (a->kind == ExprKind::kStar) return Error(a->pos, "'*' is only allowed in count(*)");
      SONDE_ASSIGN_OR_RETURN(Rendered ra, Render(*a, inner_agg));
      args.push_back(ra.text);
      r.aggregate |= ra.aggregate;
    }
    r.text = std::string(f->clickhouse) + "(" + Join(args, ", ") + ")";
    return r;
  }

  std::string_view db_;
  std::string_view sql_;
  const Catalog& catalog_;
  const schema::Table* table_ = nullptr;
  Clause clause_ = Clause::kSelect;
  std::map<std::string, size_t> aliases_;
  bool select_star_ = false;
  const bool pushdown_ = false;
  bool pushdown_candidate_ = false;
  bool in_aggregate_ = false;       // rendering an aggregate's arguments
  bool tag_in_aggregate_ = false;   // a tag inside an aggregate (no pushdown)
  std::set<std::string> keys_;      // pushdown: stored columns read outside aggregates
  std::vector<std::string> states_; // pushdown: "<agg>State(...) AS _a_N"
  bool tag_outside_aggregate_ = false;
  std::vector<std::string> withs_;        // "(scalar) AS _mN" of the (inner) query
  std::vector<std::string> outer_withs_;  // pushdown: the outer query's (names of groups)
  std::map<std::string, std::string> with_alias_;  // scalar subquery -> _mN
  std::vector<std::pair<std::string, std::string>> inner_keys_;  // pushdown: alias, expression
};

}  // namespace

StatusOr<Translation> Translate(std::string_view db, std::string_view sql, const Catalog& catalog) {
  Translator t(db, sql, catalog);
  SONDE_ASSIGN_OR_RETURN(Translation out, t.Run());
  if (!t.PushdownApplies()) return out;
  return Translator(db, sql, catalog, /*pushdown=*/true).Run();
}

}  // namespace sonde::server::query
