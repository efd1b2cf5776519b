// Resource model: inventory loading and the address matcher.
#include "server/enrich/resource_model.h"

#include <charconv>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace sonde::server::enrich {
namespace {

using json = nlohmann::json;

// Latest-starting entry alive at t among `idx` (renames and churn: the newest wins).
template <typename T>
const T* AliveAt(const std::vector<T>& items, const std::vector<size_t>& idx, uint32_t t) {
  const T* best = nullptr;
  for (size_t i : idx) {
    const T& it = items[i];
    if (it.life.Contains(t) && (best == nullptr || it.life.since_s >= best->life.since_s)) best = &it;
  }
  return best;
}

json YamlToJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& e : n) a.push_back(YamlToJson(e));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = YamlToJson(kv.second);
      return o;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = n.as<std::string>();
      uint64_t v = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec == std::errc() && p == s.data() + s.size() && n.Tag() != "!") return v;
      return s;
    }
    default:
      return nullptr;
  }
}

std::string Str(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

uint32_t U32(const json& o, const char* key, uint32_t def) {
  auto it = o.find(key);
  return it != o.end() && it->is_number_unsigned() ? it->get<uint32_t>() : def;
}

Lifetime LifeOf(const json& o) { return {U32(o, "since", 0), U32(o, "until", kForever)}; }

StatusOr<net::IpAddress> Ip(const json& v, std::string_view where) {
  if (v.is_string()) {
    if (auto ip = net::IpAddress::Parse(v.get<std::string>())) return *ip;
  }
  return InvalidArgumentError(std::string(where) + ": bad address " + v.dump());
}

StatusOr<std::vector<net::IpAddress>> Ips(const json& o, const char* key, std::string_view where) {
  std::vector<net::IpAddress> out;
  auto it = o.find(key);
  if (it == o.end()) return out;
  if (it->is_string()) {
    SONDE_ASSIGN_OR_RETURN(auto ip, Ip(*it, where));
    out.push_back(ip);
    return out;
  }
  if (!it->is_array()) return InvalidArgumentError(std::string(where) + ": '" + key + "' must be a list");
  for (const auto& e : *it) {
    SONDE_ASSIGN_OR_RETURN(auto ip, Ip(e, where));
    out.push_back(ip);
  }
  return out;
}

std::map<std::string, std::string> StringMap(const json& o, const char* key) {
  std::map<std::string, std::string> out;
  auto it = o.find(key);
  if (it == o.end() || !it->is_object()) return out;
  for (auto& [k, v] : it->items()) out[k] = v.is_string() ? v.get<std::string>() : v.dump();
  return out;
}

const json& List(const json& doc, const char* key) {
  static const json kEmpty = json::array();
  auto it = doc.find(key);
  return it != doc.end() && it->is_array() ? *it : kEmpty;
}

}  // namespace

std::optional<Cidr> Cidr::Parse(std::string_view text) {
  const size_t slash = text.find('/');
  auto ip = net::IpAddress::Parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  const int max_len = ip->is_v4() ? 32 : 128;
  int len = max_len;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (ec != std::errc() || p != digits.data() + digits.size() || len < 0 || len > max_len) {
      return std::nullopt;
    }
  }
  Cidr c;
  c.prefix_len = ip->is_v4() ? 96 + len : len;
  auto bytes = ip->bytes();
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(c.prefix_len - i * 8, 0, 8);
    bytes[i] &= static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
  }
  c.base = net::IpAddress::V6(bytes.data());
  return c;
}

bool Cidr::Contains(const net::IpAddress& ip) const {
  const auto& a = ip.bytes();
  const auto& b = base.bytes();
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(prefix_len - i * 8, 0, 8);
    if (keep == 0) return true;
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - keep));
    if ((a[i] & mask) != b[i]) return false;
  }
  return true;
}

StatusOr<ResourceModel> ResourceModel::FromInventory(std::string_view text, bool yaml) {
  json doc;
  try {
    doc = yaml ? YamlToJson(YAML::Load(std::string(text))) : json::parse(text);
  } catch (const std::exception& e) {  // edge: third-party parsers throw
    return InvalidArgumentError(std::string("inventory does not parse: ") + e.what());
  }
  if (!doc.is_object()) return InvalidArgumentError("inventory must be an object");
  ResourceModel m;
  for (const auto& v : List(doc, "vpcs")) m.AddVpc({Str(v, "name"), Str(v, "region")});
  for (const auto& c : List(doc, "clusters")) m.AddCluster({Str(c, "name"), Str(c, "vpc")});
  for (const auto& s : List(doc, "subnets")) {
    auto cidr = Cidr::Parse(Str(s, "cidr"));
    if (!cidr) return InvalidArgumentError("subnet '" + Str(s, "name") + "': bad cidr " + s.value("cidr", json()).dump());
    m.AddSubnet({Str(s, "name"), Str(s, "vpc"), Str(s, "zone"), *cidr});
  }
  for (const auto& h : List(doc, "hosts")) {
    SONDE_ASSIGN_OR_RETURN(auto ips, Ips(h, "ips", "host '" + Str(h, "name") + "'"));
    m.AddHost({Str(h, "name"), Str(h, "vpc"), Str(h, "zone"), std::move(ips), LifeOf(h)});
  }
  for (const auto& p : List(doc, "processes")) {
    m.AddProcess({Str(p, "host"), U32(p, "pid", 0), Str(p, "name"), LifeOf(p)});
  }
  for (const auto& s : List(doc, "services")) {
    SONDE_ASSIGN_OR_RETURN(auto ips, Ips(s, "cluster_ips", "service '" + Str(s, "name") + "'"));
    m.UpsertService({Str(s, "cluster"), Str(s, "namespace"), Str(s, "name"), std::move(ips),
                     StringMap(s, "selector"), LifeOf(s)});
  }
  for (const auto& p : List(doc, "pods")) {
    PodInfo pod;
    pod.cluster = Str(p, "cluster");
    pod.ns = Str(p, "namespace");
    pod.name = Str(p, "name");
    pod.node = Str(p, "node");
    pod.workload = Str(p, "workload");
    if (auto it = p.find("services"); it != p.end() && it->is_array()) {
      for (const auto& s : *it) {
        if (s.is_string()) pod.services.push_back(s.get<std::string>());
      }
    }
    SONDE_ASSIGN_OR_RETURN(pod.ip, Ip(p.value("ip", json()), "pod '" + pod.name + "'"));
    pod.labels = StringMap(p, "labels");
    pod.annotations = StringMap(p, "annotations");
    pod.life = LifeOf(p);
    m.UpsertPod(std::move(pod));
  }
  return m;
}

StatusOr<ResourceModel> ResourceModel::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot open inventory " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  const bool yaml = path.ends_with(".yaml") || path.ends_with(".yml");
  return FromInventory(ss.str(), yaml);
}

void ResourceModel::AddSubnet(SubnetInfo s) { subnets_.push_back(std::move(s)); }

uint32_t ResourceModel::StableFrom(uint32_t time_s) const {
  auto it = boundaries_.upper_bound(time_s);
  return it == boundaries_.begin() ? 0 : *std::prev(it);
}

void ResourceModel::AddHost(HostInfo h) {
  NoteLife(h.life);
  const size_t i = hosts_.size();
  for (const auto& ip : h.ips) host_by_ip_[{h.vpc, ip}].push_back(i);
  hosts_.push_back(std::move(h));
}

bool ResourceModel::AddProcess(ProcessInfo p) {
  auto& idx = process_by_pid_[{p.host, p.pid}];
  for (size_t i : idx) {
    const ProcessInfo& q = processes_[i];
    if (q.name == p.name && q.life.since_s == p.life.since_s && q.life.until_s == p.life.until_s) return false;
  }
  NoteLife(p.life);
  idx.push_back(processes_.size());
  processes_.push_back(std::move(p));
  return true;
}

std::vector<std::string> ResourceModel::ServicesSelecting(std::string_view cluster, std::string_view ns,
                                                          const std::map<std::string, std::string>& labels,
                                                          uint32_t time_s) const {
  std::vector<std::string> out;
  for (const auto& s : services_) {
    if (s.selector.empty() || s.cluster != cluster || s.ns != ns || !s.life.Contains(time_s)) continue;
    bool all = true;
    for (const auto& [k, v] : s.selector) {
      auto it = labels.find(k);
      all = all && it != labels.end() && it->second == v;
    }
    if (all) out.push_back(s.name);
  }
  return out;
}

const HostInfo* ResourceModel::HostAt(std::string_view vpc, std::string_view name, uint32_t time_s) const {
  const HostInfo* best = nullptr;
  for (const auto& h : hosts_) {
    if (h.name == name && h.vpc == vpc && h.life.Contains(time_s)) best = &h;
  }
  return best;
}

bool ResourceModel::HasHost(std::string_view name) const {
  for (const auto& h : hosts_) {
    if (h.name == name) return true;
  }
  return false;
}

std::string ResourceModel::ClusterVpc(std::string_view cluster) const {
  auto it = clusters_.find(cluster);
  return it == clusters_.end() ? std::string() : it->second.vpc;
}

void ResourceModel::UpsertPod(PodInfo p) {
  NoteLife(p.life);
  for (auto& existing : pods_) {
    if (existing.cluster == p.cluster && existing.ns == p.ns && existing.name == p.name &&
        existing.life.until_s == kForever && existing.ip == p.ip) {
      const uint32_t since = existing.life.since_s;
      existing = std::move(p);
      existing.life.since_s = std::min(since, existing.life.since_s);
      return;
    }
  }
  // Same name, new address (rescheduled): close the old entry where the new one starts.
  for (auto& existing : pods_) {
    if (existing.cluster == p.cluster && existing.ns == p.ns && existing.name == p.name &&
        existing.life.until_s == kForever && existing.life.since_s <= p.life.since_s) {
      existing.life.until_s = p.life.since_s;
    }
  }
  const size_t i = pods_.size();
  pod_by_ip_[{ClusterVpc(p.cluster), p.ip}].push_back(i);
  pods_.push_back(std::move(p));
}

void ResourceModel::EndPod(std::string_view cluster, std::string_view ns, std::string_view name,
                           uint32_t at_s) {
  for (auto& p : pods_) {
    if (p.cluster == cluster && p.ns == ns && p.name == name && p.life.until_s == kForever) {
      p.life.until_s = std::max(at_s, p.life.since_s);
      NoteLife(p.life);
    }
  }
}

void ResourceModel::UpsertService(ServiceInfo s) {
  NoteLife(s.life);
  for (auto& existing : services_) {
    if (existing.cluster == s.cluster && existing.ns == s.ns && existing.name == s.name &&
        existing.life.until_s == kForever && existing.cluster_ips == s.cluster_ips) {
      existing.life.since_s = std::min(existing.life.since_s, s.life.since_s);
      return;
    }
  }
  EndService(s.cluster, s.ns, s.name, s.life.since_s);
  const size_t i = services_.size();
  for (const auto& ip : s.cluster_ips) service_by_ip_[{ClusterVpc(s.cluster), ip}].push_back(i);
  services_.push_back(std::move(s));
}

void ResourceModel::EndService(std::string_view cluster, std::string_view ns, std::string_view name,
                               uint32_t at_s) {
  for (auto& s : services_) {
    if (s.cluster == cluster && s.ns == ns && s.name == name && s.life.until_s == kForever) {
      s.life.until_s = std::max(at_s, s.life.since_s);
      NoteLife(s.life);
    }
  }
}

const SubnetInfo* ResourceModel::SubnetFor(std::string_view vpc, const net::IpAddress& ip) const {
  const SubnetInfo* best = nullptr;
  for (const auto& s : subnets_) {
    if (s.vpc == vpc && s.cidr.Contains(ip) && (best == nullptr || s.cidr.prefix_len > best->cidr.prefix_len)) {
      best = &s;
    }
  }
  return best;
}

ResourceTags ResourceModel::Match(std::string_view vpc, const net::IpAddress& ip, uint32_t time_s) const {
  ResourceTags t;
  const Key key{std::string(vpc), ip};
  std::string zone;
  std::string host_name;
  if (auto it = pod_by_ip_.find(key); it != pod_by_ip_.end()) {
    if (const PodInfo* pod = AliveAt(pods_, it->second, time_s)) {
      t.pod = pod;
      t[TagDimension::kPodCluster] = pod->cluster;
      t[TagDimension::kPodNamespace] = pod->ns;
      t[TagDimension::kPod] = pod->name;
      t[TagDimension::kPodNode] = pod->node;
      t[TagDimension::kWorkload] = pod->workload;
      if (!pod->services.empty()) t[TagDimension::kService] = pod->services.front();
      host_name = pod->node;
    }
  }
  if (t.pod == nullptr) {
    if (auto it = service_by_ip_.find(key); it != service_by_ip_.end()) {
      if (const ServiceInfo* svc = AliveAt(services_, it->second, time_s)) {
        t[TagDimension::kPodCluster] = svc->cluster;
        t[TagDimension::kPodNamespace] = svc->ns;
        t[TagDimension::kService] = svc->name;
      }
    }
  }
  if (t.pod == nullptr && t[TagDimension::kService].empty()) {
    if (auto it = host_by_ip_.find(key); it != host_by_ip_.end()) {
      if (const HostInfo* h = AliveAt(hosts_, it->second, time_s)) host_name = h->name;
    }
  }
  // The node (or host) gives host and zone; the pod's node is looked up by name.
  if (!host_name.empty()) {
    t[TagDimension::kHost] = host_name;
    if (const HostInfo* h = HostAt(vpc, host_name, time_s)) zone = h->zone;
  }
  const SubnetInfo* subnet = SubnetFor(vpc, ip);
  if (subnet != nullptr) {
    t[TagDimension::kSubnet] = subnet->name;
    if (zone.empty()) zone = subnet->zone;
  }
  t[TagDimension::kZone] = zone;
  // An address nothing claims (e.g. on the internet) is not tagged with the observer's VPC.
  const bool matched = t.pod != nullptr || !t[TagDimension::kService].empty() ||
                       !host_name.empty() || subnet != nullptr;
  if (auto it = vpcs_.find(vpc); matched && it != vpcs_.end()) {
    t[TagDimension::kVpc] = it->second.name;
    t[TagDimension::kRegion] = it->second.region;
  }
  return t;
}

ResourceTags ResourceModel::MatchHost(std::string_view vpc, std::string_view host, uint32_t time_s) const {
  ResourceTags t;
  const HostInfo* best = HostAt(vpc, host, time_s);
  if (best == nullptr) return t;
  t[TagDimension::kHost] = best->name;
  t[TagDimension::kZone] = best->zone;
  if (auto it = vpcs_.find(vpc); it != vpcs_.end()) {
    t[TagDimension::kVpc] = it->second.name;
    t[TagDimension::kRegion] = it->second.region;
  }
  return t;
}

std::string ResourceModel::ProcessName(std::string_view host, uint32_t pid, uint32_t time_s) const {
  auto it = process_by_pid_.find(std::make_pair(std::string(host), pid));
  if (it == process_by_pid_.end()) return std::string();
  const ProcessInfo* best = AliveAt(processes_, it->second, time_s);
  return best ? best->name : std::string();
}

std::string ResourceModel::VpcOfHost(std::string_view host, uint32_t time_s) const {
  const HostInfo* best = nullptr;
  for (const auto& h : hosts_) {
    if (h.name == host && h.life.Contains(time_s) && (best == nullptr || h.life.since_s >= best->life.since_s)) {
      best = &h;
    }
  }
  return best ? best->vpc : std::string();
}

}  // namespace sonde::server::enrich
