// Tag set values: the text form rows' tag sets are stored under, and its strict inverse.
#include "server/enrich/tag_dimensions.h"

#include <gtest/gtest.h>

namespace sonde::server::enrich {
namespace {

TEST(TagSetValueTest, RoundTripsAndUntaggedIsEmpty) {
  std::array<uint32_t, kTagDimensionCount> ids{};
  EXPECT_EQ(TagSetValue(ids), "");
  EXPECT_EQ(ParseTagSetValue("").value(), ids);
  ids[static_cast<size_t>(TagDimension::kPod)] = 4294967295u;
  ids[static_cast<size_t>(TagDimension::kRegion)] = 7;
  const std::string v = TagSetValue(ids);
  EXPECT_EQ(v, "7,0,0,0,0,0,0,0,4294967295,0,0,0");
  EXPECT_EQ(ParseTagSetValue(v).value(), ids);
  // Query time reads position TagSetPosition(d) of splitByChar(',', value).
  EXPECT_EQ(TagSetPosition(TagDimension::kRegion), 1u);
  EXPECT_EQ(TagSetPosition(TagDimension::kProcessName), kTagDimensionCount);
}

TEST(TagSetValueTest, ShorterValuesReadZeroAndJunkIsRejected) {
  auto short_value = ParseTagSetValue("1,2");
  ASSERT_TRUE(short_value.has_value());
  EXPECT_EQ((*short_value)[1], 2u);
  EXPECT_EQ((*short_value)[2], 0u);
  for (const char* bad : {",", "1,,2", "1,2,", "x", "1,-2", "4294967296", "1,2,3,4,5,6,7,8,9,10,11,12,13"}) {
    EXPECT_FALSE(ParseTagSetValue(bad).has_value()) << bad;
  }
}

TEST(TagDimensionsTest, TagSetIsADictionaryButNotAUserTag) {
  EXPECT_EQ(AllTagDimensions().size(), kTagDimensionCount);
  EXPECT_EQ(AllTagDictionaries().size(), kTagDictionaryCount);
  EXPECT_EQ(AllTagDictionaries().back().dimension, TagDimension::kTagSet);
  EXPECT_FALSE(FindTagDimension("tag_set").has_value());
  EXPECT_EQ(IdColumnName(TagDimension::kTagSet, 1), "tag_set_id_1");
}

}  // namespace
}  // namespace sonde::server::enrich
