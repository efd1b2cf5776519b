// Golden tests: every testdata/NAME.sql (first line "-- db: NAME") is translated and compared
// with the reviewed testdata/NAME.expected (the ClickHouse SQL, or "ERROR: <message>").
// Nothing is regenerated here: a missing or different file fails and prints the actual output.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "server/query/translator.h"

namespace sonde::server::query {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string TrimTrailingNewlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

fs::path TestdataDir() {
  const char* src = std::getenv("SONDE_SOURCE_DIR");
  return fs::path(src ? src : ".") / "server/query/testdata";
}

TEST(QueryGoldenTest, AllCases) {
  const Catalog catalog = Catalog::FromSchema();
  std::vector<fs::path> inputs;
  for (const auto& e : fs::directory_iterator(TestdataDir())) {
    if (e.path().extension() == ".sql") inputs.push_back(e.path());
  }
  std::sort(inputs.begin(), inputs.end());
  ASSERT_GE(inputs.size(), 20u) << "golden cases missing from " << TestdataDir();
  for (const auto& in : inputs) {
    SCOPED_TRACE(in.filename().string());
    const std::string text = ReadFile(in);
    const std::string kHeader = "-- db: ";
    ASSERT_EQ(text.rfind(kHeader, 0), 0u) << "first line must be '-- db: NAME'";
    const std::string db = text.substr(kHeader.size(), text.find('\n') - kHeader.size());
    auto t = Translate(db, text, catalog);
    const std::string actual =
        t.ok() ? t->sql : "ERROR: " + t.status().message();
    // Optional review aid: SONDE_GOLDEN_DUMP=DIR writes actual outputs there (never into
    // testdata; expected files are reviewed and written by hand).
    if (const char* dump = std::getenv("SONDE_GOLDEN_DUMP")) {
      std::ofstream(fs::path(dump) / in.filename().replace_extension(".actual")) << actual << "\n";
    }
    fs::path expected_path = in;
    expected_path.replace_extension(".expected");
    if (!fs::exists(expected_path)) {
      ADD_FAILURE() << "no " << expected_path << "; actual:\n" << actual;
      continue;
    }
    EXPECT_EQ(TrimTrailingNewlines(ReadFile(expected_path)), TrimTrailingNewlines(actual));
  }
}

}  // namespace
}  // namespace sonde::server::query
