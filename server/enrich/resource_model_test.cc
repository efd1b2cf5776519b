// AutoTagging matcher: most specific resource per address, VPC separation, time ordering;
// the enricher's ids decode back to the matched names.
#include "server/enrich/resource_model.h"

#include <gtest/gtest.h>

#include "server/enrich/enricher.h"

namespace sonde::server::enrich {
namespace {

net::IpAddress Ip(const char* s) { return *net::IpAddress::Parse(s); }

class ResourceModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* src = std::getenv("SONDE_SOURCE_DIR");
    auto m = ResourceModel::FromFile(std::string(src ? src : ".") + "/server/enrich/testdata/inventory.yaml");
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = std::move(*m);
  }
  ResourceModel model_;
};

TEST_F(ResourceModelTest, PodBeatsHostBeatsSubnet) {
  ResourceTags pod = model_.Match("vpc-a", Ip("10.0.2.5"), 100);
  EXPECT_EQ(pod[TagDimension::kPod], "web-1");
  EXPECT_EQ(pod[TagDimension::kPodNamespace], "shop");
  EXPECT_EQ(pod[TagDimension::kPodCluster], "prod");
  EXPECT_EQ(pod[TagDimension::kService], "web");
  EXPECT_EQ(pod[TagDimension::kWorkload], "Deployment/web");
  EXPECT_EQ(pod[TagDimension::kHost], "node-1");
  EXPECT_EQ(pod[TagDimension::kPodNode], "node-1");
  EXPECT_EQ(pod[TagDimension::kZone], "eu-1b");  // the node's zone
  EXPECT_EQ(pod[TagDimension::kSubnet], "a-wide");
  EXPECT_EQ(pod[TagDimension::kRegion], "eu-1");
  ASSERT_NE(pod.pod, nullptr);
  EXPECT_EQ(pod.pod->labels.at("app.kubernetes.io/name"), "shop-web");

  ResourceTags host = model_.Match("vpc-a", Ip("10.0.1.10"), 100);
  EXPECT_EQ(host[TagDimension::kHost], "node-1");
  EXPECT_EQ(host[TagDimension::kPod], "");
  EXPECT_EQ(host[TagDimension::kSubnet], "a-app");  // longest prefix
  EXPECT_EQ(host[TagDimension::kVpc], "vpc-a");

  ResourceTags subnet = model_.Match("vpc-a", Ip("10.0.7.7"), 100);
  EXPECT_EQ(subnet[TagDimension::kHost], "");
  EXPECT_EQ(subnet[TagDimension::kSubnet], "a-wide");
  EXPECT_EQ(subnet[TagDimension::kZone], "eu-1a");

  ResourceTags v6 = model_.Match("vpc-a", Ip("fd00:1::10"), 100);
  EXPECT_EQ(v6[TagDimension::kHost], "node-1");
  EXPECT_EQ(v6[TagDimension::kSubnet], "a-v6");

  ResourceTags svc = model_.Match("vpc-a", Ip("10.96.0.10"), 100);
  EXPECT_EQ(svc[TagDimension::kService], "web");
  EXPECT_EQ(svc[TagDimension::kPod], "");

  ResourceTags internet = model_.Match("vpc-a", Ip("93.184.216.34"), 100);
  for (const auto& v : internet.values) EXPECT_EQ(v, "");
}

TEST_F(ResourceModelTest, OverlappingAddressesStayInTheirVpc) {
  EXPECT_EQ(model_.Match("vpc-a", Ip("10.0.1.10"), 100)[TagDimension::kHost], "node-1");
  ResourceTags b = model_.Match("vpc-b", Ip("10.0.1.10"), 100);
  EXPECT_EQ(b[TagDimension::kHost], "b-host");
  EXPECT_EQ(b[TagDimension::kSubnet], "b-app");
  EXPECT_EQ(b[TagDimension::kRegion], "us-2");
  // The cluster lives in vpc-a: its pod address means nothing in vpc-b.
  EXPECT_EQ(model_.Match("vpc-b", Ip("10.0.2.5"), 100)[TagDimension::kPod], "");
  EXPECT_EQ(model_.VpcOfHost("b-host", 0), "vpc-b");
}

TEST_F(ResourceModelTest, TimeOrderedRenamesAndChurn) {
  EXPECT_EQ(model_.Match("vpc-a", Ip("10.0.1.11"), 999)[TagDimension::kHost], "old-name");
  EXPECT_EQ(model_.Match("vpc-a", Ip("10.0.1.11"), 1000)[TagDimension::kHost], "node-2");
  EXPECT_EQ(model_.Match("vpc-a", Ip("10.0.2.5"), 499)[TagDimension::kPod], "web-1");
  ResourceTags later = model_.Match("vpc-a", Ip("10.0.2.5"), 500);
  EXPECT_EQ(later[TagDimension::kPod], "web-9");
  EXPECT_EQ(later[TagDimension::kHost], "node-2");
  EXPECT_EQ(model_.ProcessName("node-1", 43, 199), "old-worker");
  EXPECT_EQ(model_.ProcessName("node-1", 43, 200), "new-worker");

  // Watch-style updates: the pod is deleted at 800, then a new pod takes the address.
  model_.EndPod("prod", "shop", "web-9", 800);
  EXPECT_EQ(model_.Match("vpc-a", Ip("10.0.2.5"), 799)[TagDimension::kPod], "web-9");
  EXPECT_EQ(model_.Match("vpc-a", Ip("10.0.2.5"), 800)[TagDimension::kPod], "");
  PodInfo p;
  p.cluster = "prod";
  p.ns = "shop";
  p.name = "web-10";
  p.ip = Ip("10.0.2.5");
  p.life.since_s = 900;
  model_.UpsertPod(p);
  EXPECT_EQ(model_.Match("vpc-a", Ip("10.0.2.5"), 950)[TagDimension::kPod], "web-10");
  EXPECT_EQ(model_.Match("vpc-a", Ip("10.0.2.5"), 850)[TagDimension::kPod], "");
}

TEST(ResourceModelInventoryTest, JsonAndErrors) {
  auto m = ResourceModel::FromInventory(
      R"({"vpcs":[{"name":"v","region":"r"}],"hosts":[{"name":"h","vpc":"v","ips":["192.0.2.1"]}]})", false);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->Match("v", Ip("192.0.2.1"), 0)[TagDimension::kHost], "h");
  EXPECT_EQ(ResourceModel::FromInventory("{", false).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ResourceModel::FromInventory("a: [", true).status().code(), StatusCode::kInvalidArgument);
  auto bad_ip = ResourceModel::FromInventory(R"({"hosts":[{"name":"h","ips":["300.1.1.1"]}]})", false);
  EXPECT_NE(bad_ip.status().message().find("host 'h': bad address"), std::string::npos);
  auto bad_cidr = ResourceModel::FromInventory(R"({"subnets":[{"name":"s","cidr":"10.0.0.0/33"}]})", false);
  EXPECT_FALSE(bad_cidr.ok());
  EXPECT_EQ(ResourceModel::FromFile("/nonexistent.yaml").status().code(), StatusCode::kNotFound);
}

TEST(CidrTest, Contains) {
  auto c = Cidr::Parse("10.1.0.0/16");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->Contains(Ip("10.0.255.255")));
  // Host bits are masked off: 10.1.0.0/15 is 10.0.0.0/15.
  EXPECT_TRUE(Cidr::Parse("10.1.0.0/15")->Contains(Ip("10.0.255.255")));
  EXPECT_TRUE(c->Contains(Ip("10.1.2.3")));
  EXPECT_FALSE(c->Contains(Ip("10.2.0.0")));
  EXPECT_FALSE(c->Contains(Ip("fd00::1")));
  EXPECT_TRUE(Cidr::Parse("0.0.0.0/0")->Contains(Ip("8.8.8.8")));
  EXPECT_FALSE(Cidr::Parse("0.0.0.0/0")->Contains(Ip("2001:db8::1")));
  EXPECT_FALSE(Cidr::Parse("10.0.0.0/x"));
}

TEST_F(ResourceModelTest, EnricherEncodesBothSidesAndPublishesLabels) {
  MemoryTagStore store;
  TagDictionaryOptions o;
  o.settle = std::chrono::milliseconds(1);
  TagDictionary dict(&store, o, nullptr);
  metrics::Registry registry;
  Enricher enricher(&model_, &dict, &registry);
  std::vector<RecordSides> records(2);
  records[0].time_s = 100;
  records[0].ip[0] = Ip("10.0.1.10");
  records[0].ip[1] = Ip("10.0.2.5");
  records[0].process_id[0] = 42;
  records[1].time_s = 600;
  records[1].ip[0] = Ip("93.184.216.34");
  records[1].ip[1] = Ip("10.0.2.5");
  auto ids = enricher.TagBatch("node-1", records);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  auto name = [&](const RecordTagIds& r, TagDimension d, int side) {
    return dict.Decode(d, r.Get(d, side)).value_or("?");
  };
  EXPECT_EQ(name((*ids)[0], TagDimension::kHost, 0), "node-1");
  EXPECT_EQ(name((*ids)[0], TagDimension::kProcessName, 0), "nginx");
  EXPECT_EQ(name((*ids)[0], TagDimension::kPod, 1), "web-1");
  EXPECT_EQ(name((*ids)[1], TagDimension::kPod, 1), "web-9");
  EXPECT_EQ((*ids)[1].Get(TagDimension::kHost, 0), 0u);
  EXPECT_EQ(registry.CounterTotal("sonde_server_enrich_untagged_sides_total"), 1u);
  int columns = 0;
  (*ids)[0].ForEachColumn([&](const std::string& col, uint32_t id) {
    ++columns;
    if (col == "pod_id_1") {
      EXPECT_EQ(id, (*ids)[0].Get(TagDimension::kPod, 1));
    }
  });
  EXPECT_EQ(columns, 24);

  ASSERT_TRUE(enricher.PublishPodMetadata(&store, 7).ok());
  const auto labels = store.PodMetadata(false);
  const std::string web1 = std::to_string(*dict.Find(TagDimension::kPodCluster, "prod")) + "/" +
                           std::to_string(*dict.Find(TagDimension::kPodNamespace, "shop")) + "/" +
                           std::to_string(*dict.Find(TagDimension::kPod, "web-1")) + "/";
  EXPECT_EQ(labels.at(web1 + "app"), "web");
  EXPECT_EQ(labels.at(web1 + "app.kubernetes.io/name"), "shop-web");
  EXPECT_EQ(store.PodMetadata(true).at(web1 + "owner"), "team-a");
}

}  // namespace
}  // namespace sonde::server::enrich
