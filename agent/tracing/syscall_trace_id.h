// syscall_trace_id: links the request a thread reads (ingress on a connection where this process
// is the server) to everything the same thread writes or reads afterwards (calls to backends and
// the response it sends back), until that thread starts reading the next inbound request.
// One id per inbound request per thread. Ids are unique within an agent run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

namespace sonde::agent::tracing {

class SyscallTraceIds {
 public:
  struct Options {
    size_t max_threads = 65536;
    uint64_t idle_ns = 60'000'000'000;  // a thread's id is forgotten after this long without I/O
  };
  // `seed` goes into the high bits so ids from different agent runs rarely collide.
  explicit SyscallTraceIds(Options options, uint64_t seed);
  SyscallTraceIds() : SyscallTraceIds(Options{}, 0) {}

  // Records one socket I/O by `tid` on connection `conn_key` and returns its trace id (0 when
  // the thread has not read an inbound request yet). `server_side`: this process accepted the
  // connection. `ingress`: a read.
  uint64_t OnIo(uint32_t tid, uint64_t conn_key, bool server_side, bool ingress, uint64_t now_ns);

  // Forgets idle threads.
  void Reap(uint64_t now_ns);
  size_t threads() const { return threads_.size(); }

 private:
  struct ThreadState {
    uint64_t id = 0;
    uint64_t last_conn = 0;
    bool last_was_request_read = false;
    uint64_t last_ns = 0;
  };
  Options options_;
  uint64_t next_id_;
  std::unordered_map<uint32_t, ThreadState> threads_;
};

}  // namespace sonde::agent::tracing
