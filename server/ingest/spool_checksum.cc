// CRC-32C: hardware (SSE4.2 crc32 instruction) and table implementations of one function.
#include "server/ingest/spool_checksum.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace sonde::server::ingest {

namespace {

constexpr uint32_t kPoly = 0x82f63b78;  // Castagnoli, reflected

constexpr std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kTable = MakeTable();

// Update without the initial/final inversion, as the crc32 instruction does.
uint32_t SoftU8(uint32_t crc, uint8_t b) { return (crc >> 8) ^ kTable[(crc ^ b) & 0xff]; }
uint32_t SoftU64(uint32_t crc, uint64_t v) {
  for (int i = 0; i < 8; ++i) crc = SoftU8(crc, static_cast<uint8_t>(v >> (8 * i)));
  return crc;
}
uint32_t SoftU32(uint32_t crc, uint32_t v) {
  for (int i = 0; i < 4; ++i) crc = SoftU8(crc, static_cast<uint8_t>(v >> (8 * i)));
  return crc;
}

uint64_t LoadU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);  // little endian hosts only (x86-64, aarch64)
  return v;
}

uint32_t SoftBytes(uint32_t crc, const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) crc = SoftU8(crc, static_cast<uint8_t>(p[i]));
  return crc;
}

uint32_t SoftLanes(const char* p, size_t n) {
  uint32_t a = 0xffffffff, b = 0xffffffff, c = 0xffffffff;
  size_t i = 0;
  for (; i + 24 <= n; i += 24) {
    a = SoftU64(a, LoadU64(p + i));
    b = SoftU64(b, LoadU64(p + i + 8));
    c = SoftU64(c, LoadU64(p + i + 16));
  }
  a = SoftBytes(a, p + i, n - i);
  return ~SoftU32(SoftU32(a, b), c);
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t HardBytes(uint32_t crc, const char* p, size_t n) {
  size_t i = 0;
  uint64_t c64 = crc;
  for (; i + 8 <= n; i += 8) c64 = _mm_crc32_u64(c64, LoadU64(p + i));
  crc = static_cast<uint32_t>(c64);
  for (; i < n; ++i) crc = _mm_crc32_u8(crc, static_cast<uint8_t>(p[i]));
  return crc;
}

__attribute__((target("sse4.2"))) uint32_t HardLanes(const char* p, size_t n) {
  uint64_t a = 0xffffffff, b = 0xffffffff, c = 0xffffffff;
  size_t i = 0;
  for (; i + 24 <= n; i += 24) {
    a = _mm_crc32_u64(a, LoadU64(p + i));
    b = _mm_crc32_u64(b, LoadU64(p + i + 8));
    c = _mm_crc32_u64(c, LoadU64(p + i + 16));
  }
  uint32_t a32 = HardBytes(static_cast<uint32_t>(a), p + i, n - i);
  return ~_mm_crc32_u32(_mm_crc32_u32(a32, static_cast<uint32_t>(b)), static_cast<uint32_t>(c));
}

bool HaveSse42() {
  static const bool have = __builtin_cpu_supports("sse4.2");  // immutable once computed
  return have;
}
#endif

}  // namespace

uint32_t Crc32c(std::string_view data) {
#if defined(__x86_64__)
  if (HaveSse42()) return ~HardBytes(0xffffffff, data.data(), data.size());
#endif
  return ~SoftBytes(0xffffffff, data.data(), data.size());
}

uint32_t PayloadChecksum(std::string_view data, bool hardware) {
#if defined(__x86_64__)
  if (hardware && HaveSse42()) return HardLanes(data.data(), data.size());
#else
  (void)hardware;
#endif
  return SoftLanes(data.data(), data.size());
}

}  // namespace sonde::server::ingest
