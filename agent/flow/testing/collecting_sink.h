// Test doubles: a RecordSink that keeps every record and a StreamHandler that keeps every chunk.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/export/record_sink.h"
#include "agent/flow/stream_handler.h"

namespace sonde::agent::flow::testing {

class CollectingSink : public exporting::RecordSink {
 public:
  void Emit(v1::L7RequestLog&& r) override { l7.push_back(std::move(r)); }
  void Emit(v1::L4FlowLog&& r) override { l4.push_back(std::move(r)); }
  void Emit(v1::NetworkMetric&& r) override { net.push_back(std::move(r)); }
  void Emit(v1::ApplicationMetric&& r) override { app.push_back(std::move(r)); }
  void Emit(v1::ProcessInfo&& r) override { procs.push_back(std::move(r)); }
  void Flush() override { ++flushes; }

  std::vector<v1::L7RequestLog> l7;
  std::vector<v1::L4FlowLog> l4;
  std::vector<v1::NetworkMetric> net;
  std::vector<v1::ApplicationMetric> app;
  std::vector<v1::ProcessInfo> procs;
  int flushes = 0;
};

class CollectingHandler : public StreamHandler {
 public:
  struct Stream {
    std::string bytes[2];          // by StreamDirection
    uint32_t gaps[2] = {0, 0};
    int chunks[2] = {0, 0};
    int datagrams = 0;
    bool closed = false;
    ConnectionInfo conn;
  };
  void OnData(const ConnectionInfo& conn, StreamDirection dir, const StreamChunk& chunk) override {
    Stream& s = streams[conn.flow_id];
    s.conn = conn;
    int d = static_cast<int>(dir);
    s.bytes[d].append(reinterpret_cast<const char*>(chunk.data.data()), chunk.data.size());
    s.gaps[d] += chunk.gap_bytes_before;
    s.chunks[d]++;
    if (chunk.is_datagram) s.datagrams++;
  }
  void OnClose(const ConnectionInfo& conn, uint64_t) override { streams[conn.flow_id].closed = true; }
  void OnTick(uint64_t) override { ++ticks; }
  common::v1::L7Protocol ProtocolOf(uint64_t) const override { return protocol; }

  std::map<uint64_t, Stream> streams;
  int ticks = 0;
  common::v1::L7Protocol protocol = common::v1::L7_PROTOCOL_UNKNOWN;
};

}  // namespace sonde::agent::flow::testing
