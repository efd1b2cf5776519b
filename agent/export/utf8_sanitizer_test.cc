// UTF-8 checks and repair of records before they go to the server.
#include "agent/export/utf8_sanitizer.h"

#include <gtest/gtest.h>

#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::exporting {
namespace {

TEST(Utf8SanitizerTest, AcceptsWellFormedAndRejectsIllFormed) {
  for (const char* ok : {"", "plain /path?q=1", "caf\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF"}) {
    EXPECT_TRUE(IsValidUtf8(ok)) << ok;
  }
  for (const char* bad : {"caf\xE9", "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80",
                          "\xE2\x82", "\x80", "\xFF"}) {
    EXPECT_FALSE(IsValidUtf8(bad)) << bad;
  }
}

TEST(Utf8SanitizerTest, ReplacesEachBadByteAndKeepsTheRest) {
  std::string s = "/caf\xE9/\xC3\xA9/\xE2\x82";
  EXPECT_TRUE(MakeValidUtf8(&s));
  EXPECT_EQ(s, "/caf\xEF\xBF\xBD/\xC3\xA9/\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(IsValidUtf8(s));
  std::string good = "fine \xC3\xA9";
  EXPECT_FALSE(MakeValidUtf8(&good));
  EXPECT_EQ(good, "fine \xC3\xA9");
}

TEST(Utf8SanitizerTest, RecordsSerializeToWhatProtobufParses) {
  v1::RecordBatch batch;
  auto* r = batch.add_l7_request_logs();
  r->set_request_resource("GET-key-\xFF\xFE");  // a binary Redis key
  r->set_request_domain("ok.example");
  auto* p = batch.add_processes();
  p->set_name("n\xE9");
  v1::RecordBatch parsed;
  ASSERT_FALSE(parsed.ParseFromString(batch.SerializeAsString()));  // what the server refused
  EXPECT_EQ(SanitizeStringFields(&batch), 2);
  ASSERT_TRUE(parsed.ParseFromString(batch.SerializeAsString()));
  EXPECT_EQ(parsed.l7_request_logs(0).request_resource(), "GET-key-\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(parsed.l7_request_logs(0).request_domain(), "ok.example");
  EXPECT_EQ(SanitizeStringFields(&batch), 0);
}

}  // namespace
}  // namespace sonde::agent::exporting
