// Checksums of the spool's on-disk records: CRC-32C (Castagnoli), with the SSE4.2 instruction when
// the CPU has it and a table otherwise (both give the same values).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sonde::server::ingest {

// Standard CRC-32C of `data` (initial value and final xor 0xffffffff): Crc32c("123456789") ==
// 0xe3069283. For small fields (headers).
uint32_t Crc32c(std::string_view data);

// Checksum of a record payload: CRC-32C of three interleaved lanes of 8-byte words (so the
// instruction's latency overlaps), mixed into one value. Not a standard CRC; any change of a single
// byte changes it. `hardware` false forces the table path (tests compare the two).
uint32_t PayloadChecksum(std::string_view data, bool hardware = true);

}  // namespace sonde::server::ingest
