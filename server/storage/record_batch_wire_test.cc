// RecordBatch wire scanning against protobuf itself: the same records in the same order, the same
// accept/reject decision on damaged bytes, and the same sides as the parsed-message path.
#include "server/storage/record_batch_wire.h"

#include <gtest/gtest.h>

#include <random>

#include "server/storage/record_sides.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::server::storage {
namespace {

agent::v1::RecordBatch RandomBatch(std::mt19937_64& rng) {
  agent::v1::RecordBatch b;
  auto ip6 = [&] {
    std::string s(16, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  };
  const int n = 1 + static_cast<int>(rng() % 6);
  for (int i = 0; i < n; ++i) {
    auto* l7 = b.add_l7_request_logs();
    l7->set_time(static_cast<uint32_t>(rng()));
    l7->set_is_ipv4(rng() % 2);
    l7->set_ip4_0(static_cast<uint32_t>(rng()));
    l7->set_ip4_1(static_cast<uint32_t>(rng()));
    if (!l7->is_ipv4()) {
      l7->set_ip6_0(ip6());
      l7->set_ip6_1(ip6());
    }
    l7->set_process_id_0(static_cast<uint32_t>(rng() % 70000));
    l7->set_process_id_1(static_cast<uint32_t>(rng() % 70000));
    l7->set_endpoint("/api/v1/\xc3\xa9t\xc3\xa9/" + std::to_string(rng() % 1000));
    l7->set_request_domain("svc.ns.svc.cluster.local");
    auto* l4 = b.add_l4_flow_logs();
    l4->set_time(static_cast<uint32_t>(rng()));
    l4->set_is_ipv4(1);
    l4->set_ip4_0(static_cast<uint32_t>(rng()));
    l4->set_process_id_1(static_cast<uint32_t>(rng()));
    l4->set_process_kname_0("java");
    auto* nm = b.add_network_metrics();
    nm->set_time(static_cast<uint32_t>(rng()));
    nm->set_ip4_1(static_cast<uint32_t>(rng()));
    nm->set_is_ipv4(1);
    nm->set_granularity_s(rng() % 2 ? 1 : 60);
    auto* am = b.add_application_metrics();
    am->set_time(static_cast<uint32_t>(rng()));
    am->set_ip6_0(ip6());
    am->set_endpoint("GET /x");
    auto* p = b.add_processes();
    p->set_pid(static_cast<uint32_t>(rng()));
    p->set_name("nginx");
  }
  return b;
}

TEST(RecordBatchWireTest, SplitKeepsTheParsedOrderPerKind) {
  // Kinds interleaved on the wire, plus an unknown field and ProcessInfo records in between.
  std::string wire;
  std::vector<std::string> want_l7, want_am, want_proc;
  for (int i = 0; i < 3; ++i) {
    agent::v1::RecordBatch part;
    part.add_l7_request_logs()->set_response_code(i);
    part.add_processes()->set_pid(static_cast<uint32_t>(i));
    part.add_application_metrics()->set_requests(static_cast<uint64_t>(i) + 10);
    wire += part.SerializeAsString();
    wire += std::string("\xf8\xff\x03\x01", 4);  // unknown field 8191
    want_l7.push_back(part.l7_request_logs(0).SerializeAsString());
    want_am.push_back(part.application_metrics(0).SerializeAsString());
    want_proc.push_back(part.processes(0).SerializeAsString());
  }
  agent::v1::RecordBatch parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  RecordBatchWire split;
  ASSERT_TRUE(SplitRecordBatch(wire, &split));
  ASSERT_EQ(split.records[kL7RequestLogs].size(), 3u);
  EXPECT_TRUE(split.records[kL4FlowLogs].empty());
  EXPECT_TRUE(split.records[kNetworkMetrics].empty());
  ASSERT_EQ(split.records[kApplicationMetrics].size(), 3u);
  ASSERT_EQ(split.processes.size(), 3u);
  EXPECT_EQ(split.RecordCount(), 6u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(split.records[0][i], want_l7[i]);
    EXPECT_EQ(split.records[3][i], want_am[i]);
    EXPECT_EQ(split.processes[i], want_proc[i]);
    EXPECT_EQ(split.records[0][i], parsed.l7_request_logs(static_cast<int>(i)).SerializeAsString());
  }
  EXPECT_FALSE(SplitRecordBatch(wire.substr(0, wire.size() - 6), &split));
  // A RecordBatch field with another wire type is an unknown field to protobuf, and to us.
  const std::string odd = std::string("\x08\x05", 2) + wire;
  ASSERT_TRUE(parsed.ParseFromString(odd));
  ASSERT_TRUE(CheckRecordBatch(odd, &split));
  EXPECT_EQ(split.records[0].size(), 3u);
}

TEST(RecordBatchWireTest, SplitOfALargeBatchEqualsTheParse) {
  // Many records of mixed sizes (the plain split prefetches ahead of where it reads, up to the
  // end of the bytes): every record, in order, and every truncation refused as protobuf does.
  std::mt19937_64 rng(11);
  agent::v1::RecordBatch b;
  for (int i = 0; i < 60; ++i) b.MergeFrom(RandomBatch(rng));
  const std::string wire = b.SerializeAsString();
  ASSERT_GT(wire.size(), 8192u);
  RecordBatchWire split;
  ASSERT_TRUE(SplitRecordBatch(wire, &split));
  ASSERT_EQ(split.records[kL7RequestLogs].size(), static_cast<size_t>(b.l7_request_logs_size()));
  ASSERT_EQ(split.records[kNetworkMetrics].size(), static_cast<size_t>(b.network_metrics_size()));
  for (int i = 0; i < b.l7_request_logs_size(); ++i) {
    EXPECT_EQ(split.records[kL7RequestLogs][static_cast<size_t>(i)], b.l7_request_logs(i).SerializeAsString());
  }
  for (int i = 0; i < b.network_metrics_size(); ++i) {
    EXPECT_EQ(split.records[kNetworkMetrics][static_cast<size_t>(i)], b.network_metrics(i).SerializeAsString());
  }
  agent::v1::RecordBatch parsed;
  for (size_t cut : {wire.size() - 1, wire.size() / 2 + 3, size_t{5}}) {
    const std::string_view head(wire.data(), cut);
    EXPECT_EQ(SplitRecordBatch(head, &split), parsed.ParseFromArray(head.data(), static_cast<int>(cut))) << cut;
  }
}

TEST(RecordBatchWireTest, CheckAgreesWithProtobufOnDamagedBytes) {
  std::mt19937_64 rng(11);
  int rejected = 0, accepted = 0;
  for (int round = 0; round < 4000; ++round) {
    std::string wire = RandomBatch(rng).SerializeAsString();
    switch (round % 4) {
      case 0:  // flip a few bits
        for (int k = 0; k < 1 + static_cast<int>(rng() % 3); ++k) {
          wire[rng() % wire.size()] ^= static_cast<char>(1u << (rng() % 8));
        }
        break;
      case 1:  // truncate
        wire.resize(rng() % wire.size());
        break;
      case 2:  // overwrite a byte with a random one
        wire[rng() % wire.size()] = static_cast<char>(rng());
        break;
      default:  // insert a random byte
        wire.insert(wire.begin() + static_cast<long>(rng() % wire.size()), static_cast<char>(rng()));
        break;
    }
    agent::v1::RecordBatch parsed;
    const bool want = parsed.ParseFromString(wire);
    RecordBatchWire split;
    const bool got = CheckRecordBatch(wire, &split);
    ASSERT_EQ(got, want) << "round " << round;
    (want ? accepted : rejected)++;
    if (want) {
      EXPECT_EQ(split.records[0].size(), static_cast<size_t>(parsed.l7_request_logs_size()));
      EXPECT_EQ(split.records[1].size(), static_cast<size_t>(parsed.l4_flow_logs_size()));
      EXPECT_EQ(split.records[2].size(), static_cast<size_t>(parsed.network_metrics_size()));
      EXPECT_EQ(split.records[3].size(), static_cast<size_t>(parsed.application_metrics_size()));
      EXPECT_EQ(split.processes.size(), static_cast<size_t>(parsed.processes_size()));
    }
  }
  EXPECT_GT(rejected, 500);
  EXPECT_GT(accepted, 500);
}

TEST(RecordBatchWireTest, StringsMustBeUtf8BytesNeedNot) {
  agent::v1::RecordBatch b;
  b.add_l7_request_logs()->set_ip6_0(std::string("\xff\xfe\x80", 3));  // bytes: anything goes
  RecordBatchWire split;
  EXPECT_TRUE(CheckRecordBatch(b.SerializeAsString(), &split));
  b.mutable_l7_request_logs(0)->set_endpoint(std::string("/a\xc0\xaf", 4));  // overlong '/'
  agent::v1::RecordBatch parsed;
  const std::string wire = b.SerializeAsString();
  EXPECT_FALSE(parsed.ParseFromString(wire));
  EXPECT_FALSE(CheckRecordBatch(wire, &split));
  EXPECT_TRUE(SplitRecordBatch(wire, &split)) << "the split alone does not look into records";
  EXPECT_TRUE(ValidUtf8("plain ascii, long enough for the 8-byte path"));
  EXPECT_TRUE(ValidUtf8("\xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(ValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(ValidUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(ValidUtf8("abcdefgh\xe2\x82"));  // cut
}

TEST(RecordBatchWireTest, CheckReadsEveryKeyAndLengthFormLikeProtobuf) {
  // The check reads common fields from a table by their 1-2 byte key and everything else the
  // long way: each form of key and length, in the middle of a record and in its last 16 bytes,
  // must get protobuf's answer, string (endpoint, 19) or bytes (ip6_0, 9).
  auto key = [](uint32_t number, uint32_t wire_type, int bytes) {  // possibly non-canonical
    std::string k;
    uint32_t v = number << 3 | wire_type;
    for (int i = 0; i < bytes; ++i) {
      k.push_back(static_cast<char>((v & 0x7f) | (i + 1 < bytes ? 0x80 : 0)));
      v >>= 7;
    }
    return k;
  };
  auto length = [](size_t n, int bytes) {
    std::string l;
    for (int i = 0; i < bytes; ++i) {
      l.push_back(static_cast<char>((n & 0x7f) | (i + 1 < bytes ? 0x80 : 0)));
      n >>= 7;
    }
    return l;
  };
  const std::string filler = agent::v1::L7RequestLog().SerializeAsString() + key(2, 0, 1) + "\x85\x01" +
                             key(17, 2, 2) + length(40, 1) + std::string(40, 'd');  // start_time_us, request_domain
  int checked = 0;
  for (uint32_t number : {19u, 9u}) {
    for (int key_bytes : {1, 2, 3, 5}) {
      for (int length_bytes : {1, 2}) {
        for (size_t size : {size_t{3}, size_t{200}}) {
          if (length_bytes == 1 && size > 127) continue;
          for (bool bad_utf8 : {false, true}) {
            std::string value(size, 'v');
            if (bad_utf8) value[size / 2] = '\xc0';
            const std::string field = key(number, 2, key_bytes) + length(size, length_bytes) + value;
            for (bool at_end : {false, true}) {
              const std::string record = at_end ? filler + field : field + filler;
              const std::string one = key(1, 2, 1) + length(record.size(), record.size() < 128 ? 1 : 2) + record;
              const std::string good = key(1, 2, 1) + length(filler.size(), 1) + filler;
              // Alone, and paired with a good record (records are checked two at a time) on
              // either side; the pair's other record longer or shorter than this one.
              for (const std::string& batch_wire : {one, good + one, one + good, one + good + good + good + one}) {
                agent::v1::RecordBatch parsed;
                RecordBatchWire split;
                EXPECT_EQ(CheckRecordBatch(batch_wire, &split), parsed.ParseFromString(batch_wire))
                    << "field " << number << " key " << key_bytes << " length " << length_bytes << " size " << size
                    << " bad " << bad_utf8 << " end " << at_end << " batch bytes " << batch_wire.size();
                ++checked;
              }
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 2 * 4 * 3 * 2 * 2 * 4);
  // A varint of every length, also right before the record's end, and one with an 11th byte.
  for (int n = 1; n <= 11; ++n) {
    std::string v(static_cast<size_t>(n - 1), '\x80');
    v.push_back('\x01');
    for (bool at_end : {false, true}) {
      const std::string field = key(5, 0, 1) + v;  // flow_id
      const std::string record = at_end ? filler + field : field + filler;
      const std::string batch_wire = key(1, 2, 1) + length(record.size(), 1) + record;
      agent::v1::RecordBatch parsed;
      RecordBatchWire split;
      EXPECT_EQ(CheckRecordBatch(batch_wire, &split), parsed.ParseFromString(batch_wire)) << n << " " << at_end;
    }
  }
}

TEST(RecordBatchWireTest, SidesFromWireEqualSidesFromMessages) {
  std::mt19937_64 rng(5);
  for (int round = 0; round < 200; ++round) {
    AgentBatch parsed;
    parsed.records = RandomBatch(rng);
    AgentBatch wire;
    wire.wire = parsed.records.SerializeAsString();
    if (round % 3 == 0) {
      // A repeated scalar: the last value wins; a known field with another wire type is unknown.
      agent::v1::L7RequestLog extra;
      extra.set_time(12345);
      std::string more = extra.SerializeAsString();
      more += std::string("\x3d\x01\x02\x03\x04", 5);  // field 7 (ip4_0) as fixed32
      std::string rec = parsed.records.l7_request_logs(0).SerializeAsString() + more;
      agent::v1::RecordBatch b;
      ASSERT_TRUE(b.add_l7_request_logs()->ParseFromString(rec));
      parsed.records.MergeFrom(b);
      wire.wire += std::string("\x0a", 1) + static_cast<char>(rec.size()) + rec;
      ASSERT_LT(rec.size(), 128u);
    }
    std::vector<RecordSide> a, b;
    ASSERT_TRUE(ExtractSides(parsed, &a).ok());
    ASSERT_TRUE(ExtractSides(wire, &b).ok());
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].ip, b[i].ip) << i;
      EXPECT_EQ(a[i].time_s, b[i].time_s) << i;
      EXPECT_EQ(a[i].pid, b[i].pid) << i;
    }
  }
  AgentBatch bad;
  bad.wire = "\x0a\x05\x08";
  std::vector<RecordSide> sides;
  EXPECT_FALSE(ExtractSides(bad, &sides).ok());
}

// SkipVarint (the fast skip) accepts and consumes exactly what ReadVarint does, for every length
// of continuation run, with and without room for the 8-byte load.
TEST(RecordBatchWireTest, SkipVarintMatchesReadVarint) {
  std::mt19937_64 rng(99);
  int cases = 0;
  for (size_t run = 0; run <= 12; ++run) {
    for (size_t tail = 0; tail <= 12; ++tail) {
      for (int rep = 0; rep < 8; ++rep) {
        std::string bytes;
        for (size_t i = 0; i < run; ++i) bytes.push_back(static_cast<char>(0x80 | (rng() & 0x7f)));
        if (rep % 2 == 0) bytes.push_back(static_cast<char>(rng() & 0x7f));  // a last byte, or none
        for (size_t i = 0; i < tail; ++i) bytes.push_back(static_cast<char>(rng()));
        WireReader a(bytes), b(bytes);
        uint64_t v;
        const bool read = a.ReadVarint(&v);
        const bool skip = b.SkipVarint();
        ASSERT_EQ(read, skip) << "run " << run << " tail " << tail;
        if (!read) continue;
        ASSERT_EQ(a.remaining(), b.remaining()) << "run " << run << " tail " << tail;
        ++cases;
      }
    }
  }
  EXPECT_GT(cases, 300);
}

// ValidUtf8 decides as protobuf's parser does on a proto3 string field, for ASCII runs of every
// length around the 16- and 8-byte fast paths followed by valid and invalid multi-byte bytes.
TEST(RecordBatchWireTest, ValidUtf8AgreesWithProtobuf) {
  std::mt19937_64 rng(7);
  const auto* field = agent::v1::L7RequestLog::descriptor()->FindFieldByName("version");
  ASSERT_NE(field, nullptr);
  ASSERT_EQ(field->type(), google::protobuf::FieldDescriptor::TYPE_STRING);
  const char* tails[] = {"", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc3", "\xe2\x82", "\xed\xa0\x80",
                         "\xc0\xaf", "\xf8\x88\x80\x80\x80", "\x80", "\xff"};
  int valid = 0, invalid = 0;
  for (size_t run = 0; run <= 40; ++run) {
    for (const char* tail : tails) {
      for (int rep = 0; rep < 3; ++rep) {
        std::string text;
        for (size_t i = 0; i < run; ++i) text.push_back(static_cast<char>(0x20 + rng() % 95));
        text += tail;
        for (int i = 0; i < rep * 9; ++i) text.push_back(static_cast<char>(0x20 + rng() % 95));
        std::string wire;
        for (uint32_t key = static_cast<uint32_t>(field->number()) << 3 | 2; key != 0; key >>= 7) {
          wire.push_back(static_cast<char>((key & 0x7f) | (key >= 0x80 ? 0x80 : 0)));
        }
        wire.push_back(static_cast<char>(text.size()));
        wire += text;
        agent::v1::L7RequestLog m;
        const bool protobuf = m.ParseFromString(wire);
        ASSERT_EQ(ValidUtf8(text), protobuf) << "run " << run << " tail " << tail << " rep " << rep;
        (protobuf ? valid : invalid) += 1;
      }
    }
  }
  EXPECT_GT(valid, 100);
  EXPECT_GT(invalid, 100);
}

// ReadVarint's values for every length (1..10 bytes, non-canonical ones too, bits past 64
// dropped) equal a plain byte loop's, with and without room for its 8-byte load.
TEST(RecordBatchWireTest, ReadVarintValuesOfEveryLength) {
  std::mt19937_64 rng(3);
  int cases = 0;
  for (size_t len = 1; len <= 10; ++len) {
    for (size_t tail : {0u, 1u, 9u, 12u}) {
      for (int rep = 0; rep < 50; ++rep) {
        std::string bytes;
        for (size_t i = 0; i + 1 < len; ++i) bytes.push_back(static_cast<char>(0x80 | (rng() & 0x7f)));
        bytes.push_back(static_cast<char>(rep % 5 == 0 ? 0 : rng() & 0x7f));
        for (size_t i = 0; i < tail; ++i) bytes.push_back(static_cast<char>(rng()));
        uint64_t want = 0;
        for (size_t i = 0; i < len; ++i) want |= uint64_t{static_cast<uint8_t>(bytes[i]) & 0x7fu} << (7 * i);
        WireReader r(bytes);
        uint64_t got = 0;
        ASSERT_TRUE(r.ReadVarint(&got)) << "len " << len << " tail " << tail;
        ASSERT_EQ(got, want) << "len " << len << " tail " << tail;
        ASSERT_EQ(r.remaining(), tail);
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 2000);
}

TEST(RecordBatchWireTest, ReadVarintFieldTakesTheLastValue) {
  agent::v1::NetworkMetric m;
  m.set_granularity_s(60);
  std::string wire = m.SerializeAsString();
  EXPECT_EQ(ReadVarintField(wire, 27, 0), 60u);
  EXPECT_EQ(ReadVarintField(wire, 26, 7), 7u);
  m.set_granularity_s(1);
  wire += m.SerializeAsString();
  EXPECT_EQ(ReadVarintField(wire, 27, 0), 1u);
  EXPECT_EQ(ReadVarintField(wire.substr(0, wire.size() - 1), 27, 9), 9u);
}

}  // namespace
}  // namespace sonde::server::storage
