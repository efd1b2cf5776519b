#include "common/net/ip_address.h"

#include <gtest/gtest.h>

#include "common/net/five_tuple.h"

namespace sonde::net {
namespace {

TEST(IpAddressTest, ParsesAndFormats) {
  auto v4 = IpAddress::Parse("198.18.0.1");
  ASSERT_TRUE(v4.has_value());
  EXPECT_TRUE(v4->is_v4());
  EXPECT_EQ(v4->v4(), 0xC6120001u);
  EXPECT_EQ(v4->ToString(), "198.18.0.1");
  auto v6 = IpAddress::Parse("2001:db8::1");
  ASSERT_TRUE(v6.has_value());
  EXPECT_FALSE(v6->is_v4());
  EXPECT_EQ(v6->ToString(), "2001:db8::1");
  EXPECT_FALSE(IpAddress::Parse("nope").has_value());
}

// V4 stores ::ffff:a.b.c.d byte for byte; is_v4 needs all twelve prefix bytes, no more, no less.
TEST(IpAddressTest, V4MappedLayoutAndPrefixCheck) {
  const IpAddress a = IpAddress::V4(0xC0A80102);
  const std::array<uint8_t, 16> want = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 2};
  EXPECT_EQ(a.bytes(), want);
  EXPECT_TRUE(a.is_v4());
  EXPECT_EQ(a.v4(), 0xC0A80102u);
  EXPECT_EQ(a, *IpAddress::Parse("::ffff:192.168.1.2"));
  EXPECT_TRUE(IpAddress::Parse("::ffff:0.0.0.0")->is_v4());
  EXPECT_FALSE(IpAddress::Parse("::1")->is_v4());
  EXPECT_FALSE(IpAddress::Parse("::fffe:192.168.1.2")->is_v4());
  EXPECT_FALSE(IpAddress::Parse("::1:ffff:192.168.1.2")->is_v4());   // a byte below the prefix
  EXPECT_FALSE(IpAddress::Parse("100::ffff:192.168.1.2")->is_v4());  // the first byte
  EXPECT_FALSE(IpAddress::Parse("::ff:ffff:192.168.1.2")->is_v4());
}

TEST(FiveTupleTest, CanonicalIsDirectionIndependent) {
  FiveTuple a{IpAddress::V4(0x0A000002), IpAddress::V4(0x0A000001), 40000, 80, IpProtocol::kTcp};
  EXPECT_EQ(a.Canonical(), a.Reversed().Canonical());
  EXPECT_EQ(FiveTupleHash()(a.Canonical()), FiveTupleHash()(a.Reversed().Canonical()));
  EXPECT_NE(FiveTupleHash()(a), FiveTupleHash()(a.Reversed()));
}

}  // namespace
}  // namespace sonde::net
