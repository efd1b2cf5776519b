// Golden bytes of RowBinary rows: a test table covering every column kind, encoded from a real
// L7RequestLog, compared with the layout ClickHouse documents for RowBinary.
#include "server/storage/clickhouse/row_binary_encoder.h"

#include <gtest/gtest.h>

#include "sonde/agent/v1/records.pb.h"

namespace sonde::server::storage::clickhouse {
namespace {

using schema::Column;
using schema::ColumnType;

// Builds expected bytes explicitly, little endian, one column at a time.
class Bytes {
 public:
  Bytes& U8(uint8_t v) { return Raw(&v, 1); }
  Bytes& U16(uint16_t v) { return LE(v, 2); }
  Bytes& U32(uint32_t v) { return LE(v, 4); }
  Bytes& U64(uint64_t v) { return LE(v, 8); }
  Bytes& Str(std::string_view s) {
    U8(static_cast<uint8_t>(s.size()));  // varint: all test strings are < 128 bytes
    s_.append(s);
    return *this;
  }
  Bytes& Raw(const void* p, size_t n) {
    s_.append(static_cast<const char*>(p), n);
    return *this;
  }
  const std::string& str() const { return s_; }

 private:
  Bytes& LE(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  std::string s_;
};

const schema::Enum* L7Enum() { return schema::FindEnum("L7Protocol"); }

// Every column kind the encoder supports, named after L7RequestLog fields where one exists.
std::vector<Column> TestColumns() {
  return {
      {"time", ColumnType::kDateTime, "DateTime", nullptr, false, ""},
      {"agent_id", ColumnType::kUInt32, "UInt32", nullptr, true, ""},
      {"is_ipv4", ColumnType::kUInt8, "UInt8", nullptr, false, ""},
      {"ip4_0", ColumnType::kIPv4, "UInt32", nullptr, false, ""},
      {"ip6_1", ColumnType::kIPv6, "FixedString(16)", nullptr, false, ""},
      {"server_port", ColumnType::kUInt16, "UInt16", nullptr, false, ""},
      {"l7_protocol", ColumnType::kEnum8, "Enum8(...)", L7Enum(), false, ""},
      {"request_type", ColumnType::kString, "String", nullptr, false, ""},
      {"response_code", ColumnType::kInt32, "Int32", nullptr, false, ""},
      {"request_length", ColumnType::kInt64, "Int64", nullptr, false, ""},
      {"request_id", ColumnType::kUInt64, "UInt64", nullptr, false, ""},
      {"pod_id_0", ColumnType::kUInt32, "UInt32", nullptr, true, ""},  // server side, no field
      {"not_a_field", ColumnType::kString, "String", nullptr, false, ""},
  };
}

schema::Table TestTable(const std::vector<Column>& columns) {
  return {"db", "t", columns, 0, 0, "toYYYYMMDD(time)", "", ""};
}

TEST(RowBinaryEncoderTest, GoldenRow) {
  ASSERT_NE(L7Enum(), nullptr);
  const auto columns = TestColumns();
  const auto table = TestTable(columns);
  agent::v1::L7RequestLog r;
  r.set_time(1700000000);
  r.set_is_ipv4(1);
  r.set_ip4_0(0xC6120001);  // 198.18.0.1, host order
  r.set_ip6_1(std::string("\x20\x01\x0d\xb8", 4));  // short: padded to 16
  r.set_server_port(8080);
  r.set_l7_protocol(common::v1::L7_PROTOCOL_HTTP1);
  r.set_request_type("GET");
  r.set_response_code(-2);
  r.set_request_length(-1);
  r.set_request_id(0x0102030405060708ull);

  RowBinaryEncoder encoder;
  std::string out;
  EncodeStats stats;
  ASSERT_TRUE(encoder.AppendRow(table, r, ServerColumns{42}, &out, &stats).ok());

  const uint8_t ip6[16] = {0x20, 0x01, 0x0d, 0xb8};
  Bytes want;
  want.U32(1700000000).U32(42).U8(1).U32(0xC6120001).Raw(ip6, 16).U16(8080).U8(20).Str("GET");
  want.U32(static_cast<uint32_t>(-2)).U64(static_cast<uint64_t>(-1)).U64(0x0102030405060708ull);
  want.U32(0).Str("");
  EXPECT_EQ(out, want.str());
  EXPECT_EQ(stats.unknown_enum_values, 0u);
  EXPECT_EQ(stats.truncated_values, 0u);
  // The IPv4 column is little endian of the host-order value: 01 00 12 C6.
  EXPECT_EQ(out.substr(9, 4), std::string("\x01\x00\x12\xC6", 4));
  EXPECT_EQ(RowBinaryEncoder::ColumnList(table).substr(0, 20), "`time`, `agent_id`, ");
}

TEST(RowBinaryEncoderTest, TagColumnsComeFromServerValues) {
  const auto columns = TestColumns();
  const auto table = TestTable(columns);
  agent::v1::L7RequestLog r;
  RowBinaryEncoder encoder;
  encoder.SetTagColumns({"host_id_1", "pod_id_0", "agent_id"});  // agent_id stays the agent's
  const uint32_t tags[] = {5, 0xA1B2C3D4, 77};
  std::string out;
  EncodeStats stats;
  ASSERT_TRUE(encoder.AppendRow(table, r, ServerColumns{42, tags}, &out, &stats).ok());
  // pod_id_0 is the 12th column: time 4, agent_id 4, is_ipv4 1, ip4_0 4, ip6_1 16, port 2,
  // enum 1, string 1, int32 4, int64 8, uint64 8 = 53 bytes before it.
  ASSERT_EQ(out.size(), 53u + 4u + 1u);
  EXPECT_EQ(out.substr(4, 4), std::string("\x2a\0\0\0", 4));
  EXPECT_EQ(out.substr(53, 4), std::string("\xD4\xC3\xB2\xA1", 4));
  // Without values the same columns are zero.
  out.clear();
  ASSERT_TRUE(encoder.AppendRow(table, r, ServerColumns{42, nullptr}, &out, &stats).ok());
  EXPECT_EQ(out.substr(53, 4), std::string(4, '\0'));
}

TEST(RowBinaryEncoderTest, UnknownEnumAndOversizedValuesAreFixedAndCounted) {
  const auto columns = TestColumns();
  const auto table = TestTable(columns);
  agent::v1::L7RequestLog r;
  r.set_l7_protocol(static_cast<common::v1::L7Protocol>(99));  // from a newer agent
  r.set_server_port(70000);                                    // does not fit UInt16
  r.set_ip6_1(std::string(20, 'x'));                           // longer than 16 bytes
  RowBinaryEncoder encoder;
  std::string out;
  EncodeStats stats;
  ASSERT_TRUE(encoder.AppendRow(table, r, {}, &out, &stats).ok());
  EXPECT_EQ(stats.unknown_enum_values, 1u);
  EXPECT_EQ(stats.truncated_values, 2u);
  // Enum byte sits after time(4) agent(4) is_ipv4(1) ip4(4) ip6(16) port(2).
  EXPECT_EQ(out[31], 0) << "unknown enum values become 'unknown' = 0";
  EXPECT_EQ(out.substr(13, 16), std::string(16, 'x'));
}

TEST(RowBinaryEncoderTest, IncompatibleFieldIsAContractError) {
  const std::vector<Column> columns = {{"request_type", ColumnType::kUInt32, "UInt32", nullptr, false, ""}};
  const auto table = TestTable(columns);
  RowBinaryEncoder encoder;
  std::string out;
  EncodeStats stats;
  Status s = encoder.AppendRow(table, agent::v1::L7RequestLog(), {}, &out, &stats);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_TRUE(out.empty());
}

TEST(RowBinaryEncoderTest, EveryCatalogTableEncodesItsRecordType) {
  // Every column of the real tables maps to a compatible field (or a server-side default).
  RowBinaryEncoder encoder;
  std::string out;
  EncodeStats stats;
  agent::v1::L7RequestLog l7;
  agent::v1::L4FlowLog l4;
  agent::v1::NetworkMetric nm;
  agent::v1::ApplicationMetric am;
  int checked = 0;
  for (const auto& t : schema::AllTables()) {
    const google::protobuf::Message* m = nullptr;
    if (t.name == "l7_request_log") m = &l7;
    if (t.name == "l4_flow_log") m = &l4;
    if (t.name.rfind("network_", 0) == 0) m = &nm;
    if (t.name.rfind("application_", 0) == 0) m = &am;
    if (m == nullptr) continue;
    EXPECT_TRUE(encoder.AppendRow(t, *m, {}, &out, &stats).ok()) << t.name;
    ++checked;
  }
  EXPECT_GE(checked, 6);
}

}  // namespace
}  // namespace sonde::server::storage::clickhouse
