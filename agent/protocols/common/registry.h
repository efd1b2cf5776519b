// The protocol registry: ONE table (registry.cc) listing every L7 protocol with its name,
// content-inference function, parser factory and port hints. Adding a protocol = its folder plus
// one line in that table.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "agent/flow/stream_handler.h"
#include "agent/protocols/common/connection_parser.h"
#include "agent/protocols/common/frame_parser.h"
#include "sonde/common/v1/common.pb.h"

namespace sonde::agent::protocols {

enum class InferResult : uint8_t {
  kNo,     // these bytes are not this protocol
  kMaybe,  // too few bytes to tell
  kYes,    // this protocol
};

// Looks at the first bytes seen in one direction of a connection (up to a few KiB, possibly
// starting mid-stream) and says whether they are this protocol. Must not read outside `data`.
using InferFn = InferResult (*)(flow::StreamDirection dir, std::string_view data,
                                const flow::ConnectionInfo& conn);
using ParserFactory = std::unique_ptr<ConnectionParser> (*)(const ParserOptions& options,
                                                            const ParserCounters* counters);

enum class Transport : uint8_t { kTcp = 1, kUdp = 2, kBoth = 3 };

struct ProtocolSpec {
  common::v1::L7Protocol protocol;
  std::string_view name;      // as shown in jsonl and queries: HTTP1, HTTP2, gRPC, DNS, ...
  InferFn infer;              // nullptr: a name-only entry (e.g. gRPC, reported by HTTP2)
  ParserFactory make_parser;  // nullptr with infer
  Transport transport;
  std::array<uint16_t, 6> port_hints;  // well-known server ports, tried first; 0 = unused
};

// The factory every table line uses: FrameParser over the protocol's Traits.
template <typename Traits>
std::unique_ptr<ConnectionParser> MakeFrameParser(const ParserOptions& options,
                                                  const ParserCounters* counters) {
  return std::make_unique<FrameParser<Traits>>(options, counters);
}

// Every protocol, in inference order.
std::span<const ProtocolSpec> AllProtocols();
// The entry of `protocol`, or nullptr.
const ProtocolSpec* FindProtocol(common::v1::L7Protocol protocol);
// The display name ("HTTP1", "gRPC", ...), "Unknown" for L7_PROTOCOL_UNKNOWN or unlisted values.
std::string_view ProtocolName(common::v1::L7Protocol protocol);

}  // namespace sonde::agent::protocols
