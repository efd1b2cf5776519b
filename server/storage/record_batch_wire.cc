// RecordBatch wire scanning: splitting into records, protobuf-equivalent validity checks.
#include "server/storage/record_batch_wire.h"

#include <algorithm>
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

// How CheckRecord treats a field, by its key (field number << 3 | wire type) for keys below
// kKeyTableSize (field numbers below 128, read from 1 or 2 bytes).
enum KeyClass : uint8_t { kKeyOther = 0, kKeyVarint = 1, kKeyBytes = 2, kKeyString = 3 };
constexpr size_t kKeyTableSize = 1024;

// Per RecordBatch field 1..5: the field numbers of proto3 `string` fields (validated as UTF-8)
// and the class of every short key.
struct StringFields {
  std::array<std::bitset<128>, 5> of_kind;
  std::array<std::array<uint8_t, kKeyTableSize>, 5> key_class;
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
    for (uint32_t key = 0; key < kKeyTableSize; ++key) {
      const uint32_t number = key >> 3, wire_type = key & 7;
      uint8_t c = kKeyOther;  // field 0, fixed widths, groups, wire types 6/7: CheckField decides
      if (number != 0 && wire_type == WireReader::kVarint) c = kKeyVarint;
      if (number != 0 && wire_type == WireReader::kLengthDelimited) {
        c = s.of_kind[k].test(number) ? kKeyString : kKeyBytes;
      }
      s.key_class[k][key] = c;
    }
  }
  return s;
}

const StringFields& StringFieldsOf() {
  static const StringFields fields = MakeStringFields();
  return fields;
}

// One field of a record of a kind whose string fields are `strings`: readable, and valid UTF-8
// when it is one of them.
bool CheckField(WireReader& r, const std::bitset<128>& strings) {
  uint32_t number, wire_type;
  if (!r.ReadTag(&number, &wire_type)) return false;
  switch (wire_type) {
    case WireReader::kVarint:
      return r.SkipVarint();
    case WireReader::kLengthDelimited: {
      std::string_view s;
      if (!r.ReadLengthDelimited(&s)) return false;
      return !(number < 128 && strings.test(number) && !ValidUtf8(s));
    }
    default:
      return r.SkipValue(number, wire_type);
  }
}

// One record (kind k) is what protobuf would accept: every field readable, strings valid UTF-8.
// This runs on every field of every record received, so the common fields (1-2 byte keys,
// varints, strings with a 1-byte length) are read straight from a pointer kept in a register,
// classified by one table load, while at least 16 bytes remain (no bounds check per byte);
// everything else, and the last bytes, go through CheckField (the same answers).
bool CheckRecord(std::string_view record, size_t kind) {
  const StringFields& fields = StringFieldsOf();
  const std::bitset<128>& strings = fields.of_kind[kind];
  const uint8_t* const key_class = fields.key_class[kind].data();
  const auto* p = reinterpret_cast<const uint8_t*>(record.data());
  const auto* const end = p + record.size();
  auto rest = [&end](const uint8_t* at) {
    return std::string_view(reinterpret_cast<const char*>(at), static_cast<size_t>(end - at));
  };
  while (end - p >= 16) {
    const uint8_t* const field = p;
    uint32_t key = p[0];
    uint8_t c = kKeyOther;
    if (key < 0x80) {
      p += 1;
      c = key_class[key];
    } else if (p[1] < 0x80) {
      key = (key & 0x7fu) | (uint32_t{p[1]} << 7);
      p += 2;
      if (key < kKeyTableSize) c = key_class[key];
    }
    switch (c) {
      case kKeyVarint: {  // WireReader::SkipVarint with 10 bytes known to be there
        uint64_t w;
        std::memcpy(&w, p, 8);
        const uint64_t last = ~w & 0x8080808080808080ull;
        if (last != 0) {
          p += (std::countr_zero(last) >> 3) + 1;
        } else if (p[8] < 0x80) {
          p += 9;
        } else if (p[9] < 0x80) {
          p += 10;
        } else {
          return false;
        }
        continue;
      }
      case kKeyBytes:
      case kKeyString:
        if (p[0] < 0x80) {
          const size_t size = p[0];
          ++p;
          if (size > static_cast<size_t>(end - p)) return false;
          if (c == kKeyString && !ValidUtf8(std::string_view(reinterpret_cast<const char*>(p), size))) return false;
          p += size;
          continue;
        }
        break;  // a longer length: CheckField
      default:
        break;
    }
    WireReader r(rest(field));
    if (!CheckField(r, strings)) return false;
    p = end - r.remaining();
  }
  WireReader r(rest(p));
  while (!r.done()) {
    if (!CheckField(r, strings)) return false;
  }
  return true;
}

// How far ahead of the record being split SplitRecordBatch prefetches. The drainer splits
// batches that were read from the spool long before (cold in cache): without it the walk waits
// for memory once per record, since where the next record starts depends on this one's length.
constexpr size_t kPrefetchAheadBytes = 4096;
constexpr size_t kCacheLineBytes = 64;

bool Split(std::string_view wire, RecordBatchWire* out, bool check) {
  out->Clear();
  // Only for a plain split: a check reads every byte anyway (and runs on just-received bytes).
  const char* prefetched = wire.data();
  const char* const wire_end = wire.data() + wire.size();
  WireReader r(wire);
  while (!r.done()) {
    uint32_t number, wire_type;
    if (!r.ReadTag(&number, &wire_type)) return false;
    if (number >= 1 && number <= 5 && wire_type == WireReader::kLengthDelimited) {
      std::string_view record;
      if (!r.ReadLengthDelimited(&record)) return false;
      if (!check) {
        const char* const want = record.data() + std::min<size_t>(record.size() + kPrefetchAheadBytes,
                                                                  static_cast<size_t>(wire_end - record.data()));
        for (; prefetched < want; prefetched += kCacheLineBytes) __builtin_prefetch(prefetched);
      }
      if (check && !CheckRecord(record, number - 1)) return false;
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

const uint8_t* WireReader::ReadVarintSlow(const uint8_t* p, const uint8_t* end, uint64_t* v) {
  uint64_t result = 0;
  for (int i = 0; i < 10; ++i) {
    if (p == end) return nullptr;
    const uint8_t b = *p++;
    result |= uint64_t{b & 0x7fu} << (7 * i);
    if ((b & 0x80) == 0) {
      *v = result;
      return p;
    }
  }
  return nullptr;  // an 11th byte would be needed
}

const uint8_t* WireReader::ReadTagSlow(const uint8_t* p, const uint8_t* end, uint32_t* number,
                                       uint32_t* wire_type) {
  uint32_t tag = 0;
  for (int i = 0; i < 5; ++i) {
    if (p == end) return nullptr;
    const uint8_t b = *p++;
    // Bits past 32 of a 5-byte key are dropped, as protobuf's parser drops them.
    tag |= uint32_t{b & 0x7fu} << (7 * i);
    if ((b & 0x80) == 0) {
      *number = tag >> 3;
      *wire_type = tag & 7;
      return *number != 0 && *wire_type <= kFixed32 ? p : nullptr;
    }
  }
  return nullptr;
}

const uint8_t* WireReader::ReadSizeSlow(const uint8_t* p, const uint8_t* end, uint32_t* size) {
  uint32_t v = 0;
  for (int i = 0;; ++i) {
    if (i == 5 || p == end) return nullptr;
    const uint8_t b = *p++;
    if (i == 4 && b > 0x07) return nullptr;  // sizes are at most 2^31 - 1
    v |= uint32_t{b & 0x7fu} << (7 * i);
    if ((b & 0x80) == 0) break;
  }
  *size = v;
  return p;
}

const uint8_t* WireReader::SkipGroup(const uint8_t* p, const uint8_t* end, uint32_t number, uint32_t wire_type,
                                     int depth) {
  if (wire_type != kStartGroup || depth >= kMaxGroupDepth) return nullptr;  // a stray end-group key
  WireReader r(std::string_view(reinterpret_cast<const char*>(p), static_cast<size_t>(end - p)));
  for (;;) {
    uint32_t n, wt;
    if (!r.ReadTag(&n, &wt)) return nullptr;
    if (wt == kEndGroup) return n == number ? r.p_ : nullptr;
    if (wt == kStartGroup) {
      const uint8_t* q = SkipGroup(r.p_, r.end_, n, wt, depth + 1);
      if (q == nullptr) return nullptr;
      r.p_ = q;
    } else if (!r.SkipValue(n, wt)) {
      return nullptr;
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
