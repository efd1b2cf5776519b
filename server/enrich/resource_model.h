// AutoTagging resource model: hosts, processes, clouds (region, zone, VPC, subnet) and
// Kubernetes (cluster, node, namespace, pod, service, workload, labels, annotations), loaded
// from a declarative inventory and updated by the Kubernetes watcher. Answers "which resource
// owns this address, in this VPC, at this time".
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/net/ip_address.h"
#include "server/enrich/tag_dimensions.h"

namespace sonde::server::enrich {

inline constexpr uint32_t kForever = std::numeric_limits<uint32_t>::max();

// [since_s, until_s): when the resource existed (renames and pod churn are separate entries).
struct Lifetime {
  uint32_t since_s = 0;
  uint32_t until_s = kForever;
  bool Contains(uint32_t t) const { return t >= since_s && t < until_s; }
};

struct Cidr {
  net::IpAddress base;  // masked
  int prefix_len = 0;   // of the 128-bit (v4-mapped for IPv4) address
  static std::optional<Cidr> Parse(std::string_view text);
  bool Contains(const net::IpAddress& ip) const;
};

struct VpcInfo {
  std::string name;
  std::string region;
};

struct SubnetInfo {
  std::string name;
  std::string vpc;
  std::string zone;
  Cidr cidr;
};

struct HostInfo {
  std::string name;
  std::string vpc;
  std::string zone;
  std::vector<net::IpAddress> ips;
  Lifetime life;
};

struct ProcessInfo {
  std::string host;
  uint32_t pid = 0;
  std::string name;
  Lifetime life;
};

struct PodInfo {
  std::string cluster;
  std::string ns;
  std::string name;
  std::string node;      // host name of the node
  std::string workload;  // e.g. "Deployment/web"
  std::vector<std::string> services;
  net::IpAddress ip;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  Lifetime life;
};

struct ServiceInfo {
  std::string cluster;
  std::string ns;
  std::string name;
  std::vector<net::IpAddress> cluster_ips;
  // Pods of the same cluster and namespace whose labels include all of these belong to the
  // service (applied to pods the Kubernetes watcher reports). Empty: membership comes from the
  // pods' own `services` list only.
  std::map<std::string, std::string> selector;
  Lifetime life;
};

struct ClusterInfo {
  std::string name;
  std::string vpc;  // pod and service addresses are unique within this VPC
};

// The tag strings of one side of a record (empty = no tag), per dimension.
struct ResourceTags {
  std::array<std::string, kTagDimensionCount> values;
  const PodInfo* pod = nullptr;  // when matched to a pod (labels, annotations)
  std::string& operator[](TagDimension d) { return values[static_cast<size_t>(d)]; }
  const std::string& operator[](TagDimension d) const { return values[static_cast<size_t>(d)]; }
};

// Not thread-safe for writes: build or update it on one thread, then share it read-only (the
// server swaps in a new model, or guards updates with its own lock).
class ResourceModel {
 public:
  // Inventory document: JSON, or YAML when `yaml` is true. Unknown keys are ignored; a
  // malformed entry is InvalidArgument naming it.
  static StatusOr<ResourceModel> FromInventory(std::string_view text, bool yaml);
  static StatusOr<ResourceModel> FromFile(const std::string& path);

  void AddVpc(VpcInfo v) { vpcs_[v.name] = std::move(v); }
  void AddSubnet(SubnetInfo s);
  void AddHost(HostInfo h);
  // Adds a process; one already known on the same host with the same pid, name and start is
  // ignored (agents report their processes repeatedly). True when the model changed.
  bool AddProcess(ProcessInfo p);
  void AddCluster(ClusterInfo c) { clusters_[c.name] = std::move(c); }
  // Adds a pod; a pod with the same (cluster, ns, name) that is still open is updated in place.
  void UpsertPod(PodInfo p);
  // Ends the open lifetime of a pod at `at_s` (Kubernetes DELETED).
  void EndPod(std::string_view cluster, std::string_view ns, std::string_view name, uint32_t at_s);
  void UpsertService(ServiceInfo s);
  void EndService(std::string_view cluster, std::string_view ns, std::string_view name, uint32_t at_s);

  // The most specific resource for `ip` seen from `vpc` at `time_s`: a pod (or service
  // ClusterIP) of a cluster in that VPC, else a host in that VPC, else the longest subnet of
  // that VPC. Cloud tags (region, zone, vpc, subnet) are filled from whatever matched.
  ResourceTags Match(std::string_view vpc, const net::IpAddress& ip, uint32_t time_s) const;
  // The tags of a host itself (host, zone, and the VPC's region when the host is known): what a
  // loopback address seen by that host's agent means.
  ResourceTags MatchHost(std::string_view vpc, std::string_view host, uint32_t time_s) const;
  // Process name of pid on a host at a time ("" when unknown).
  std::string ProcessName(std::string_view host, uint32_t pid, uint32_t time_s) const;
  // VPC of the host that runs an agent (by host name): the context for its records' addresses.
  std::string VpcOfHost(std::string_view host, uint32_t time_s) const;

  // Names of the live services selecting a pod with these labels (see ServiceInfo::selector).
  std::vector<std::string> ServicesSelecting(std::string_view cluster, std::string_view ns,
                                             const std::map<std::string, std::string>& labels,
                                             uint32_t time_s) const;
  bool HasHost(std::string_view name) const;
  // Start of the interval of constant answers holding `time_s`: Match, ProcessName and
  // VpcOfHost give the same result for every time in [StableFrom(t), next lifetime boundary).
  uint32_t StableFrom(uint32_t time_s) const;

  const std::vector<PodInfo>& pods() const { return pods_; }
  const std::vector<ServiceInfo>& services() const { return services_; }

 private:
  using Key = std::pair<std::string, net::IpAddress>;  // (vpc, ip)
  std::string ClusterVpc(std::string_view cluster) const;
  const SubnetInfo* SubnetFor(std::string_view vpc, const net::IpAddress& ip) const;
  // The host named `name` in `vpc` alive at `time_s` (the last one added wins); nullptr if none.
  const HostInfo* HostAt(std::string_view vpc, std::string_view name, uint32_t time_s) const;

  std::map<std::string, VpcInfo, std::less<>> vpcs_;
  std::map<std::string, ClusterInfo, std::less<>> clusters_;
  std::vector<SubnetInfo> subnets_;
  std::vector<HostInfo> hosts_;
  std::vector<ProcessInfo> processes_;
  std::vector<PodInfo> pods_;
  std::vector<ServiceInfo> services_;
  // Indexes into the vectors above, per (vpc, ip); several entries = different lifetimes.
  std::map<Key, std::vector<size_t>> host_by_ip_;
  std::map<Key, std::vector<size_t>> pod_by_ip_;
  std::map<Key, std::vector<size_t>> service_by_ip_;
  std::map<std::pair<std::string, uint32_t>, std::vector<size_t>, std::less<>> process_by_pid_;
  std::set<uint32_t> boundaries_;  // every since/until of every lifetime
  void NoteLife(const Lifetime& life) {
    if (life.since_s != 0) boundaries_.insert(life.since_s);
    if (life.until_s != kForever) boundaries_.insert(life.until_s);
  }
};

}  // namespace sonde::server::enrich
