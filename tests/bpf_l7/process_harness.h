// Helpers for the bpf_l7 tests: child processes in their own process group (killed as a group),
// readiness polling, small file and shell utilities.
#pragma once

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace sonde::tests {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

inline std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline int Sh(const std::string& cmd) { return std::system(cmd.c_str()); }

// A child in its own process group; the whole group is killed (TERM, then KILL) on destruction.
class Proc {
 public:
  // `user`: run as this user (root otherwise). Output goes to `log`.
  Proc(std::vector<std::string> argv, const fs::path& log, const std::string& user = "",
       const std::string& netns = "") {
    if (!netns.empty()) argv.insert(argv.begin(), {"/usr/sbin/ip", "netns", "exec", netns});
    uid_t uid = 0;
    gid_t gid = 0;
    if (!user.empty()) {
      if (passwd* pw = getpwnam(user.c_str())) {
        uid = pw->pw_uid;
        gid = pw->pw_gid;
      }
    }
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      int devnull = open("/dev/null", O_RDONLY);
      if (devnull >= 0) dup2(devnull, 0);
      if (gid) (void)!setgid(gid);
      if (uid) (void)!setuid(uid);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    if (pid_ > 0) setpgid(pid_, pid_);
  }
  ~Proc() { Stop(SIGTERM); }
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;

  pid_t pid() const { return pid_; }
  // Signals the group and waits (bounded); escalates to SIGKILL. Returns the exit status.
  int Stop(int sig, std::chrono::milliseconds grace = 5s) {
    if (pid_ <= 0) return status_;
    kill(-pid_, sig);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid_, &status_, WNOHANG) == pid_) {
        kill(-pid_, SIGKILL);  // stragglers of the group (workers)
        pid_ = -1;
        return status_;
      }
      std::this_thread::sleep_for(20ms);
    }
    kill(-pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
    pid_ = -1;
    return status_;
  }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

inline bool PortOpen(const std::string& ip, uint16_t port, const std::string& netns = "") {
  if (!netns.empty()) {
    return Sh("ip netns exec " + netns + " bash -c 'exec 3<>/dev/tcp/" + ip + "/" + std::to_string(port) +
              "' 2>/dev/null") == 0;
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

inline bool WaitFor(const std::function<bool()>& ready, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

}  // namespace sonde::tests
