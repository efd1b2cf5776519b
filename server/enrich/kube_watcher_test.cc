// Kubernetes list/watch against a local fake API server (testing/fake_kube_api_server.h)
// serving fixture JSON: list, watch stream with bookmark, 410 Gone as event and as status,
// re-list, reconnect after the server drops, bearer token, kubeconfig parsing, prompt Stop().
#include "server/enrich/kube_watcher.h"

#include "server/enrich/testing/fake_kube_api_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

namespace sonde::server::enrich {
namespace {

using FakeApiServer = testing::FakeKubeApiServer;

std::string Pod(const std::string& name, const std::string& ip, const std::string& rv,
                const std::string& app = "web") {
  return testing::FakePod(name, ip, rv, app);
}

std::string Event(const std::string& type, const std::string& object) {
  return testing::FakeWatchEvent(type, object);
}

TEST(KubeWatcherTest, ListWatchBookmarkGoneRelist) {
  FakeApiServer api;
  api.SetList(R"({"kind":"PodList","metadata":{"resourceVersion":"100"},"items":[)" +
              Pod("web-1", "10.0.2.5", "90") + "," + Pod("web-2", "10.0.2.6", "95") + "]}");
  // Watch 1: add, modify (label change), a garbage line, bookmark, then the server ends it.
  api.AddWatch({200, Event("ADDED", Pod("web-3", "10.0.2.7", "101")) +
                         Event("MODIFIED", Pod("web-1", "10.0.2.5", "102", "web-v2")) +
                         "not json\n" +
                         Event("BOOKMARK", R"({"metadata":{"resourceVersion":"150"}})")});
  // Watch 2 (from the bookmark): delete, then 410 Gone as an ERROR event.
  api.AddWatch({200, Event("DELETED", Pod("web-2", "10.0.2.6", "151")) +
                         Event("ERROR", R"({"kind":"Status","code":410,"reason":"Expired"})")});
  // Watch 3 after the re-list: 410 as the HTTP status.
  api.AddWatch({410, R"({"kind":"Status","code":410})"});

  ResourceModel model;
  model.AddCluster({"prod", "vpc-a"});
  uint32_t now_s = 1000;
  int list_calls = 0;
  KubeWatchHandler handler;
  handler.on_list = [&](const std::vector<nlohmann::json>& items) {
    ++list_calls;
    for (const auto& item : items) {
      if (auto p = PodFromJson(item, "prod", now_s)) model.UpsertPod(std::move(*p));
    }
  };
  handler.on_event = [&](WatchEventType type, const nlohmann::json& obj) {
    auto p = PodFromJson(obj, "prod", now_s);
    if (!p) return;
    if (type == WatchEventType::kDeleted) {
      model.EndPod(p->cluster, p->ns, p->name, now_s);
    } else {
      model.UpsertPod(std::move(*p));
    }
  };
  metrics::Registry registry;
  KubeConfig config{api.url(), "s3cret", "", false};
  KubeWatcher watcher(config, {}, handler, &registry);

  ASSERT_TRUE(watcher.SyncOnce().ok());  // list + watch 1
  EXPECT_EQ(list_calls, 1);
  EXPECT_EQ(watcher.resource_version(), "150");
  auto web1 = model.Match("vpc-a", *net::IpAddress::Parse("10.0.2.5"), 1001);
  ASSERT_NE(web1.pod, nullptr);
  EXPECT_EQ(web1.pod->labels.at("app"), "web-v2");
  EXPECT_EQ(web1[TagDimension::kWorkload], "ReplicaSet/web-5d");
  EXPECT_EQ(model.Match("vpc-a", *net::IpAddress::Parse("10.0.2.7"), 1001)[TagDimension::kPod], "web-3");
  EXPECT_EQ(registry.CounterTotal("sonde_server_kube_bad_events_total"), 1u);

  now_s = 2000;
  ASSERT_TRUE(watcher.SyncOnce().ok());  // watch 2 from rv 150: delete, then 410
  EXPECT_EQ(watcher.resource_version(), "");
  EXPECT_EQ(model.Match("vpc-a", *net::IpAddress::Parse("10.0.2.6"), 1999)[TagDimension::kPod], "web-2");
  EXPECT_EQ(model.Match("vpc-a", *net::IpAddress::Parse("10.0.2.6"), 2000)[TagDimension::kPod], "");

  api.SetList(R"({"metadata":{"resourceVersion":"300"},"items":[)" + Pod("web-1", "10.0.2.5", "290") + "]}");
  ASSERT_TRUE(watcher.SyncOnce().ok());  // re-list, then watch 3 answers 410
  EXPECT_EQ(list_calls, 2);
  EXPECT_EQ(watcher.resource_version(), "");
  // Step 4: lists again, then the watch fails (nothing scripted: HTTP 500) -> an error for
  // the caller's backoff.
  EXPECT_EQ(watcher.SyncOnce().code(), StatusCode::kUnavailable);
  EXPECT_EQ(list_calls, 3);

  std::lock_guard lock(api.mu_);
  ASSERT_GE(api.watch_rvs_.size(), 3u);
  EXPECT_EQ(api.watch_rvs_[0], "100");
  EXPECT_EQ(api.watch_rvs_[1], "150");
  EXPECT_EQ(api.watch_rvs_[2], "300");
  EXPECT_TRUE(api.bookmarks_requested_);
  for (const auto& a : api.auths_) EXPECT_EQ(a, "Bearer s3cret");
  EXPECT_EQ(registry.CounterTotal("sonde_server_kube_relists_total"), 2u);
}

TEST(KubeWatcherTest, ServerErrorsAreStatusesAndRunRecovers) {
  FakeApiServer api;
  api.SetList(R"({"metadata":{"resourceVersion":"7"},"items":[]})");
  KubeWatcherOptions options;
  options.backoff_min = std::chrono::milliseconds(10);
  options.backoff_max = std::chrono::milliseconds(20);
  // Watches: a failure (nothing scripted answers 500), then an event after reconnecting.
  KubeConfig config{api.url(), "", "", false};
  std::atomic<int> events{0};
  KubeWatchHandler handler;
  handler.on_event = [&](WatchEventType, const nlohmann::json&) { ++events; };
  KubeWatcher watcher(config, options, handler, nullptr);
  EXPECT_EQ(watcher.SyncOnce().code(), StatusCode::kUnavailable);  // list ok, watch 500
  api.AddWatch({200, Event("ADDED", Pod("a", "10.0.0.1", "8"))});
  std::thread runner([&] { watcher.Run(); });
  for (int i = 0; i < 200 && events.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  watcher.Stop();
  runner.join();
  EXPECT_EQ(events.load(), 1);

  KubeWatcher unreachable({"http://127.0.0.1:1", "", "", false}, options, {}, nullptr);
  EXPECT_EQ(unreachable.SyncOnce().code(), StatusCode::kUnavailable);
}

TEST(KubeConfigTest, KubeconfigCurrentContext) {
  const auto dir = std::filesystem::temp_directory_path() / ("sonde-kubeconfig-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "token") << "from-file\n";
  std::ofstream(dir / "config") << "apiVersion: v1\ncurrent-context: b\n"
                                   "clusters:\n"
                                   "- name: ca\n  cluster: {server: 'https://a:6443'}\n"
                                   "- name: cb\n  cluster: {server: 'https://b:6443', certificate-authority: /x/ca.crt}\n"
                                   "contexts:\n"
                                   "- name: a\n  context: {cluster: ca, user: ua}\n"
                                   "- name: b\n  context: {cluster: cb, user: ub}\n"
                                   "users:\n"
                                   "- name: ua\n  user: {token: aaa}\n"
                                   "- name: ub\n  user: {tokenFile: " + (dir / "token").string() + "}\n";
  auto c = LoadKubeconfig((dir / "config").string());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->server, "https://b:6443");
  EXPECT_EQ(c->ca_file, "/x/ca.crt");
  EXPECT_EQ(c->bearer_token, "from-file");
  EXPECT_FALSE(LoadKubeconfig((dir / "missing").string()).ok());
  std::filesystem::remove_all(dir);
}

TEST(KubeWatcherTest, PodFromJsonToleratesJunk) {
  EXPECT_FALSE(PodFromJson(nlohmann::json::parse("[1,2]"), "c", 0));
  EXPECT_FALSE(PodFromJson(nlohmann::json::parse(R"({"status":{"podIP":5}})"), "c", 0));
  EXPECT_FALSE(PodFromJson(nlohmann::json::parse(R"({"metadata":"x","status":{"podIP":"bad"}})"), "c", 0));
  auto p = PodFromJson(nlohmann::json::parse(
                           R"({"metadata":{"name":1,"labels":{"a":1,"b":"x"},"ownerReferences":{"k":1}},"status":{"podIP":"fd00::5"}})"),
                       "c", 3);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->name, "");
  EXPECT_EQ(p->labels, (std::map<std::string, std::string>{{"b", "x"}}));
}

}  // namespace
}  // namespace sonde::server::enrich
