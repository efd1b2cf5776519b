// THE protocol table. One line per protocol; inference tries port-hinted entries first, then
// this order (more specific signatures before looser ones).
#include "agent/protocols/common/registry.h"

namespace sonde::agent::protocols {
namespace {

using common::v1::L7Protocol;

constexpr ProtocolSpec kProtocols[] = {
    // protocol, name, inference, parser factory, transport, port hints
    {L7Protocol::L7_PROTOCOL_GRPC, "gRPC", nullptr, nullptr, Transport::kTcp, {}},
};

}  // namespace

std::span<const ProtocolSpec> AllProtocols() { return kProtocols; }

const ProtocolSpec* FindProtocol(common::v1::L7Protocol protocol) {
  for (const ProtocolSpec& p : kProtocols) {
    if (p.protocol == protocol) return &p;
  }
  return nullptr;
}

std::string_view ProtocolName(common::v1::L7Protocol protocol) {
  const ProtocolSpec* p = FindProtocol(protocol);
  return p == nullptr ? std::string_view("Unknown") : p->name;
}

}  // namespace sonde::agent::protocols
