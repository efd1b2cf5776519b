// THE protocol table. One line per protocol; inference tries port-hinted entries first, then
// this order (more specific signatures before looser ones).
#include "agent/protocols/common/registry.h"

#include "agent/protocols/tls/parser.h"
#include "agent/protocols/http2/parser.h"
#include "agent/protocols/dns/parser.h"
#include "agent/protocols/dubbo/parser.h"
#include "agent/protocols/http1/parser.h"
#include "agent/protocols/kafka/parser.h"
#include "agent/protocols/mqtt/parser.h"
#include "agent/protocols/mysql/parser.h"
#include "agent/protocols/postgres/parser.h"
#include "agent/protocols/redis/parser.h"

namespace sonde::agent::protocols {
namespace {

using common::v1::L7Protocol;

constexpr ProtocolSpec kProtocols[] = {
    // protocol, name, inference, parser factory, transport, port hints
    {L7Protocol::L7_PROTOCOL_TLS, "TLS", &tls::Infer, &MakeFrameParser<tls::Traits>,
     Transport::kTcp, {443, 8443, 4433}},
    {L7Protocol::L7_PROTOCOL_HTTP2, "HTTP2", &http2::Infer, &MakeFrameParser<http2::Traits>,
     Transport::kTcp, {50051, 8443, 9090, 10000}},
    {L7Protocol::L7_PROTOCOL_DNS, "DNS", &dns::Infer, &MakeFrameParser<dns::Traits>,
     Transport::kBoth, {53, 5353, 5300}},
    {L7Protocol::L7_PROTOCOL_HTTP1, "HTTP1", &http1::Infer, &MakeFrameParser<http1::Traits>,
     Transport::kTcp, {80, 8080, 8000, 8081, 8888}},
    {L7Protocol::L7_PROTOCOL_DUBBO, "Dubbo", &dubbo::Infer, &MakeFrameParser<dubbo::Traits>, Transport::kTcp, {20880}},
    {L7Protocol::L7_PROTOCOL_MYSQL, "MySQL", &mysql::Infer, &MakeFrameParser<mysql::Traits>, Transport::kTcp, {3306}},
    {L7Protocol::L7_PROTOCOL_POSTGRESQL, "PostgreSQL", &postgres::Infer, &MakeFrameParser<postgres::Traits>, Transport::kTcp, {5432}},
    {L7Protocol::L7_PROTOCOL_KAFKA, "Kafka", &kafka::Infer, &MakeFrameParser<kafka::Traits>, Transport::kTcp, {9092}},
    {L7Protocol::L7_PROTOCOL_MQTT, "MQTT", &mqtt::Infer, &MakeFrameParser<mqtt::Traits>, Transport::kTcp, {1883}},
    {L7Protocol::L7_PROTOCOL_REDIS, "Redis", &redis::Infer, &MakeFrameParser<redis::Traits>, Transport::kTcp, {6379}},
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
