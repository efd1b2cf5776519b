// A fake Kubernetes API server for tests (cpp-httplib on loopback) serving /api/v1/pods: a
// fixture list, scripted watch replies (popped one per watch request, streamed in small chunks
// split mid-line) and, once the script is used up, either HTTP 500 or a live watch stream that
// carries events pushed with Push() while it is open.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sonde::server::enrich::testing {

// Pod JSON as the API serves it.
inline std::string FakePod(const std::string& name, const std::string& ip, const std::string& rv,
                           const std::string& app = "web", const std::string& ns = "shop",
                           const std::string& node = "node-1") {
  return R"({"metadata":{"name":")" + name + R"(","namespace":")" + ns + R"(","resourceVersion":")" + rv +
         R"(","labels":{"app":")" + app +
         R"("},"ownerReferences":[{"kind":"ReplicaSet","name":"web-5d","controller":true}]},)"
         R"("spec":{"nodeName":")" + node + R"("},"status":{"podIP":")" + ip + R"("}})";
}

// One watch event line.
inline std::string FakeWatchEvent(const std::string& type, const std::string& object) {
  return R"({"type":")" + type + R"(","object":)" + object + "}\n";
}

class FakeKubeApiServer {
 public:
  struct WatchReply {
    int status = 200;
    std::string body;  // newline-separated events
  };

  // live_watch: when no scripted reply is left, hold watches open and stream pushed events
  // (each stream ends after live_window so clients re-watch); otherwise answer 500.
  explicit FakeKubeApiServer(bool live_watch = false,
                             std::chrono::milliseconds live_window = std::chrono::milliseconds(3000))
      : live_watch_(live_watch), live_window_(live_window) {
    server_.Get("/api/v1/pods", [this](const httplib::Request& req, httplib::Response& res) {
      std::unique_lock lock(mu_);
      auths_.push_back(req.get_header_value("Authorization"));
      if (!req.has_param("watch")) {
        ++lists_;
        res.set_content(list_body_, "application/json");
        return;
      }
      watch_rvs_.push_back(req.get_param_value("resourceVersion"));
      bookmarks_requested_ = bookmarks_requested_ || req.get_param_value("allowWatchBookmarks") == "true";
      if (watches_.empty()) {
        if (!live_watch_) {
          res.status = 500;
          return;
        }
        const auto until = std::chrono::steady_clock::now() + live_window_;
        res.set_chunked_content_provider("application/json", [this, until](size_t, httplib::DataSink& sink) {
          std::unique_lock l(mu_);
          cv_.wait_for(l, std::chrono::milliseconds(100), [this] { return !pushed_.empty() || stopping_; });
          while (!pushed_.empty()) {
            const std::string line = std::move(pushed_.front());
            pushed_.pop_front();
            ++delivered_;
            sink.write(line.data(), line.size());
          }
          if (stopping_ || std::chrono::steady_clock::now() >= until) sink.done();
          return true;
        });
        return;
      }
      WatchReply w = watches_.front();
      watches_.erase(watches_.begin());
      res.status = w.status;
      auto body = std::make_shared<std::string>(w.body);
      res.set_chunked_content_provider("application/json", [body](size_t offset, httplib::DataSink& sink) {
        if (offset < body->size()) {
          const size_t n = std::min<size_t>(7, body->size() - offset);
          sink.write(body->data() + offset, n);
        }
        if (offset + 7 >= body->size()) sink.done();
        return true;
      });
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 500 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  ~FakeKubeApiServer() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    server_.stop();
    thread_.join();
  }
  FakeKubeApiServer(const FakeKubeApiServer&) = delete;
  FakeKubeApiServer& operator=(const FakeKubeApiServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void SetList(std::string body) {
    std::lock_guard lock(mu_);
    list_body_ = std::move(body);
  }
  void AddWatch(WatchReply w) {
    std::lock_guard lock(mu_);
    watches_.push_back(std::move(w));
  }
  // Queues one event line for the next (or current) live watch stream.
  void Push(std::string event_line) {
    {
      std::lock_guard lock(mu_);
      pushed_.push_back(std::move(event_line));
    }
    cv_.notify_all();
  }
  // Pushed events written to a stream so far.
  int delivered() {
    std::lock_guard lock(mu_);
    return delivered_;
  }

  std::mutex mu_;
  int lists_ = 0;
  std::vector<std::string> watch_rvs_;
  std::vector<std::string> auths_;
  bool bookmarks_requested_ = false;

 private:
  const bool live_watch_;
  const std::chrono::milliseconds live_window_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::string list_body_;
  std::vector<WatchReply> watches_;
  std::condition_variable cv_;
  std::deque<std::string> pushed_;
  int delivered_ = 0;
  bool stopping_ = false;
};

}  // namespace sonde::server::enrich::testing
