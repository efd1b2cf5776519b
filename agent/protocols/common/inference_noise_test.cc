// Inference must not accept arbitrary binary data. Regression for connections joined mid-stream
// in the middle of large binary bodies (ClickHouse `INSERT ... FORMAT RowBinary` over HTTP/1.1):
// the first bytes seen are body bytes, and none of the binary protocols may claim them.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <string>

#include "agent/protocols/common/l7_analyzer.h"
#include "agent/protocols/common/registry.h"
#include "agent/protocols/common/testing/collecting_sink.h"

namespace sonde::agent::protocols {
namespace {

constexpr uint64_t kSec = 1'000'000'000ULL;

// Appends `n` little-endian bytes of `v`.
void PutLe(std::string* out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// One RowBinary-like row: small integers, timestamps, LEB128-prefixed strings, floats, zeros.
void AppendRow(std::mt19937_64* rng, std::string* out) {
  std::uniform_int_distribution<int> small(0, 300);
  PutLe(out, static_cast<uint64_t>(small(*rng)), 8);                  // UInt64 id
  PutLe(out, 1'790'000'000u + static_cast<uint32_t>(small(*rng)), 4);  // DateTime
  PutLe(out, static_cast<uint64_t>(small(*rng) % 3), 1);              // Enum8 / UInt8
  PutLe(out, static_cast<uint64_t>(small(*rng)) << 16, 4);            // UInt32 ip
  PutLe(out, 0, 16);                                                   // FixedString(16) zeros
  const int slen = small(*rng) % 40;
  out->push_back(static_cast<char>(slen));
  for (int i = 0; i < slen; ++i) out->push_back(static_cast<char>('a' + small(*rng) % 26));
  double d = static_cast<double>(small(*rng)) / 7.0;
  uint64_t bits = 0;
  std::memcpy(&bits, &d, sizeof(bits));
  PutLe(out, bits, 8);
  PutLe(out, (*rng)(), static_cast<int>(small(*rng) % 9));  // some entropy
}

std::string NoiseChunk(std::mt19937_64* rng, int kind, size_t size) {
  std::string s;
  if (kind == 0) {
    while (s.size() < size) s.push_back(static_cast<char>((*rng)() & 0xff));
  } else if (kind == 1) {
    while (s.size() < size) AppendRow(rng, &s);
  } else {
    // Mostly zeros with sparse small values (sparse columns, default-valued rows).
    while (s.size() < size) {
      s.push_back(((*rng)() % 7 == 0) ? static_cast<char>((*rng)() % 4) : '\0');
    }
  }
  s.resize(size);
  return s;
}

TEST(InferenceNoiseTest, MidStreamBinaryBodiesAreNeverInferred) {
  std::mt19937_64 rng(0x50dde);
  testing::CollectingSink sink;
  metrics::Registry metrics;
  L7Analyzer analyzer(&sink, &metrics);  // every registered protocol
  std::map<uint64_t, int> protocols_seen;
  constexpr int kConnections = 600;
  uint64_t ts = 100 * kSec;
  for (int i = 0; i < kConnections; ++i) {
    flow::ConnectionInfo conn;
    conn.flow_id = 1000 + static_cast<uint64_t>(i);
    conn.tuple.src_ip = *net::IpAddress::Parse("198.18.0.1");
    conn.tuple.dst_ip = *net::IpAddress::Parse("198.18.0.2");
    conn.tuple.src_port = static_cast<uint16_t>(40000 + i);
    conn.tuple.dst_port = (i % 2 == 0) ? 8123 : 39123;  // not a hinted port
    conn.role_source = (i % 3 == 0) ? common::v1::ROLE_SOURCE_HANDSHAKE
                                    : common::v1::ROLE_SOURCE_PORT_HEURISTIC;
    const int kind = i % 3;
    for (int c = 0; c < 24; ++c) {
      const auto dir = (c % 4 == 3) ? flow::StreamDirection::kResponse
                                    : flow::StreamDirection::kRequest;
      const size_t size = 1 + static_cast<size_t>(rng() % ((c % 2 == 0) ? 4096 : 300));
      const std::string data = NoiseChunk(&rng, kind, size);
      flow::StreamChunk chunk;
      chunk.timestamp_ns = ts;
      chunk.data = {reinterpret_cast<const uint8_t*>(data.data()), data.size()};
      analyzer.OnData(conn, dir, chunk);
      ts += 1000;
    }
    const auto p = analyzer.ProtocolOf(conn.flow_id);
    if (p != common::v1::L7_PROTOCOL_UNKNOWN) ++protocols_seen[static_cast<uint64_t>(p)];
    EXPECT_EQ(p, common::v1::L7_PROTOCOL_UNKNOWN) << "connection " << i << " kind " << kind;
  }
  analyzer.FlushAll(ts + 100 * kSec);
  for (const auto& [p, n] : protocols_seen) {
    ADD_FAILURE() << n << " noise connections inferred as protocol " << p;
  }
  EXPECT_TRUE(sink.l7.empty()) << sink.l7.size() << " records from noise";
}

// Every Infer function directly, on 100000 chunks (times 2 directions): none may say kYes.
TEST(InferenceNoiseTest, NoInferFunctionAcceptsBinaryNoise) {
  std::mt19937_64 rng(0xc11c4);
  flow::ConnectionInfo conn;
  conn.tuple.src_port = 40000;
  conn.tuple.dst_port = 8123;
  std::map<std::string, int> accepted;
  std::map<std::string, std::string> sample;  // hex of the first 48 bytes of one accepted chunk
  for (int i = 0; i < 100000; ++i) {
    const int kind = i % 3;
    const size_t size = 1 + static_cast<size_t>(rng() % ((i % 2 == 0) ? 4096 : 64));
    const std::string data = NoiseChunk(&rng, kind, size);
    for (const ProtocolSpec& p : AllProtocols()) {
      if (p.infer == nullptr) continue;
      for (auto dir : {flow::StreamDirection::kRequest, flow::StreamDirection::kResponse}) {
        if (p.infer(dir, data, conn) == InferResult::kYes) {
          const std::string what =
              std::string(p.name) + (kind == 0 ? " random" : kind == 1 ? " rows" : " zeros");
          if (accepted[what]++ == 0) {
            static constexpr char kHex[] = "0123456789abcdef";
            for (size_t b = 0; b < std::min<size_t>(48, data.size()); ++b) {
              sample[what] += kHex[static_cast<uint8_t>(data[b]) >> 4];
              sample[what] += kHex[static_cast<uint8_t>(data[b]) & 0xf];
            }
          }
        }
      }
    }
  }
  for (const auto& [what, n] : accepted) {
    ADD_FAILURE() << what << ": " << n << " chunks accepted, e.g. " << sample[what];
  }
}

}  // namespace
}  // namespace sonde::agent::protocols
