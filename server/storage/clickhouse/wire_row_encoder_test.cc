// The wire fast path must produce the reflection path's bytes and stats for randomised records of
// every catalog table, including unknown enums, out-of-range integers, repeated occurrences of a
// field, unknown fields and long strings; malformed wire bytes are rejected without output.
#include "server/storage/clickhouse/wire_row_encoder.h"

#include <cstring>
#include <limits>
#include <random>
#include <type_traits>

#include <gtest/gtest.h>

#include "server/storage/record_batch_wire.h"
#include "sonde/agent/v1/records.pb.h"

namespace sonde::server::storage::clickhouse {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

std::string RandomText(std::mt19937_64& rng, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>('a' + rng() % 26));
  return s;
}

// Sets a random subset of the scalar fields of `m` to random values, biased to edge cases.
void Randomise(std::mt19937_64& rng, Message* m) {
  const auto* d = m->GetDescriptor();
  const auto* r = m->GetReflection();
  auto pick = [&rng]() -> uint64_t {
    switch (rng() % 6) {
      case 0: return 0;
      case 1: return rng() % 256;
      case 2: return rng() % 70000;
      case 3: return static_cast<uint64_t>(-static_cast<int64_t>(rng() % 300));  // negative
      case 4: return rng() & 0xffffffffu;
      default: return rng();
    }
  };
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_repeated() || rng() % 4 == 0) continue;  // leave some fields unset
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: r->SetInt32(m, f, static_cast<int32_t>(pick())); break;
      case FieldDescriptor::CPPTYPE_INT64: r->SetInt64(m, f, static_cast<int64_t>(pick())); break;
      case FieldDescriptor::CPPTYPE_UINT32: r->SetUInt32(m, f, static_cast<uint32_t>(pick())); break;
      case FieldDescriptor::CPPTYPE_UINT64: r->SetUInt64(m, f, pick()); break;
      case FieldDescriptor::CPPTYPE_BOOL: r->SetBool(m, f, rng() % 2 == 0); break;
      case FieldDescriptor::CPPTYPE_DOUBLE: r->SetDouble(m, f, static_cast<double>(pick()) / 7.0); break;
      case FieldDescriptor::CPPTYPE_FLOAT: r->SetFloat(m, f, static_cast<float>(pick()) / 7.0f); break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        // Mostly declared values, sometimes one from a newer agent or a negative one.
        const int count = f->enum_type()->value_count();
        int v = f->enum_type()->value(static_cast<int>(rng() % static_cast<uint64_t>(count)))->number();
        if (rng() % 5 == 0) v = static_cast<int>(rng() % 400) - 150;
        r->SetEnumValue(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        const size_t sizes[] = {0, 4, 16, 17, 127, 128, 300};
        const size_t n = sizes[rng() % 7];
        if (f->type() == FieldDescriptor::TYPE_BYTES) {
          std::string s;
          for (size_t k = 0; k < n; ++k) s.push_back(static_cast<char>(rng()));
          r->SetString(m, f, s);
        } else {
          r->SetString(m, f, RandomText(rng, n));
        }
        break;
      }
      default: break;
    }
  }
}

// RecordBatchWire::records index of a record type.
template <typename Record>
size_t KindOf() {
  if constexpr (std::is_same_v<Record, agent::v1::L7RequestLog>) return kL7RequestLogs;
  if constexpr (std::is_same_v<Record, agent::v1::L4FlowLog>) return kL4FlowLogs;
  if constexpr (std::is_same_v<Record, agent::v1::NetworkMetric>) return kNetworkMetrics;
  return kApplicationMetrics;
}

bool SameSide(const RecordSide& a, const RecordSide& b) {
  return a.ip == b.ip && a.time_s == b.time_s && a.pid == b.pid;
}

// RowTaps: the sides read in the encoding pass are AppendWireSides', and writing the ids at the
// reported offsets of a row encoded without them gives the row encoded with them.
void ExpectTapsAgree(WireRowEncoder* tapped, const schema::Table& table, const google::protobuf::Descriptor* d,
                     size_t kind, const std::string& wire, const ServerColumns& server, size_t tag_count,
                     const std::string& expected, std::string* out, EncodeStats* stats) {
  RecordSide sides[2];
  std::vector<size_t> offsets(tag_count + 1, 7);
  const size_t before = out->size();
  ASSERT_TRUE(tapped->AppendRow(table, d, wire, {server.agent_id, nullptr}, out, stats, {sides, offsets.data()}).ok());
  EXPECT_EQ(offsets[tag_count], 7u) << "wrote past the tag columns";
  std::vector<RecordSide> want;
  AppendWireSides(kind, wire, &want);
  ASSERT_EQ(want.size(), 2u);
  EXPECT_TRUE(SameSide(sides[0], want[0]) && SameSide(sides[1], want[1]))
      << table.name << ": sides differ from AppendWireSides";
  for (size_t t = 0; t < tag_count; ++t) {
    if (offsets[t] == std::numeric_limits<size_t>::max()) continue;
    ASSERT_GE(offsets[t], before);
    ASSERT_LE(offsets[t] + 4, out->size());
    const uint32_t id = server.tag_ids != nullptr ? server.tag_ids[t] : 0;
    std::memcpy(out->data() + offsets[t], &id, 4);  // little-endian hosts only, as RowBinary
  }
  EXPECT_EQ(*out, expected) << table.name;
}

template <typename Record>
void ExpectSameBytes(const schema::Table& table, std::mt19937_64& rng, int rounds) {
  std::vector<std::string> tag_columns;
  for (const auto& c : table.columns) {
    if (c.server_side && c.name != "agent_id" && c.type == schema::ColumnType::kUInt32) tag_columns.emplace_back(c.name);
  }
  RowBinaryEncoder slow;
  WireRowEncoder fast;
  slow.SetTagColumns(tag_columns);
  fast.SetTagColumns(tag_columns);
  std::vector<uint32_t> tags(tag_columns.size());
  std::string slow_out = "prefix", fast_out = "prefix", tapped_out = "prefix";
  EncodeStats slow_stats, fast_stats, tapped_stats;
  WireRowEncoder tapped;
  tapped.SetTagColumns(tag_columns);
  // One column no record has: every side field is read into a slot of its own.
  const std::vector<schema::Column> narrow_columns = {
      {"no_such_field", schema::ColumnType::kString, "String", nullptr, false, ""}};
  const schema::Table narrow{"db", "narrow", narrow_columns, 0, 0, "", "", ""};
  for (int i = 0; i < rounds; ++i) {
    Record a;
    Randomise(rng, &a);
    std::string wire = a.SerializeAsString();
    if (i % 3 == 0) {
      // A second occurrence of some fields (merge: scalars and strings take the last value).
      Record b;
      Randomise(rng, &b);
      wire += b.SerializeAsString();
    }
    if (i % 4 == 0) {
      // Unknown fields of every wire type: varint, fixed64, length-delimited, fixed32.
      wire += std::string("\xf8\xff\x03\x96\x01", 5);                    // field 8191 varint
      wire += std::string("\xf9\xff\x03", 3) + std::string(8, '\x7f');   // field 8191 fixed64
      wire += std::string("\xfa\xff\x03\x03xyz", 7);                     // field 8191 bytes
      wire += std::string("\xfd\xff\x03", 3) + std::string(4, '\x01');   // field 8191 fixed32
    }
    Record parsed;
    ASSERT_TRUE(parsed.ParseFromString(wire));
    for (auto& t : tags) t = static_cast<uint32_t>(rng());
    const ServerColumns server{static_cast<uint32_t>(rng()), i % 5 == 0 ? nullptr : tags.data()};
    ASSERT_TRUE(slow.AppendRow(table, parsed, server, &slow_out, &slow_stats).ok());
    ASSERT_TRUE(fast.AppendRow(table, Record::descriptor(), wire, server, &fast_out, &fast_stats).ok());
    ASSERT_EQ(fast_out, slow_out) << table.name << " record " << i << ": " << parsed.ShortDebugString();
    ExpectTapsAgree(&tapped, table, Record::descriptor(), KindOf<Record>(), wire, server, tag_columns.size(),
                    slow_out, &tapped_out, &tapped_stats);
    // A table without the side columns still reads the sides (slots of their own).
    std::string narrow_out;
    EncodeStats narrow_stats;
    ExpectTapsAgree(&tapped, narrow, Record::descriptor(), KindOf<Record>(), wire, server, tag_columns.size(),
                    std::string(1, '\0'), &narrow_out, &narrow_stats);
  }
  EXPECT_EQ(fast_stats.unknown_enum_values, slow_stats.unknown_enum_values);
  EXPECT_EQ(fast_stats.truncated_values, slow_stats.truncated_values);
  EXPECT_GT(slow_stats.truncated_values, 0u) << "the random values must exercise narrowing";
}

TEST(WireRowEncoderTest, ByteIdenticalToReflectionForEveryTable) {
  std::mt19937_64 rng(20261121);
  int tables = 0;
  for (const auto& t : schema::AllTables()) {
    if (t.name == "l7_request_log") ExpectSameBytes<agent::v1::L7RequestLog>(t, rng, 400);
    else if (t.name == "l4_flow_log") ExpectSameBytes<agent::v1::L4FlowLog>(t, rng, 400);
    else if (t.name.rfind("network_", 0) == 0) ExpectSameBytes<agent::v1::NetworkMetric>(t, rng, 400);
    else if (t.name.rfind("application_", 0) == 0) ExpectSameBytes<agent::v1::ApplicationMetric>(t, rng, 400);
    else continue;
    ++tables;
  }
  EXPECT_GE(tables, 6);
}

// The fields of a serialized message in reverse order (each field's key and value kept whole).
std::string ReverseFields(const std::string& wire) {
  std::vector<std::string> chunks;
  WireReader in(wire);
  while (!in.done()) {
    const size_t at = wire.size() - in.remaining();
    uint32_t number, wire_type;
    if (!in.ReadTag(&number, &wire_type) || !in.SkipValue(number, wire_type)) return wire;
    chunks.push_back(wire.substr(at, wire.size() - in.remaining() - at));
  }
  std::string out;
  for (auto it = chunks.rbegin(); it != chunks.rend(); ++it) out += *it;
  return out;
}

// Sets every scalar field to a value that is not its default (so every column is written from
// the record).
void SetEveryField(std::mt19937_64& rng, Message* m) {
  const auto* d = m->GetDescriptor();
  const auto* r = m->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_repeated()) continue;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: r->SetInt32(m, f, 1 + static_cast<int32_t>(rng() % 1000)); break;
      case FieldDescriptor::CPPTYPE_INT64: r->SetInt64(m, f, -1 - static_cast<int64_t>(rng() % 1000)); break;
      case FieldDescriptor::CPPTYPE_UINT32: r->SetUInt32(m, f, 1 + static_cast<uint32_t>(rng() % 100)); break;
      case FieldDescriptor::CPPTYPE_UINT64: r->SetUInt64(m, f, 1 + rng()); break;
      case FieldDescriptor::CPPTYPE_BOOL: r->SetBool(m, f, true); break;
      case FieldDescriptor::CPPTYPE_DOUBLE: r->SetDouble(m, f, 1.5 + static_cast<double>(rng() % 100)); break;
      case FieldDescriptor::CPPTYPE_FLOAT: r->SetFloat(m, f, 0.25f + static_cast<float>(rng() % 100)); break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* e = f->enum_type();
        r->SetEnumValue(m, f, e->value(e->value_count() - 1)->number());
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING: r->SetString(m, f, f->type() == FieldDescriptor::TYPE_BYTES ? std::string(16, '\x5a') : RandomText(rng, 1 + rng() % 40)); break;
      default: break;
    }
  }
}

// One record through both encoders (and the tapped path): same bytes, same stats.
template <typename Record>
void ExpectSameRow(const schema::Table& table, const std::string& wire, const std::vector<std::string>& tag_columns) {
  Record parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  RowBinaryEncoder slow;
  WireRowEncoder fast;
  slow.SetTagColumns(tag_columns);
  fast.SetTagColumns(tag_columns);
  std::vector<uint32_t> tags(tag_columns.size());
  for (size_t t = 0; t < tags.size(); ++t) tags[t] = 0x01020304u * static_cast<uint32_t>(t + 1);
  const ServerColumns server{0xa1b2c3d4u, tags.data()};
  std::string slow_out = "p", fast_out = "p", tapped_out = "p";
  EncodeStats slow_stats, fast_stats, tapped_stats;
  ASSERT_TRUE(slow.AppendRow(table, parsed, server, &slow_out, &slow_stats).ok());
  ASSERT_TRUE(fast.AppendRow(table, Record::descriptor(), wire, server, &fast_out, &fast_stats).ok());
  EXPECT_EQ(fast_out, slow_out) << table.name << ": " << parsed.ShortDebugString();
  EXPECT_EQ(fast_stats.truncated_values, slow_stats.truncated_values) << table.name;
  EXPECT_EQ(fast_stats.unknown_enum_values, slow_stats.unknown_enum_values) << table.name;
  ExpectTapsAgree(&fast, table, Record::descriptor(), KindOf<Record>(), wire, server, tag_columns.size(),
                  slow_out + slow_out.substr(1), &fast_out, &tapped_stats);
}

template <typename Record>
void ExpectSameEdgeRows(const schema::Table& table, std::mt19937_64& rng) {
  std::vector<std::string> tag_columns;
  for (const auto& c : table.columns) {
    if (c.server_side && c.name != "agent_id" && c.type == schema::ColumnType::kUInt32) tag_columns.emplace_back(c.name);
  }
  ExpectSameRow<Record>(table, "", tag_columns);  // every field absent
  Record every;
  SetEveryField(rng, &every);
  const std::string wire = every.SerializeAsString();
  ExpectSameRow<Record>(table, wire, tag_columns);                 // every field present
  ExpectSameRow<Record>(table, ReverseFields(wire), tag_columns);  // out of order
  // Unknown fields around and between the known ones, and every field twice (the last wins).
  Record other;
  SetEveryField(rng, &other);
  const std::string unknown = std::string("\xf8\xff\x03\x96\x01", 5) + std::string("\xfa\xff\x03\x03xyz", 7);
  ExpectSameRow<Record>(table, unknown + ReverseFields(wire) + unknown + other.SerializeAsString() + unknown,
                        tag_columns);
}

TEST(WireRowEncoderTest, AbsentPresentReorderedAndUnknownFieldsMatchReflection) {
  std::mt19937_64 rng(7);
  int tables = 0;
  for (const auto& t : schema::AllTables()) {
    if (t.name == "l7_request_log") ExpectSameEdgeRows<agent::v1::L7RequestLog>(t, rng);
    else if (t.name == "l4_flow_log") ExpectSameEdgeRows<agent::v1::L4FlowLog>(t, rng);
    else if (t.name.rfind("network_", 0) == 0) ExpectSameEdgeRows<agent::v1::NetworkMetric>(t, rng);
    else if (t.name.rfind("application_", 0) == 0) ExpectSameEdgeRows<agent::v1::ApplicationMetric>(t, rng);
    else continue;
    ++tables;
  }
  EXPECT_GE(tables, 6);
}

// Columns in an order no catalog table has: fixed-width runs (agent id, tags, defaults, IPv6)
// split by String columns, a String column no field fills, and an Enum8 whose values do not
// include 0 (an unset field is then an unknown value, counted per row like reflection does).
TEST(WireRowEncoderTest, MixedColumnRunsAndEnumWithoutZero) {
  static constexpr schema::EnumValue kOddValues[] = {{"unknown", 3}, {"http", 1}};
  static const schema::Enum kOdd{"Odd", kOddValues};
  const std::vector<schema::Column> columns = {
      {"tag_set_id_1", schema::ColumnType::kUInt32, "UInt32", nullptr, true, ""},
      {"request_type", schema::ColumnType::kString, "String", nullptr, false, ""},
      {"ip6_0", schema::ColumnType::kIPv6, "FixedString(16)", nullptr, false, ""},
      {"agent_id", schema::ColumnType::kUInt32, "UInt32", nullptr, true, ""},
      {"l7_protocol", schema::ColumnType::kEnum8, "Enum8", &kOdd, false, ""},
      {"not_a_field", schema::ColumnType::kString, "String", nullptr, false, ""},
      {"tag_set_id_0", schema::ColumnType::kUInt32, "UInt32", nullptr, true, ""},
      {"endpoint", schema::ColumnType::kString, "String", nullptr, false, ""},
      {"response_code", schema::ColumnType::kInt8, "Int8", nullptr, false, ""},
  };
  const schema::Table table{"db", "mixed", columns, 0, 0, "", "", ""};
  const std::vector<std::string> tags = {"tag_set_id_0", "tag_set_id_1"};
  ExpectSameRow<agent::v1::L7RequestLog>(table, "", tags);
  agent::v1::L7RequestLog r;
  r.set_request_type("GET");
  r.set_ip6_0(std::string(20, '\x11'));  // truncated to 16
  r.set_l7_protocol(static_cast<common::v1::L7Protocol>(1));
  r.set_endpoint("/a/{id}");
  r.set_response_code(300);  // does not fit Int8
  ExpectSameRow<agent::v1::L7RequestLog>(table, r.SerializeAsString(), tags);
  // A second occurrence replaces the first one's value and its stats.
  agent::v1::L7RequestLog fix;
  fix.set_ip6_0(std::string(4, '\x22'));
  fix.set_response_code(-5);
  fix.set_l7_protocol(static_cast<common::v1::L7Protocol>(2));  // unknown here
  ExpectSameRow<agent::v1::L7RequestLog>(table, r.SerializeAsString() + fix.SerializeAsString(), tags);
  ExpectSameRow<agent::v1::L7RequestLog>(table, fix.SerializeAsString() + r.SerializeAsString(), tags);
  r.clear_l7_protocol();
  ExpectSameRow<agent::v1::L7RequestLog>(table, r.SerializeAsString(), tags);
}

TEST(WireRowEncoderTest, UnknownEnumsAreCountedLikeReflection) {
  const schema::Table* l7 = schema::FindTable("flow_log", "l7_request_log");
  ASSERT_NE(l7, nullptr);
  agent::v1::L7RequestLog r;
  r.set_l7_protocol(static_cast<common::v1::L7Protocol>(99));
  const std::string wire = r.SerializeAsString();
  WireRowEncoder fast;
  RowBinaryEncoder slow;
  std::string a, b;
  EncodeStats sa, sb;
  ASSERT_TRUE(fast.AppendRow(*l7, r.GetDescriptor(), wire, {}, &a, &sa).ok());
  ASSERT_TRUE(slow.AppendRow(*l7, r, {}, &b, &sb).ok());
  EXPECT_EQ(a, b);
  EXPECT_EQ(sa.unknown_enum_values, 1u);
}

TEST(WireRowEncoderTest, MalformedWireIsRejectedWithoutOutput) {
  const schema::Table* l7 = schema::FindTable("flow_log", "l7_request_log");
  ASSERT_NE(l7, nullptr);
  agent::v1::L7RequestLog r;
  r.set_request_type("GET");
  r.set_time(1700000000);
  const std::string good = r.SerializeAsString();
  WireRowEncoder fast;
  EncodeStats stats;
  const std::vector<std::string> bad = {
      good.substr(0, good.size() - 1),         // truncated
      good + std::string("\x0a\x7f", 2),       // string claims 127 bytes that are missing
      good + std::string("\x08\xff\xff", 3),   // unterminated varint
      good + std::string("\x00", 1),           // tag 0
      good + std::string("\x0c", 1),           // end-group without a group
  };
  for (const auto& wire : bad) {
    agent::v1::L7RequestLog check;
    EXPECT_FALSE(check.ParseFromString(wire)) << "protobuf must reject it too";
    std::string out = "keep";
    Status s = fast.AppendRow(*l7, r.GetDescriptor(), wire, {}, &out, &stats);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(out, "keep");
    // With taps: zero sides (as AppendWireSides gives for a malformed record), no tag offsets.
    RecordSide sides[2] = {{net::IpAddress::V4(1), 5, 6}, {net::IpAddress::V4(1), 5, 6}};
    size_t offsets[1] = {0};
    fast.SetTagColumns({"tag_set_id_0"});
    s = fast.AppendRow(*l7, r.GetDescriptor(), wire, {}, &out, &stats, {sides, offsets});
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(out, "keep");
    std::vector<RecordSide> want;
    AppendWireSides(kL7RequestLogs, wire, &want);
    EXPECT_TRUE(SameSide(sides[0], want[0]) && SameSide(sides[1], want[1]));
    EXPECT_TRUE(SameSide(sides[0], ZeroSide()));
    EXPECT_EQ(offsets[0], std::numeric_limits<size_t>::max());
    fast.SetTagColumns({});
  }
}

TEST(WireRowEncoderTest, IncompatibleFieldIsAContractError) {
  const std::vector<schema::Column> columns = {
      {"request_type", schema::ColumnType::kUInt32, "UInt32", nullptr, false, ""}};
  const schema::Table table{"db", "t", columns, 0, 0, "toYYYYMMDD(time)", "", ""};
  WireRowEncoder fast;
  std::string out;
  EncodeStats stats;
  Status s = fast.AppendRow(table, agent::v1::L7RequestLog::descriptor(), "", {}, &out, &stats);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace sonde::server::storage::clickhouse
