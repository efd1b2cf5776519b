// Kubernetes list/watch over cpp-httplib.
#include "server/enrich/kube_watcher.h"

#include <fstream>
#include <sstream>
#include <thread>

#include <httplib.h>
#include <yaml-cpp/yaml.h>

#include "common/log/log.h"

namespace sonde::server::enrich {
namespace {

using json = nlohmann::json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// String at a JSON pointer, "" when absent or not a string (objects from the API are untrusted).
std::string StrAt(const json& j, const char* pointer) {
  const json::json_pointer ptr(pointer);
  if (!j.is_object() || !j.contains(ptr)) return {};
  const json& v = j.at(ptr);
  return v.is_string() ? v.get<std::string>() : std::string();
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

std::unique_ptr<httplib::Client> MakeClient(const KubeConfig& c, const KubeWatcherOptions& o) {
  auto cli = std::make_unique<httplib::Client>(c.server);
  cli->set_connection_timeout(std::chrono::duration_cast<std::chrono::seconds>(o.connect_timeout).count() + 0, 0);
  // A watch is idle between events for up to timeoutSeconds.
  cli->set_read_timeout(o.watch_timeout_s + 30, 0);
  if (!c.bearer_token.empty()) cli->set_bearer_token_auth(c.bearer_token);
  if (!c.ca_file.empty()) cli->set_ca_cert_path(c.ca_file);
  cli->enable_server_certificate_verification(!c.insecure_skip_verify);
  return cli;
}

}  // namespace

StatusOr<KubeConfig> LoadKubeconfig(const std::string& path) {
  try {  // edge: yaml-cpp throws
    YAML::Node doc = YAML::LoadFile(path);
    const std::string ctx_name = doc["current-context"].as<std::string>("");
    std::string cluster_name, user_name;
    for (const auto& c : doc["contexts"]) {
      if (c["name"].as<std::string>("") == ctx_name) {
        cluster_name = c["context"]["cluster"].as<std::string>("");
        user_name = c["context"]["user"].as<std::string>("");
      }
    }
    if (cluster_name.empty()) return InvalidArgumentError(path + ": no context '" + ctx_name + "'");
    KubeConfig out;
    for (const auto& c : doc["clusters"]) {
      if (c["name"].as<std::string>("") != cluster_name) continue;
      out.server = c["cluster"]["server"].as<std::string>("");
      out.ca_file = c["cluster"]["certificate-authority"].as<std::string>("");
      out.insecure_skip_verify = c["cluster"]["insecure-skip-tls-verify"].as<bool>(false);
    }
    for (const auto& u : doc["users"]) {
      if (u["name"].as<std::string>("") != user_name) continue;
      out.bearer_token = u["user"]["token"].as<std::string>("");
      const std::string token_file = u["user"]["tokenFile"].as<std::string>("");
      if (out.bearer_token.empty() && !token_file.empty()) out.bearer_token = Trim(ReadFile(token_file));
    }
    if (out.server.empty()) return InvalidArgumentError(path + ": cluster '" + cluster_name + "' has no server");
    return out;
  } catch (const std::exception& e) {
    return InvalidArgumentError(path + ": " + e.what());
  }
}

StatusOr<KubeConfig> InClusterConfig(const std::string& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || port == nullptr) return NotFoundError("not running in a Kubernetes pod");
  KubeConfig c;
  const std::string h(host);
  c.server = "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
  c.bearer_token = Trim(ReadFile(sa_dir + "/token"));
  c.ca_file = sa_dir + "/ca.crt";
  if (c.bearer_token.empty()) return NotFoundError("no service account token in " + sa_dir);
  return c;
}

KubeWatcher::KubeWatcher(KubeConfig config, KubeWatcherOptions options, KubeWatchHandler handler,
                         metrics::Registry* registry)
    : config_(std::move(config)), options_(std::move(options)), handler_(std::move(handler)) {
  if (registry != nullptr) {
    events_ = registry->GetCounter("sonde_server_kube_events_total", "Kubernetes watch events applied");
    relists_ = registry->GetCounter("sonde_server_kube_relists_total", "lists after 410 Gone or errors");
    bad_events_ = registry->GetCounter("sonde_server_kube_bad_events_total", "unparseable watch lines");
  }
}

Status KubeWatcher::List() {
  auto cli = MakeClient(config_, options_);
  auto res = cli->Get(options_.path.c_str());
  if (!res) return UnavailableError("kubernetes list " + options_.path + ": " + httplib::to_string(res.error()));
  if (res->status != 200) {
    return UnavailableError("kubernetes list " + options_.path + ": HTTP " + std::to_string(res->status));
  }
  json doc = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("items") || !doc["items"].is_array()) {
    return DataLossError("kubernetes list " + options_.path + ": not a list");
  }
  std::vector<json> items(doc["items"].begin(), doc["items"].end());
  resource_version_ = StrAt(doc, "/metadata/resourceVersion");
  ++lists_;
  if (lists_ > 1 && relists_) relists_->Inc();
  if (handler_.on_list) handler_.on_list(items);
  return Status::Ok();
}

Status KubeWatcher::HandleLine(std::string_view line) {
  if (line.empty()) return Status::Ok();
  json ev = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!ev.is_object() || !ev.contains("type") || !ev["type"].is_string() || !ev.contains("object")) {
    if (bad_events_) bad_events_->Inc();
    return Status::Ok();  // skip it; the next list repairs any gap
  }
  const std::string type = ev["type"].get<std::string>();
  const json& obj = ev["object"];
  if (!obj.is_object()) {
    if (bad_events_) bad_events_->Inc();
    return Status::Ok();
  }
  if (type == "ERROR") {
    auto code = obj.find("code");
    if (code != obj.end() && code->is_number_integer() && code->get<int64_t>() == 410) gone_ = true;
    return Status::Ok();
  }
  const std::string rv = StrAt(obj, "/metadata/resourceVersion");
  if (!rv.empty()) resource_version_ = rv;
  if (type == "BOOKMARK") return Status::Ok();
  WatchEventType t;
  if (type == "ADDED") t = WatchEventType::kAdded;
  else if (type == "MODIFIED") t = WatchEventType::kModified;
  else if (type == "DELETED") t = WatchEventType::kDeleted;
  else {
    if (bad_events_) bad_events_->Inc();
    return Status::Ok();
  }
  if (events_) events_->Inc();
  if (handler_.on_event) handler_.on_event(t, obj);
  return Status::Ok();
}

Status KubeWatcher::Watch() {
  auto cli = MakeClient(config_, options_);
  const std::string path = options_.path + "?watch=1&allowWatchBookmarks=true&resourceVersion=" +
                           httplib::detail::encode_query_param(resource_version_) +
                           "&timeoutSeconds=" + std::to_string(options_.watch_timeout_s);
  std::string buffer;
  gone_ = false;
  {
    std::lock_guard lock(active_mu_);
    if (stop_) return Status::Ok();
    active_ = cli.get();
  }
  auto res = cli->Get(path.c_str(), [&](const char* data, size_t len) {
    buffer.append(data, len);
    size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      HandleLine(std::string_view(buffer).substr(0, nl)).IgnoreError();
      buffer.erase(0, nl + 1);
    }
    return !stop_.load();
  });
  {
    std::lock_guard lock(active_mu_);
    active_ = nullptr;
  }
  if (!buffer.empty()) HandleLine(buffer).IgnoreError();  // last line without a newline
  if (res && res->status == 410) gone_ = true;
  if (gone_) {
    resource_version_.clear();  // too old: list again
    return Status::Ok();
  }
  if (!res) {
    if (stop_) return Status::Ok();
    return UnavailableError("kubernetes watch " + options_.path + ": " + httplib::to_string(res.error()));
  }
  if (res->status != 200) return UnavailableError("kubernetes watch: HTTP " + std::to_string(res->status));
  return Status::Ok();  // the server closed the stream (timeoutSeconds): watch again from rv
}

void KubeWatcher::Stop() {
  stop_ = true;
  std::lock_guard lock(active_mu_);
  if (active_ != nullptr) active_->stop();
}

Status KubeWatcher::SyncOnce() {
  if (resource_version_.empty()) SONDE_RETURN_IF_ERROR(List());
  if (stop_) return Status::Ok();
  return Watch();
}

void KubeWatcher::Run() {
  auto backoff = options_.backoff_min;
  while (!stop_) {
    Status s = SyncOnce();
    if (s.ok()) {
      backoff = options_.backoff_min;
      continue;
    }
    SONDE_LOG_EVERY(warn, "kubernetes sync failed: {}", s.ToString());
    // Sleep in small steps so Stop() is prompt.
    for (auto slept = std::chrono::milliseconds(0); slept < backoff && !stop_; slept += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
}

std::optional<PodInfo> PodFromJson(const json& pod, const std::string& cluster, uint32_t now_s) {
  if (!pod.is_object()) return std::nullopt;
  auto addr = net::IpAddress::Parse(StrAt(pod, "/status/podIP"));
  if (!addr) return std::nullopt;
  PodInfo p;
  p.cluster = cluster;
  p.ns = StrAt(pod, "/metadata/namespace");
  p.name = StrAt(pod, "/metadata/name");
  p.node = StrAt(pod, "/spec/nodeName");
  p.ip = *addr;
  p.life.since_s = now_s;
  const json::json_pointer owners_ptr("/metadata/ownerReferences");
  if (pod.contains(owners_ptr) && pod.at(owners_ptr).is_array()) {
    for (const auto& o : pod.at(owners_ptr)) {
      auto controller = o.is_object() ? o.find("controller") : o.end();
      if (controller != o.end() && controller->is_boolean() && controller->get<bool>()) {
        p.workload = StrAt(o, "/kind") + "/" + StrAt(o, "/name");
      }
    }
  }
  for (const char* which : {"labels", "annotations"}) {
    const json::json_pointer ptr("/metadata/" + std::string(which));
    if (!pod.contains(ptr) || !pod.at(ptr).is_object()) continue;
    auto& out = std::string_view(which) == "labels" ? p.labels : p.annotations;
    for (auto& [k, v] : pod.at(ptr).items()) {
      if (v.is_string()) out[k] = v.get<std::string>();
    }
  }
  return p;
}

}  // namespace sonde::server::enrich
