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

// How the check treats a field, by its key (field number << 3 | wire type) for keys below
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

// What FastField did with the field at a position.
enum class Step { kRead, kSlow, kBad };

// One field read straight from a pointer, while at least 16 bytes remain (no bounds check per
// byte): 1-2 byte keys classified by one table load, varints, strings and bytes with a 1-byte
// length. kSlow leaves `p` at the field for CheckField (other wire types, longer keys or
// lengths); kBad: not what protobuf accepts.
inline Step FastField(const uint8_t*& p, const uint8_t* end, const uint8_t* key_class) {
  uint32_t key = p[0];
  uint8_t c = kKeyOther;
  size_t key_bytes = 0;
  if (key < 0x80) {
    key_bytes = 1;
    c = key_class[key];
  } else if (p[1] < 0x80) {
    key = (key & 0x7fu) | (uint32_t{p[1]} << 7);
    key_bytes = 2;
    if (key < kKeyTableSize) c = key_class[key];
  }
  const uint8_t* v = p + key_bytes;
  switch (c) {
    case kKeyVarint: {  // WireReader::SkipVarint with 10 bytes known to be there
      uint64_t w;
      std::memcpy(&w, v, 8);
      const uint64_t last = ~w & 0x8080808080808080ull;
      if (last != 0) {
        p = v + (std::countr_zero(last) >> 3) + 1;
      } else if (v[8] < 0x80) {
        p = v + 9;
      } else if (v[9] < 0x80) {
        p = v + 10;
      } else {
        return Step::kBad;
      }
      return Step::kRead;
    }
    case kKeyBytes:
    case kKeyString: {
      if (v[0] >= 0x80) return Step::kSlow;
      const size_t size = v[0];
      ++v;
      if (size > static_cast<size_t>(end - v)) return Step::kBad;
      if (c == kKeyString && !ValidUtf8(std::string_view(reinterpret_cast<const char*>(v), size))) {
        return Step::kBad;
      }
      p = v + size;
      return Step::kRead;
    }
    default:
      return Step::kSlow;
  }
}

// The field at `p` through CheckField; the position after it, nullptr when malformed.
const uint8_t* SlowField(const uint8_t* p, const uint8_t* end, const std::bitset<128>& strings) {
  WireReader r(std::string_view(reinterpret_cast<const char*>(p), static_cast<size_t>(end - p)));
  if (!CheckField(r, strings)) return nullptr;
  return end - r.remaining();
}

// The rest of a record of kind `kind` from `p` is what protobuf would accept: every field
// readable, strings valid UTF-8. Fast fields while 16 bytes remain, then CheckField.
bool CheckRecordFrom(const uint8_t* p, const uint8_t* end, size_t kind) {
  const StringFields& fields = StringFieldsOf();
  const std::bitset<128>& strings = fields.of_kind[kind];
  const uint8_t* const key_class = fields.key_class[kind].data();
  while (end - p >= 16) {
    switch (FastField(p, end, key_class)) {
      case Step::kRead:
        continue;
      case Step::kBad:
        return false;
      case Step::kSlow:
        p = SlowField(p, end, strings);
        if (p == nullptr) return false;
        continue;
    }
  }
  while (p != end) {
    p = SlowField(p, end, strings);
    if (p == nullptr) return false;
  }
  return true;
}

const uint8_t* Begin(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }
const uint8_t* End(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()) + s.size(); }

// Two records checked at once, with the same answers as one at a time. Reading a record is a
// chain (where a field starts depends on the previous one's length), so the check of a lone
// record waits on that chain; two independent ones in the same loop let the CPU overlap them.
bool CheckRecordPair(std::string_view a, size_t kind_a, std::string_view b, size_t kind_b) {
  const StringFields& fields = StringFieldsOf();
  const uint8_t* const classes_a = fields.key_class[kind_a].data();
  const uint8_t* const classes_b = fields.key_class[kind_b].data();
  const uint8_t *pa = Begin(a), *pb = Begin(b);
  const uint8_t *const ea = End(a), *const eb = End(b);
  while (ea - pa >= 16 && eb - pb >= 16) {
    const Step sa = FastField(pa, ea, classes_a);
    const Step sb = FastField(pb, eb, classes_b);
    if (sa == Step::kRead && sb == Step::kRead) continue;
    if (sa == Step::kBad || sb == Step::kBad) return false;
    if (sa == Step::kSlow && (pa = SlowField(pa, ea, fields.of_kind[kind_a])) == nullptr) return false;
    if (sb == Step::kSlow && (pb = SlowField(pb, eb, fields.of_kind[kind_b])) == nullptr) return false;
  }
  return CheckRecordFrom(pa, ea, kind_a) && CheckRecordFrom(pb, eb, kind_b);
}

// Every record of a split batch (kinds 0-3 in `records`, 4 = processes), two at a time.
bool CheckRecords(const RecordBatchWire& split) {
  for (size_t kind = 0; kind < 5; ++kind) {
    const std::vector<std::string_view>& list = kind < 4 ? split.records[kind] : split.processes;
    size_t i = 0;
    for (; i + 2 <= list.size(); i += 2) {
      if (!CheckRecordPair(list[i], kind, list[i + 1], kind)) return false;
    }
    if (i < list.size() && !CheckRecordFrom(Begin(list[i]), End(list[i]), kind)) return false;
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
  // A check reads the records after the split (two at a time, CheckRecords), so it gains from
  // the prefetch as well when the bytes are cold.
  const char* prefetched = wire.data();
  const char* const wire_end = wire.data() + wire.size();
  WireReader r(wire);
  while (!r.done()) {
    uint32_t number, wire_type;
    if (!r.ReadTag(&number, &wire_type)) return false;
    if (number >= 1 && number <= 5 && wire_type == WireReader::kLengthDelimited) {
      std::string_view record;
      if (!r.ReadLengthDelimited(&record)) return false;
      const char* const want = record.data() + std::min<size_t>(record.size() + kPrefetchAheadBytes,
                                                                static_cast<size_t>(wire_end - record.data()));
      for (; prefetched < want; prefetched += kCacheLineBytes) __builtin_prefetch(prefetched);
      (number == 5 ? out->processes : out->records[number - 1]).push_back(record);
    } else if (!r.SkipValue(number, wire_type)) {
      return false;
    }
  }
  return !check || CheckRecords(*out);
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
