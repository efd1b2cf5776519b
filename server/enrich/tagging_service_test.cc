// TaggingService as storage sees it: both sides of every record type get ids that decode to the
// matched resources; agent registrations add hosts, ProcessInfo records add processes; pods
// from Kubernetes (list, rename by watch event, delete) tag records by their own time; model
// writers and the tagger run concurrently.
#include "server/enrich/tagging_service.h"

#include <gtest/gtest.h>

#include <thread>

#include "server/enrich/testing/fake_kube_api_server.h"

namespace sonde::server::enrich {
namespace {

uint32_t V4(const char* s) { return net::IpAddress::Parse(s)->v4(); }

constexpr char kInventory[] = R"(
vpcs: [{name: vpc-a, region: eu-1}]
subnets: [{name: a-app, vpc: vpc-a, zone: eu-1b, cidr: 10.0.0.0/16}]
hosts: [{name: node-1, vpc: vpc-a, zone: eu-1b, ips: [10.0.1.10]}]
clusters: [{name: prod, vpc: vpc-a}]
services:
  - {cluster: prod, namespace: shop, name: web-svc, cluster_ips: [10.96.0.10], selector: {app: web}}
pods:
  - {cluster: prod, namespace: shop, name: db-0, node: node-1, services: [db], ip: 10.0.2.9,
     labels: {app: db}}
)";

class TaggingServiceTest : public ::testing::Test {
 protected:
  TaggingServiceTest() : dictionary_(&store_, Options(), &registry_) {}
  static TagDictionaryOptions Options() {
    TagDictionaryOptions o;
    o.settle = std::chrono::milliseconds(1);
    return o;
  }
  void SetUp() override {
    auto model = ResourceModel::FromInventory(kInventory, /*yaml=*/true);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    TaggingServiceOptions options;
    options.kube_cluster = "prod";
    service_ = std::make_unique<TaggingService>(
        std::move(*model), &dictionary_, &store_,
        [](uint32_t id) -> std::optional<AgentHost> {
          if (id == 7) return AgentHost{"node-1", {}};
          if (id == 8) return AgentHost{"vm-9", {*net::IpAddress::Parse("10.0.5.5")}};
          return std::nullopt;
        },
        options, &registry_);
  }
  // Value of tag id `column` (e.g. "pod_id_1") of record `i` in the tagger's output: the side's
  // tag set id, decoded through the tag set dictionary and then the dimension's.
  std::string Decoded(const std::vector<uint32_t>& ids, size_t i, const std::string& column) {
    const auto& cols = service_->Columns();
    const int side = column.back() - '0';
    const std::string set_column = IdColumnName(TagDimension::kTagSet, side);
    for (size_t c = 0; c < cols.size(); ++c) {
      if (cols[c] != set_column) continue;
      const std::string dim = column.substr(0, column.rfind("_id_"));
      auto d = FindTagDimension(dim);
      EXPECT_TRUE(d.has_value()) << dim;
      auto set = dictionary_.Decode(TagDimension::kTagSet, ids[i * cols.size() + c]);
      if (!set) return "<unknown tag set>";
      auto set_ids = ParseTagSetValue(*set);
      if (!set_ids) return "<malformed tag set " + *set + ">";
      return dictionary_.Decode(*d, (*set_ids)[static_cast<size_t>(*d)]).value_or("<unknown id>");
    }
    ADD_FAILURE() << "no column " << set_column;
    return "";
  }
  static sonde::agent::v1::L7RequestLog L7(uint32_t time, const char* client, const char* server,
                                           uint32_t pid0 = 0, uint32_t pid1 = 0) {
    sonde::agent::v1::L7RequestLog m;
    m.set_time(time);
    m.set_is_ipv4(1);
    m.set_ip4_0(V4(client));
    m.set_ip4_1(V4(server));
    m.set_process_id_0(pid0);
    m.set_process_id_1(pid1);
    return m;
  }

  metrics::Registry registry_;
  MemoryTagStore store_;
  TagDictionary dictionary_;
  std::unique_ptr<TaggingService> service_;
};

TEST_F(TaggingServiceTest, BothSidesOfEveryRecordType) {
  const auto& cols = service_->Columns();
  ASSERT_EQ(cols.size(), 2u);
  EXPECT_EQ(cols.front(), "tag_set_id_0");
  EXPECT_EQ(cols.back(), "tag_set_id_1");

  storage::AgentBatch batch;
  batch.agent_id = 7;
  auto* p = batch.records.add_processes();
  p->set_pid(4321);
  p->set_name("curl");
  p->set_start_time_us(50'000'000);
  *batch.records.add_l7_request_logs() = L7(100, "10.0.1.10", "10.0.2.9", 4321, 0);
  auto* l4 = batch.records.add_l4_flow_logs();
  l4->set_time(100);
  l4->set_is_ipv4(1);
  l4->set_ip4_0(V4("10.0.1.10"));
  l4->set_ip4_1(V4("10.96.0.10"));
  auto* nm = batch.records.add_network_metrics();
  nm->set_time(100);
  nm->set_is_ipv4(1);
  nm->set_ip4_0(V4("8.8.8.8"));
  nm->set_ip4_1(V4("10.0.2.9"));
  auto* am = batch.records.add_application_metrics();
  am->set_time(100);
  am->set_is_ipv4(0);
  am->set_ip6_0(std::string(16, '\0'));
  am->set_ip6_1(std::string(16, '\0'));

  std::vector<uint32_t> ids;
  ASSERT_TRUE(service_->Tag(batch, &ids).ok());
  ASSERT_EQ(ids.size(), 4 * cols.size());
  // L7: host process -> pod db-0.
  EXPECT_EQ(Decoded(ids, 0, "host_id_0"), "node-1");
  EXPECT_EQ(Decoded(ids, 0, "process_name_id_0"), "curl");
  EXPECT_EQ(Decoded(ids, 0, "zone_id_0"), "eu-1b");
  EXPECT_EQ(Decoded(ids, 0, "region_id_0"), "eu-1");
  EXPECT_EQ(Decoded(ids, 0, "pod_id_1"), "db-0");
  EXPECT_EQ(Decoded(ids, 0, "service_id_1"), "db");
  EXPECT_EQ(Decoded(ids, 0, "pod_ns_id_1"), "shop");
  EXPECT_EQ(Decoded(ids, 0, "pod_cluster_id_1"), "prod");
  EXPECT_EQ(Decoded(ids, 0, "pod_node_id_1"), "node-1");
  EXPECT_EQ(Decoded(ids, 0, "process_name_id_1"), "");
  // L4: service ClusterIP.
  EXPECT_EQ(Decoded(ids, 1, "service_id_1"), "web-svc");
  EXPECT_EQ(Decoded(ids, 1, "pod_id_1"), "");
  // Network metric: the internet side stays untagged.
  EXPECT_EQ(Decoded(ids, 2, "vpc_id_0"), "");
  EXPECT_EQ(Decoded(ids, 2, "pod_id_1"), "db-0");
  // Application metric with unknown addresses: untagged, tag set 0.
  for (size_t c = 0; c < cols.size(); ++c) EXPECT_EQ(ids[3 * cols.size() + c], 0u) << cols[c];
  // Sides with the same tags share one tag set: the L7 and network-metric servers are db-0.
  EXPECT_EQ(ids[0 * cols.size() + 1], ids[2 * cols.size() + 1]);
  EXPECT_NE(ids[0 * cols.size() + 0], ids[0 * cols.size() + 1]);
  // A process before its start time is not named.
  batch.records.clear_processes();
  batch.records.mutable_l7_request_logs(0)->set_time(10);
  ids.clear();
  ASSERT_TRUE(service_->Tag(batch, &ids).ok());
  EXPECT_EQ(Decoded(ids, 0, "process_name_id_0"), "");
  EXPECT_EQ(registry_.CounterTotal("sonde_server_tag_processes_total"), 1u);
}

TEST_F(TaggingServiceTest, LoopbackIsTheAgentsHost) {
  storage::AgentBatch batch;
  batch.agent_id = 7;  // node-1: in the inventory with its VPC and zone
  *batch.records.add_l7_request_logs() = L7(100, "127.0.0.1", "127.0.0.53");
  auto* am = batch.records.add_application_metrics();
  am->set_time(100);
  am->set_is_ipv4(0);
  am->set_ip6_0(std::string(15, '\0') + '\x01');  // ::1
  am->set_ip6_1(std::string(16, '\0'));             // :: is not loopback
  std::vector<uint32_t> ids;
  ASSERT_TRUE(service_->Tag(batch, &ids).ok());
  for (const char* col : {"host_id_0", "host_id_1"}) EXPECT_EQ(Decoded(ids, 0, col), "node-1") << col;
  EXPECT_EQ(Decoded(ids, 0, "zone_id_1"), "eu-1b");
  EXPECT_EQ(Decoded(ids, 0, "vpc_id_1"), "vpc-a");
  EXPECT_EQ(Decoded(ids, 0, "region_id_0"), "eu-1");
  EXPECT_EQ(Decoded(ids, 0, "pod_id_1"), "");
  EXPECT_EQ(Decoded(ids, 1, "host_id_0"), "node-1");
  EXPECT_EQ(Decoded(ids, 1, "host_id_1"), "");
  // An agent the server does not know gives loopback no host.
  batch.agent_id = 99;
  ids.clear();
  ASSERT_TRUE(service_->Tag(batch, &ids).ok());
  EXPECT_EQ(Decoded(ids, 0, "host_id_0"), "");
}

TEST_F(TaggingServiceTest, RegisteredAgentHostAndUnknownAgent) {
  storage::AgentBatch batch;
  batch.agent_id = 8;  // vm-9 is not in the inventory: its registration adds it
  *batch.records.add_l7_request_logs() = L7(100, "10.0.5.5", "10.0.1.10");
  std::vector<uint32_t> ids;
  ASSERT_TRUE(service_->Tag(batch, &ids).ok());
  EXPECT_EQ(Decoded(ids, 0, "host_id_0"), "vm-9");
  // Addresses are VPC-scoped: a host only known from its registration has no VPC, so it does
  // not see vpc-a's node-1.
  EXPECT_EQ(Decoded(ids, 0, "host_id_1"), "");
  batch.agent_id = 99;
  ids.clear();
  ASSERT_TRUE(service_->Tag(batch, &ids).ok());
  EXPECT_EQ(Decoded(ids, 0, "host_id_0"), "vm-9");
  EXPECT_EQ(registry_.CounterTotal("sonde_server_tag_unknown_agent_batches_total"), 1u);
}

TEST_F(TaggingServiceTest, KubernetesPodsRenameAndSelectorServices) {
  using testing::FakePod;
  service_->ApplyPodList({nlohmann::json::parse(FakePod("web-a", "10.0.3.1", "1", "web"))}, 1000);
  // Same address, new name (the pod was replaced) at t=2000; the old one is deleted.
  service_->ApplyPodEvent(WatchEventType::kAdded, nlohmann::json::parse(FakePod("web-b", "10.0.3.1", "2", "web")),
                          2000);
  service_->ApplyPodEvent(WatchEventType::kDeleted, nlohmann::json::parse(FakePod("web-a", "10.0.3.1", "3", "web")),
                          2000);
  service_->ApplyPodEvent(WatchEventType::kDeleted, nlohmann::json::parse(R"({"metadata":{"name":5}})"), 2000);
  storage::AgentBatch batch;
  batch.agent_id = 7;
  *batch.records.add_l7_request_logs() = L7(500, "10.0.1.10", "10.0.3.1");   // before the first list: still web-a
  *batch.records.add_l7_request_logs() = L7(1999, "10.0.1.10", "10.0.3.1");
  *batch.records.add_l7_request_logs() = L7(2000, "10.0.1.10", "10.0.3.1");
  *batch.records.add_l7_request_logs() = L7(3000, "10.0.1.10", "10.0.3.1");
  std::vector<uint32_t> ids;
  ASSERT_TRUE(service_->Tag(batch, &ids).ok());
  EXPECT_EQ(Decoded(ids, 0, "pod_id_1"), "web-a");
  EXPECT_EQ(Decoded(ids, 1, "pod_id_1"), "web-a");
  EXPECT_EQ(Decoded(ids, 2, "pod_id_1"), "web-b");
  EXPECT_EQ(Decoded(ids, 3, "pod_id_1"), "web-b");
  EXPECT_EQ(Decoded(ids, 3, "service_id_1"), "web-svc");  // by the inventory service's selector
  EXPECT_EQ(Decoded(ids, 3, "workload_id_1"), "ReplicaSet/web-5d");

  // Labels are published once per change by Maintain(), keyed by the pods' ids.
  EXPECT_NE(service_->pod_changes(), service_->published_pod_changes());
  ASSERT_TRUE(service_->Maintain().ok());
  EXPECT_EQ(service_->pod_changes(), service_->published_pod_changes());
  const auto labels = store_.PodMetadata(false);
  const uint32_t pod_b = *dictionary_.Find(TagDimension::kPod, "web-b");
  bool found = false;
  for (const auto& [key, value] : labels) {
    found = found || (key.find("/" + std::to_string(pod_b) + "/app") != std::string::npos && value == "web");
  }
  EXPECT_TRUE(found);

  // A re-list without web-b ends it.
  service_->ApplyPodList({}, 4000);
  batch.records.clear_l7_request_logs();
  *batch.records.add_l7_request_logs() = L7(4001, "10.0.1.10", "10.0.3.1");
  ids.clear();
  ASSERT_TRUE(service_->Tag(batch, &ids).ok());
  EXPECT_EQ(Decoded(ids, 0, "pod_id_1"), "");
}

// Tag set ids of sides seen in earlier batches come from a cache: it must answer exactly as a
// fresh match would, after every kind of model change between batches.
TEST_F(TaggingServiceTest, SidesCachedAcrossBatchesFollowModelChanges) {
  using testing::FakePod;
  storage::AgentBatch batch;
  batch.agent_id = 7;
  *batch.records.add_l7_request_logs() = L7(1000, "10.0.1.10", "10.0.3.1", 4321, 0);
  *batch.records.add_l7_request_logs() = L7(1001, "10.0.1.10", "10.0.3.1", 4321, 0);
  std::vector<uint32_t> ids;
  ASSERT_TRUE(service_->Tag(batch, &ids).ok());
  EXPECT_EQ(Decoded(ids, 0, "pod_id_1"), "");
  EXPECT_EQ(Decoded(ids, 1, "process_name_id_0"), "");
  const uint32_t untagged_set = ids[1];
  // The same sides again: the same ids.
  std::vector<uint32_t> again;
  ASSERT_TRUE(service_->Tag(batch, &again).ok());
  EXPECT_EQ(again, ids);
  // A pod appears on the server address (since before these records): the next batch sees it.
  service_->ApplyPodEvent(WatchEventType::kAdded, nlohmann::json::parse(FakePod("web-a", "10.0.3.1", "1", "web")),
                          500);
  ids.clear();
  ASSERT_TRUE(service_->Tag(batch, &ids).ok());
  EXPECT_EQ(Decoded(ids, 0, "pod_id_1"), "web-a");
  EXPECT_EQ(Decoded(ids, 1, "pod_id_1"), "web-a");
  EXPECT_NE(ids[1], untagged_set);
  // A ProcessInfo record names the client process, for the records of its own batch already.
  auto* p = batch.records.add_processes();
  p->set_pid(4321);
  p->set_name("curl");
  p->set_start_time_us(0);
  ids.clear();
  ASSERT_TRUE(service_->Tag(batch, &ids).ok());
  EXPECT_EQ(Decoded(ids, 0, "process_name_id_0"), "curl");
  // The same ProcessInfo again changes nothing, and answers stay the same.
  std::vector<uint32_t> same;
  ASSERT_TRUE(service_->Tag(batch, &same).ok());
  EXPECT_EQ(same, ids);
  // The pod is deleted at 1001: a record at 1000 keeps it, one at 1001 loses it.
  service_->ApplyPodEvent(WatchEventType::kDeleted, nlohmann::json::parse(FakePod("web-a", "10.0.3.1", "2", "web")),
                          1001);
  ids.clear();
  ASSERT_TRUE(service_->Tag(batch, &ids).ok());
  EXPECT_EQ(Decoded(ids, 0, "pod_id_1"), "web-a");
  EXPECT_EQ(Decoded(ids, 1, "pod_id_1"), "");
  // Another agent host sees loopback as itself: its own cache.
  storage::AgentBatch loop;
  loop.agent_id = 7;
  *loop.records.add_l7_request_logs() = L7(1000, "127.0.0.1", "127.0.0.1");
  ids.clear();
  ASSERT_TRUE(service_->Tag(loop, &ids).ok());
  EXPECT_EQ(Decoded(ids, 0, "host_id_0"), "node-1");
  loop.agent_id = 8;
  ids.clear();
  ASSERT_TRUE(service_->Tag(loop, &ids).ok());
  EXPECT_EQ(Decoded(ids, 0, "host_id_0"), "vm-9");
}

// Untagged sides are counted once per batch that has them, cached or not.
TEST_F(TaggingServiceTest, UntaggedSidesCountedPerBatch) {
  storage::AgentBatch batch;
  batch.agent_id = 7;
  *batch.records.add_l7_request_logs() = L7(100, "10.0.1.10", "192.0.2.1");
  *batch.records.add_l7_request_logs() = L7(101, "10.0.1.10", "192.0.2.1");
  for (int i = 0; i < 3; ++i) {
    std::vector<uint32_t> ids;
    ASSERT_TRUE(service_->Tag(batch, &ids).ok());
  }
  EXPECT_EQ(registry_.CounterTotal("sonde_server_enrich_untagged_sides_total"), 3u);
}

// Many batches through one (caching) tagger give the ids a tagger that has seen nothing gives.
TEST_F(TaggingServiceTest, CachedIdsEqualFreshTaggers) {
  uint64_t rng = 12345;
  auto next = [&](uint32_t n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return static_cast<uint32_t>(rng % n);
  };
  const char* addresses[] = {"10.0.1.10", "10.0.2.9", "10.96.0.10", "127.0.0.1", "192.0.2.7", "10.0.9.9"};
  for (int round = 0; round < 20; ++round) {
    storage::AgentBatch batch;
    batch.agent_id = 7 + next(2);
    for (int i = 0; i < 30; ++i) {
      *batch.records.add_l7_request_logs() =
          L7(100 + static_cast<uint32_t>(round) * 10 + next(10), addresses[next(6)], addresses[next(6)], next(3), 0);
    }
    std::vector<uint32_t> cached, fresh;
    ASSERT_TRUE(service_->Tag(batch, &cached).ok());
    auto model = ResourceModel::FromInventory(kInventory, /*yaml=*/true);
    ASSERT_TRUE(model.ok());
    TaggingService other(
        std::move(*model), &dictionary_, &store_,
        [](uint32_t id) -> std::optional<AgentHost> {
          if (id == 7) return AgentHost{"node-1", {}};
          if (id == 8) return AgentHost{"vm-9", {*net::IpAddress::Parse("10.0.5.5")}};
          return std::nullopt;
        },
        {}, nullptr);
    // The fresh tagger needs the hosts the long-lived one learnt from registrations so far.
    storage::AgentBatch hello;
    hello.agent_id = 8;
    *hello.records.add_l7_request_logs() = L7(1, "10.0.5.5", "10.0.5.5");
    std::vector<uint32_t> ignored;
    ASSERT_TRUE(other.Tag(hello, &ignored).ok());
    ASSERT_TRUE(other.Tag(batch, &fresh).ok());
    ASSERT_EQ(cached, fresh) << "round " << round;
  }
}

TEST_F(TaggingServiceTest, WatcherWritesWhileTheWriterTags) {
  using testing::FakePod;
  std::thread writer([&] {
    for (uint32_t i = 0; i < 300; ++i) {
      const std::string ip = "10.0.4." + std::to_string(i % 200 + 1);
      service_->ApplyPodEvent(WatchEventType::kAdded,
                              nlohmann::json::parse(FakePod("p-" + std::to_string(i), ip, "1")), 100 + i);
    }
  });
  for (int round = 0; round < 50; ++round) {
    storage::AgentBatch batch;
    batch.agent_id = 7;
    for (int i = 0; i < 20; ++i) {
      const std::string ip = "10.0.4." + std::to_string(i + 1);
      *batch.records.add_l7_request_logs() = L7(1000, "10.0.1.10", ip.c_str());
    }
    std::vector<uint32_t> ids;
    ASSERT_TRUE(service_->Tag(batch, &ids).ok());
    EXPECT_EQ(Decoded(ids, 0, "host_id_0"), "node-1");
  }
  writer.join();
  storage::AgentBatch batch;
  batch.agent_id = 7;
  *batch.records.add_l7_request_logs() = L7(1000, "10.0.1.10", "10.0.4.1");
  std::vector<uint32_t> ids;
  ASSERT_TRUE(service_->Tag(batch, &ids).ok());
  EXPECT_EQ(Decoded(ids, 0, "pod_id_1"), "p-200");  // the latest pod on that address
}

}  // namespace
}  // namespace sonde::server::enrich
