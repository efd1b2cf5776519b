// Checks the generated catalog and that the wire contracts agree with it field for field.
#include "schema/tables.h"

#include <gtest/gtest.h>

#include "sonde/agent/v1/records.pb.h"
#include "sonde/common/v1/common.pb.h"

namespace sonde::schema {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

// Every proto field names a column (except granularity_s, which picks the table), and every
// column not filled by the server has a field.
void ExpectMessageMatchesTable(const Descriptor* d, const Table& t) {
  SCOPED_TRACE(std::string(t.name));
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->name() == "granularity_s") continue;
    const Column* c = FindColumn(t, f->name());
    ASSERT_NE(c, nullptr) << "proto field without column: " << f->name();
    EXPECT_FALSE(c->server_side) << f->name();
    if (c->type == ColumnType::kEnum8) {
      ASSERT_EQ(f->type(), FieldDescriptor::TYPE_ENUM) << f->name();
      // Same numbers and the same count of values.
      const auto* ed = f->enum_type();
      EXPECT_EQ(static_cast<size_t>(ed->value_count()), c->enumeration->values.size()) << f->name();
      for (const auto& v : c->enumeration->values) {
        EXPECT_NE(ed->FindValueByNumber(v.value), nullptr) << f->name() << " " << v.name;
      }
    }
  }
  for (const auto& c : t.columns) {
    if (c.server_side) continue;
    EXPECT_NE(d->FindFieldByName(std::string(c.name)), nullptr) << "column without field: " << c.name;
  }
}

TEST(SchemaTest, TablesExistWithRetention) {
  const Table* l7 = FindTable("flow_log", "l7_request_log");
  ASSERT_NE(l7, nullptr);
  EXPECT_EQ(l7->retention_days, 3u);
  const Table* n1s = FindTable("flow_metrics", "network_1s");
  ASSERT_NE(n1s, nullptr);
  EXPECT_EQ(n1s->granularity_s, 1u);
  EXPECT_EQ(n1s->retention_days, 1u);
  const Table* n1m = FindTable("flow_metrics", "network_1m");
  ASSERT_NE(n1m, nullptr);
  EXPECT_EQ(n1m->granularity_s, 60u);
  EXPECT_EQ(n1m->retention_days, 7u);
  EXPECT_NE(std::string(l7->create_sql).find("`l7_protocol` Enum8('unknown' = 0, 'HTTP1' = 20"),
            std::string::npos);
  EXPECT_EQ(EnumName(*FindEnum("ResponseStatus"), 3), "timeout");
}

TEST(SchemaTest, ProtoMatchesSchema) {
  ExpectMessageMatchesTable(agent::v1::L7RequestLog::descriptor(), *FindTable("flow_log", "l7_request_log"));
  ExpectMessageMatchesTable(agent::v1::L4FlowLog::descriptor(), *FindTable("flow_log", "l4_flow_log"));
  ExpectMessageMatchesTable(agent::v1::NetworkMetric::descriptor(), *FindTable("flow_metrics", "network_1s"));
  ExpectMessageMatchesTable(agent::v1::ApplicationMetric::descriptor(),
                            *FindTable("flow_metrics", "application_1m"));
}

}  // namespace
}  // namespace sonde::schema
