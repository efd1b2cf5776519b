// The eBPF extension of EventSink: socket events together with what the kernel resolved about
// the socket (5-tuple and role), which the generic SocketDataEvent does not carry.
// EbpfSource calls the Ebpf* overloads when its sink derives from EbpfEventSink, and the plain
// EventSink ones otherwise.
#pragma once

#include <cstdint>
#include <string_view>

#include "agent/capture/event_source.h"
#include "common/net/five_tuple.h"

namespace sonde::agent::capture {

enum class SocketRole : uint8_t { kUnknown = 0, kClient = 1, kServer = 2 };

struct SocketEndpoints {
  net::FiveTuple tuple;  // src = this process's end (local), dst = the peer (remote)
  SocketRole role = SocketRole::kUnknown;  // from connect() vs accept(); unknown if not seen
  std::string_view comm;  // the process name at the time of the event (control events have no other)
};

class EbpfEventSink : public EventSink {
 public:
  void OnPacket(const PacketView&) override {}
  virtual void OnEbpfSocketData(const SocketDataEvent& event, const SocketEndpoints& endpoints) = 0;
  virtual void OnEbpfSocketControl(const SocketControlEvent& event, const SocketEndpoints& endpoints) = 0;
};

}  // namespace sonde::agent::capture
