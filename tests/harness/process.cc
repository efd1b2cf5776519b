// Child process management for tests.
#include "tests/harness/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace sonde::testing {

namespace {
std::string ReadFile(const std::string& path) {
  if (path.empty()) return "";
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

ChildProcess::ChildProcess(std::string name, std::vector<std::string> argv, const std::string& log_dir)
    : name_(std::move(name)) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!log_dir.empty()) {
    static int counter = 0;
    std::string stem = log_dir + "/" + name_ + "." + std::to_string(++counter);
    out_path_ = stem + ".out";
    err_path_ = stem + ".err";
    posix_spawn_file_actions_addopen(&actions, 1, out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Own process group, so Stop() also reaches grandchildren (ClickHouse under sonde-server).
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  if (posix_spawn(&pid_, args[0], &actions, &attr, args.data(), environ) != 0) pid_ = -1;
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) Stop(std::chrono::seconds(10));
}

bool ChildProcess::running() { return pid_ > 0 && !Wait(std::chrono::milliseconds(0)).has_value(); }

std::optional<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  if (pid_ <= 0) return -1;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0 && !exit_code_) kill(pid_, sig);
}

void ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0 || exit_code_) return;
  kill(pid_, SIGTERM);
  if (!Wait(grace)) {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    Wait(std::chrono::seconds(10));
  }
  kill(-pid_, SIGKILL);  // leftovers of the group
}

std::string ChildProcess::Stdout() const { return ReadFile(out_path_); }
std::string ChildProcess::Stderr() const { return ReadFile(err_path_); }

CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  TempDir logs;
  CommandResult r;
  {
    ChildProcess p("cmd", argv, logs.path());
    auto code = p.Wait(timeout);
    if (!code) {
      p.Stop(std::chrono::seconds(2));
      r.exit_code = -1;
    } else {
      r.exit_code = *code;
    }
    r.out = p.Stdout();
    r.err = p.Stderr();
  }
  return r;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "sonde-test-XXXXXX").string();
  char* p = mkdtemp(tmpl.data());
  path_ = p ? p : "";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty() && !std::getenv("SONDE_KEEP_TEMP")) std::filesystem::remove_all(path_, ec);
}

std::string SourceDir() {
  const char* s = std::getenv("SONDE_SOURCE_DIR");
  return s ? s : ".";
}
std::string BinaryDir() {
  const char* s = std::getenv("SONDE_BINARY_DIR");
  return s ? s : "build";
}

}  // namespace sonde::testing
