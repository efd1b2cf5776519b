// Child processes for cross-component tests: spawn with arguments, capture output, wait with a
// deadline, kill. Every child is killed when its ChildProcess goes out of scope.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace sonde::testing {

class ChildProcess {
 public:
  // Starts `argv[0]` with `argv`. stdout and stderr go to files in `log_dir` (or are inherited
  // when empty) named after `name`.
  ChildProcess(std::string name, std::vector<std::string> argv, const std::string& log_dir = "");
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Exit code, or nullopt if still running at the deadline (or killed by a signal: -signal).
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  void Signal(int sig);
  // SIGTERM, then SIGKILL after `grace`.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  std::string name_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string out_path_;
  std::string err_path_;
};

// Runs a command to completion and returns (exit code, stdout). Fails the exit code with -1 on
// timeout (the child is killed).
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult RunCommand(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(120));

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

// A fresh temporary directory, removed with its contents by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Paths from the CTest environment (SONDE_SOURCE_DIR / SONDE_BINARY_DIR).
std::string SourceDir();
std::string BinaryDir();

}  // namespace sonde::testing
