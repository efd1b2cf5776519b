#include "cli/result_format.h"

#include <gtest/gtest.h>

namespace sonde::cli {
namespace {

nlohmann::json Answer() {
  return nlohmann::json::parse(R"({"columns":[{"name":"request_type","type":"String"},
    {"name":"n","type":"UInt64"}],"rows":[["GET",3],["POST, \"x\"",12]]})");
}

TEST(ResultFormatTest, Table) {
  EXPECT_EQ(FormatResult(Answer(), OutputFormat::kTable),
            "request_type | n\n"
            "-------------+---\n"
            "GET          | 3\n"
            "POST, \"x\"    | 12\n"
            "(2 rows)\n");
}

TEST(ResultFormatTest, CsvQuotes) {
  EXPECT_EQ(FormatResult(Answer(), OutputFormat::kCsv),
            "request_type,n\nGET,3\n\"POST, \"\"x\"\"\",12\n");
}

TEST(ResultFormatTest, FormatNames) {
  OutputFormat f;
  EXPECT_TRUE(ParseOutputFormat("csv", &f));
  EXPECT_EQ(f, OutputFormat::kCsv);
  EXPECT_FALSE(ParseOutputFormat("xml", &f));
}

}  // namespace
}  // namespace sonde::cli
