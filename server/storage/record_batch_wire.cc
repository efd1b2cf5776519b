// RecordBatch wire scanning: splitting into records, protobuf-equivalent validity checks.
#include "server/storage/record_batch_wire.h"

#include <bitset>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <google/protobuf/descriptor.h>

#include "sonde/agent/v1/records.pb.h"

namespace sonde::server::storage {

namespace {

constexpr int kMaxGroupDepth = 100;  // protobuf's default recursion limit

// Field numbers of proto3 `string` fields (validated as UTF-8) per RecordBatch field 1..5.
struct StringFields {
  std::array<std::bitset<128>, 5> of_kind;
};

StringFields MakeStringFields() {
  StringFields s;
  const google::protobuf::Descriptor* kinds[5] = {
      agent::v1::L7RequestLog::descriptor(), agent::v1::L4FlowLog::descriptor(),
      agent::v1::NetworkMetric::descriptor(), agent::v1::ApplicationMetric::descriptor(),
      agent::v1::ProcessInfo::descriptor()};
  for (size_t k = 0; k < 5; ++k) {
    for (int i = 0; i < kinds[k]->field_count(); ++i) {
      const auto* f = kinds[k]->field(i);
      // Records hold only scalars, strings and bytes; a message field would need a nested check.
      if (f->type() == google::protobuf::FieldDescriptor::TYPE_STRING && f->number() < 128) {
        s.of_kind[k].set(static_cast<size_t>(f->number()));
      }
    }
  }
  return s;
}

const StringFields& StringFieldsOf() {
  static const StringFields fields = MakeStringFields();
  return fields;
}

// One record (kind k) is what protobuf would accept: every field readable, strings valid UTF-8.
// The common wire types are handled inline (this runs on every field of every record received).
bool CheckRecord(std::string_view record, const std::bitset<128>& strings) {
  WireReader r(record);
  while (!r.done()) {
    uint32_t number, wire_type;
    if (!r.ReadTag(&number, &wire_type)) return false;
    switch (wire_type) {
      case WireReader::kVarint:
        if (!r.SkipVarint()) return false;
        continue;
      case WireReader::kLengthDelimited: {
        std::string_view s;
        if (!r.ReadLengthDelimited(&s)) return false;
        if (number < 128 && strings.test(number) && !ValidUtf8(s)) return false;
        continue;
      }
      default:
        if (!r.SkipValue(number, wire_type)) return false;
        continue;
    }
  }
  return true;
}

bool Split(std::string_view wire, RecordBatchWire* out, bool check) {
  out->Clear();
  const StringFields* strings = check ? &StringFieldsOf() : nullptr;
  WireReader r(wire);
  while (!r.done()) {
    uint32_t number, wire_type;
    if (!r.ReadTag(&number, &wire_type)) return false;
    if (number >= 1 && number <= 5 && wire_type == WireReader::kLengthDelimited) {
      std::string_view record;
      if (!r.ReadLengthDelimited(&record)) return false;
      if (strings != nullptr && !CheckRecord(record, strings->of_kind[number - 1])) return false;
      (number == 5 ? out->processes : out->records[number - 1]).push_back(record);
    } else if (!r.SkipValue(number, wire_type)) {
      return false;
    }
  }
  return true;
}

}  // namespace

void RecordBatchWire::Clear() {
  for (auto& v : records) v.clear();
  processes.clear();
}

size_t RecordBatchWire::RecordCount() const {
  return records[0].size() + records[1].size() + records[2].size() + records[3].size();
}

bool WireReader::ReadVarintSlow(uint64_t* v) {
  uint64_t result = 0;
  for (int i = 0; i < 10; ++i) {
    if (p_ == end_) return false;
    const uint8_t b = *p_++;
    result |= uint64_t{b & 0x7fu} << (7 * i);
    if ((b & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;  // an 11th byte would be needed
}

bool WireReader::ReadTagSlow(uint32_t* number, uint32_t* wire_type) {
  uint32_t tag = 0;
  for (int i = 0; i < 5; ++i) {
    if (p_ == end_) return false;
    const uint8_t b = *p_++;
    // Bits past 32 of a 5-byte key are dropped, as protobuf's parser drops them.
    tag |= uint32_t{b & 0x7fu} << (7 * i);
    if ((b & 0x80) == 0) {
      *number = tag >> 3;
      *wire_type = tag & 7;
      return *number != 0 && *wire_type <= kFixed32;
    }
  }
  return false;
}

bool WireReader::ReadSizeSlow(uint32_t* size) {
  uint32_t v = 0;
  for (int i = 0;; ++i) {
    if (i == 5 || p_ == end_) return false;
    const uint8_t b = *p_++;
    if (i == 4 && b > 0x07) return false;  // sizes are at most 2^31 - 1
    v |= uint32_t{b & 0x7fu} << (7 * i);
    if ((b & 0x80) == 0) break;
  }
  *size = v;
  return true;
}

bool WireReader::SkipGroup(uint32_t number, uint32_t wire_type, int depth) {
  if (wire_type != kStartGroup || depth >= kMaxGroupDepth) return false;  // a stray end-group key
  for (;;) {
    uint32_t n, wt;
    if (!ReadTag(&n, &wt)) return false;
    if (wt == kEndGroup) return n == number;
    if (wt == kStartGroup) {
      if (!SkipGroup(n, wt, depth + 1)) return false;
    } else if (!SkipValue(n, wt)) {
      return false;
    }
  }
}

bool SplitRecordBatch(std::string_view wire, RecordBatchWire* out) { return Split(wire, out, false); }

bool CheckRecordBatch(std::string_view wire, RecordBatchWire* out) { return Split(wire, out, true); }

namespace {

// True when every byte is below 0x80, with a few (overlapping) wide loads and no byte loop:
// agents' strings are mostly short ASCII, and a byte-at-a-time tail cost more than the rest.
bool AllAscii(const uint8_t* p, size_t n) {
  auto load64 = [](const uint8_t* q) {
    uint64_t w;
    std::memcpy(&w, q, 8);
    return w;
  };
  if (n >= 16) {
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) acc |= load64(p + i) | load64(p + i + 8);
    acc |= load64(p + n - 16) | load64(p + n - 8);
    return (acc & 0x8080808080808080ull) == 0;
  }
  if (n >= 8) return ((load64(p) | load64(p + n - 8)) & 0x8080808080808080ull) == 0;
  if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    return ((a | b) & 0x80808080u) == 0;
  }
  uint8_t acc = 0;
  for (size_t i = 0; i < n; ++i) acc |= p[i];
  return acc < 0x80;
}

}  // namespace

bool ValidUtf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const auto* end = p + bytes.size();
  if (AllAscii(p, bytes.size())) return true;
#if defined(__SSE2__)
  // Leading ASCII 16 bytes at a time (agents send mostly ASCII); the loop below does the rest.
  while (end - p >= 16 && _mm_movemask_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))) == 0) p += 16;
#endif
  while (p < end) {
    // ASCII runs 8 bytes at a time (most of what agents send).
    if (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        p += 8;
        continue;
      }
    }
    const uint8_t b = *p;
    if (b < 0x80) {
      ++p;
      continue;
    }
    size_t n;
    uint32_t cp;
    if (b >= 0xc2 && b <= 0xdf) {
      n = 2;
      cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
      n = 3;
      cp = b & 0x0f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 4;
      cp = b & 0x07;
    } else {
      return false;
    }
    if (static_cast<size_t>(end - p) < n) return false;
    for (size_t i = 1; i < n; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    // Overlong forms, surrogates and code points past U+10FFFF.
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
      return false;
    }
    p += n;
  }
  return true;
}

uint64_t ReadVarintField(std::string_view message, uint32_t number, uint64_t fallback) {
  WireReader r(message);
  uint64_t value = fallback;
  while (!r.done()) {
    uint32_t n, wire_type;
    if (!r.ReadTag(&n, &wire_type)) return fallback;
    if (n == number && wire_type == WireReader::kVarint) {
      if (!r.ReadVarint(&value)) return fallback;
    } else if (!r.SkipValue(n, wire_type)) {
      return fallback;
    }
  }
  return value;
}

}  // namespace sonde::server::storage
