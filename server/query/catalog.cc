// Resolution of stored and virtual column names.
#include "server/query/catalog.h"

namespace sonde::server::query {
namespace {

// "name_0" -> ("name", 0); nullopt without a _0/_1 suffix.
std::optional<std::pair<std::string_view, int>> SplitSide(std::string_view name) {
  if (name.size() < 3 || name[name.size() - 2] != '_') return std::nullopt;
  const char s = name.back();
  if (s != '0' && s != '1') return std::nullopt;
  return std::make_pair(name.substr(0, name.size() - 2), s - '0');
}

bool HasIpColumns(const schema::Table& t, int side) {
  const std::string n = std::to_string(side);
  return schema::FindColumn(t, "is_ipv4") && schema::FindColumn(t, "ip4_" + n) &&
         schema::FindColumn(t, "ip6_" + n);
}

// Every dimension of a side comes from its tag set column.
bool HasTags(const schema::Table& t, int side) {
  return schema::FindColumn(t, enrich::IdColumnName(enrich::TagDimension::kTagSet, side)) != nullptr;
}

}  // namespace

const schema::Table* Catalog::FindTable(std::string_view db, std::string_view name) const {
  const size_t dot = name.find('.');
  if (dot != std::string_view::npos) {
    db = name.substr(0, dot);
    name = name.substr(dot + 1);
  }
  const schema::Table* found = nullptr;
  for (const auto& t : tables_) {
    if (t.name != name) continue;
    if (!db.empty() && t.database != db) continue;
    if (found != nullptr) return nullptr;  // ambiguous without a database
    found = &t;
  }
  return found;
}

std::vector<const schema::Table*> Catalog::TablesIn(std::string_view db) const {
  std::vector<const schema::Table*> out;
  for (const auto& t : tables_) {
    if (t.database == db) out.push_back(&t);
  }
  return out;
}

bool Catalog::HasDatabase(std::string_view db) const {
  for (const auto& t : tables_) {
    if (t.database == db) return true;
  }
  return false;
}

std::optional<ResolvedColumn> Catalog::Resolve(const schema::Table& table,
                                               std::string_view name) const {
  if (const schema::Column* c = schema::FindColumn(table, name)) {
    ResolvedColumn r;
    r.column = c;
    return r;
  }
  const auto split = SplitSide(name);
  if (!split) return std::nullopt;
  const auto [base, side] = *split;
  ResolvedColumn r;
  r.side = side;
  if (base == "ip") {
    if (!HasIpColumns(table, side)) return std::nullopt;
    r.kind = ColumnKind::kIp;
    return r;
  }
  constexpr std::string_view kLabel = "k8s.label.";
  constexpr std::string_view kAnnotation = "k8s.annotation.";
  for (auto [prefix, kind] : {std::pair{kLabel, ColumnKind::kK8sLabel},
                              std::pair{kAnnotation, ColumnKind::kK8sAnnotation}}) {
    if (base.size() > prefix.size() && base.substr(0, prefix.size()) == prefix) {
      if (!HasTags(table, side)) return std::nullopt;
      r.kind = kind;
      r.key = std::string(base.substr(prefix.size()));
      return r;
    }
  }
  if (auto d = enrich::FindTagDimension(base)) {
    if (!HasTags(table, side)) return std::nullopt;
    r.kind = ColumnKind::kTag;
    r.dimension = *d;
    return r;
  }
  constexpr std::string_view kIdSuffix = "_id";
  if (base.size() > kIdSuffix.size() && base.substr(base.size() - kIdSuffix.size()) == kIdSuffix) {
    if (auto d = enrich::FindTagDimension(base.substr(0, base.size() - kIdSuffix.size()))) {
      if (!HasTags(table, side)) return std::nullopt;
      r.kind = ColumnKind::kTagId;
      r.dimension = *d;
      return r;
    }
  }
  return std::nullopt;
}

std::vector<VirtualColumnInfo> Catalog::VirtualColumns(const schema::Table& table) const {
  std::vector<VirtualColumnInfo> out;
  for (int side = 0; side < 2; ++side) {
    const std::string s = "_" + std::to_string(side);
    const char* who = side == 0 ? "client" : "server";
    if (HasIpColumns(table, side)) {
      out.push_back({"ip" + s, "String", std::string(who) + " address as text (IPv4 or IPv6)"});
    }
    if (!HasTags(table, side)) continue;
    for (const auto& d : enrich::AllTagDimensions()) {
      out.push_back({std::string(d.name) + s, "String",
                     std::string(d.doc) + " of the " + who + " (SmartEncoding tag)"});
    }
    for (const auto& d : enrich::AllTagDimensions()) {
      out.push_back({std::string(d.id_column) + s, "UInt32",
                     std::string("SmartEncoding id of ") + std::string(d.name) + s + " (0 = none)"});
    }
    out.push_back({"k8s.label.<key>" + s, "String", std::string("label <key> of the ") + who + " pod"});
    out.push_back({"k8s.annotation.<key>" + s, "String",
                   std::string("annotation <key> of the ") + who + " pod"});
  }
  return out;
}

}  // namespace sonde::server::query
