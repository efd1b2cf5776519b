// The spool's checksums: the standard CRC-32C check value, and hardware == table on every length.
#include "server/ingest/spool_checksum.h"

#include <string>

#include <gtest/gtest.h>

namespace sonde::server::ingest {
namespace {

TEST(SpoolChecksumTest, Crc32cCheckValue) {
  EXPECT_EQ(Crc32c("123456789"), 0xe3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
}

TEST(SpoolChecksumTest, HardwareAndTableAgreeAndEveryByteCounts) {
  std::string data;
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 200; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    data.push_back(static_cast<char>(x));
  }
  for (size_t n = 0; n <= data.size(); ++n) {
    const std::string_view v(data.data(), n);
    ASSERT_EQ(PayloadChecksum(v, true), PayloadChecksum(v, false)) << "length " << n;
  }
  // Any single changed byte changes the checksum (each lane's CRC is a bijection of its bytes).
  const uint32_t base = PayloadChecksum(data);
  for (size_t i = 0; i < data.size(); ++i) {
    std::string changed = data;
    changed[i] = static_cast<char>(changed[i] ^ 0x10);
    EXPECT_NE(PayloadChecksum(changed), base) << "byte " << i;
  }
}

}  // namespace
}  // namespace sonde::server::ingest
