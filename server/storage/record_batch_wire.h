// A serialized sonde.agent.v1.RecordBatch read without parsing its records: the server keeps the
// agent's wire bytes from receipt to the RowBinary encoder and reads only the few fields it needs.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace sonde::server::storage {

// Indexes into RecordBatchWire::records (= RecordBatch field number - 1).
inline constexpr size_t kL7RequestLogs = 0;
inline constexpr size_t kL4FlowLogs = 1;
inline constexpr size_t kNetworkMetrics = 2;
inline constexpr size_t kApplicationMetrics = 3;

// Views of the records of one serialized RecordBatch, per kind, in wire order (which is the order
// of the parsed repeated fields). Views point into the bytes given to SplitRecordBatch.
struct RecordBatchWire {
  std::array<std::vector<std::string_view>, 4> records;  // l7, l4, network, application metrics
  std::vector<std::string_view> processes;                // ProcessInfo (field 5)

  void Clear();
  size_t RecordCount() const;  // the four record kinds, not processes
};

// Reads the protobuf wire format with bounds checks on every step (never reads outside the view).
class WireReader {
 public:
  static constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kStartGroup = 3, kEndGroup = 4,
                            kFixed32 = 5;

  explicit WireReader(std::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}

  bool done() const { return p_ == end_; }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  // A field key; false when malformed (field number 0, wire type 6/7, more than 5 bytes,
  // truncated). As protobuf's parser, bits past 32 of a 5-byte key are dropped.
  bool ReadTag(uint32_t* number, uint32_t* wire_type) {
    uint32_t tag;
    if (end_ - p_ >= 2 && (p_[0] < 0x80 || p_[1] < 0x80)) {  // keys of fields 1..2047
      if (p_[0] < 0x80) {
        tag = *p_++;
      } else {
        tag = (p_[0] & 0x7fu) | (uint32_t{p_[1]} << 7);
        p_ += 2;
      }
    } else {
      const uint8_t* q = ReadTagSlow(p_, end_, number, wire_type);
      if (q == nullptr) return false;
      p_ = q;
      return true;
    }
    *number = tag >> 3;
    *wire_type = tag & 7;
    return *number != 0 && *wire_type <= kFixed32;
  }
  // The next key as one number (field number << 3 | wire type), unchecked, when it is one
  // ReadTag reads inline (1 or 2 bytes); otherwise false with nothing consumed (call ReadTag).
  bool ReadShortKey(uint32_t* key) {
    if (end_ - p_ >= 2) {
      if (p_[0] < 0x80) {
        *key = *p_++;
        return true;
      }
      if (p_[1] < 0x80) {
        *key = (p_[0] & 0x7fu) | (uint32_t{p_[1]} << 7);
        p_ += 2;
        return true;
      }
    }
    return false;
  }
  bool ReadVarint(uint64_t* v) {
    if (end_ - p_ >= 10) {  // no bounds check per byte
      if (p_[0] < 0x80) {
        *v = *p_++;
        return true;
      }
      if constexpr (std::endian::native == std::endian::little) {
        // Up to 8 bytes without a loop: find the last byte, drop the bytes after it and the
        // continuation bits, then close the 7-bit groups' gaps pairwise (7 -> 14 -> 28 -> 56 bits).
        uint64_t w;
        std::memcpy(&w, p_, 8);
        const uint64_t last = ~w & 0x8080808080808080ull;
        if (last != 0) {
          const uint64_t stop = last & (~last + 1);  // the last byte's high bit
          uint64_t x = w & ((stop << 1) - 1) & 0x7f7f7f7f7f7f7f7full;
          x = (x & 0x007f007f007f007full) | ((x & 0x7f007f007f007f00ull) >> 1);
          x = (x & 0x00003fff00003fffull) | ((x & 0x3fff00003fff0000ull) >> 2);
          x = (x & 0x000000000fffffffull) | ((x & 0x0fffffff00000000ull) >> 4);
          p_ += (std::countr_zero(last) >> 3) + 1;
          *v = x;
          return true;
        }
      }
      uint64_t result = 0;
      for (int i = 0; i < 10; ++i) {
        const uint8_t b = p_[i];
        result |= uint64_t{b & 0x7fu} << (7 * i);
        if (b < 0x80) {
          p_ += i + 1;
          *v = result;
          return true;
        }
      }
      return false;  // an 11th byte would be needed
    }
    const uint8_t* q = ReadVarintSlow(p_, end_, v);
    if (q == nullptr) return false;
    p_ = q;
    return true;
  }
  // ReadVarint without the value: the same bytes accepted, the same bytes consumed.
  bool SkipVarint() {
    if constexpr (std::endian::native == std::endian::little) {
      if (end_ - p_ >= 10) {
        uint64_t w;
        std::memcpy(&w, p_, 8);
        const uint64_t last = ~w & 0x8080808080808080ull;  // bytes without a continuation bit
        if (last != 0) {
          p_ += (std::countr_zero(last) >> 3) + 1;
          return true;
        }
        if (p_[8] < 0x80) {
          p_ += 9;
          return true;
        }
        if (p_[9] < 0x80) {
          p_ += 10;
          return true;
        }
        return false;  // an 11th byte would be needed
      }
    }
    uint64_t v;
    return ReadVarint(&v);
  }
  bool ReadLengthDelimited(std::string_view* v) {
    uint32_t size;
    if (p_ != end_ && *p_ < 0x80) {
      size = *p_++;
    } else if (const uint8_t* q = ReadSizeSlow(p_, end_, &size); q != nullptr) {
      p_ = q;
    } else {
      return false;
    }
    if (size > static_cast<size_t>(end_ - p_)) return false;
    *v = std::string_view(reinterpret_cast<const char*>(p_), size);
    p_ += size;
    return true;
  }
  bool ReadFixed32(uint32_t* v) {
    if (end_ - p_ < 4) return false;
    uint32_t x = 0;
    for (int i = 0; i < 4; ++i) x |= uint32_t{p_[i]} << (8 * i);
    *v = x;
    p_ += 4;
    return true;
  }
  bool ReadFixed64(uint64_t* v) {
    if (end_ - p_ < 8) return false;
    uint64_t x = 0;
    for (int i = 0; i < 8; ++i) x |= uint64_t{p_[i]} << (8 * i);
    *v = x;
    p_ += 8;
    return true;
  }
  // Skips the value of a field whose key was just read (groups up to a nesting bound). False
  // when malformed; an end-group key outside a group is malformed.
  bool SkipValue(uint32_t number, uint32_t wire_type) {
    switch (wire_type) {
      case kVarint:
        return SkipVarint();
      case kLengthDelimited: {
        std::string_view v;
        return ReadLengthDelimited(&v);
      }
      case kFixed64: {
        uint64_t v;
        return ReadFixed64(&v);
      }
      case kFixed32: {
        uint32_t v;
        return ReadFixed32(&v);
      }
      default: {
        const uint8_t* q = SkipGroup(p_, end_, number, wire_type, 0);
        if (q == nullptr) return false;
        p_ = q;
        return true;
      }
    }
  }

 private:
  // The rare cases, out of line. They take and return the position (nullptr: malformed) rather
  // than `this`, so that a reader's address never escapes and callers keep it in registers.
  static const uint8_t* ReadTagSlow(const uint8_t* p, const uint8_t* end, uint32_t* number, uint32_t* wire_type);
  static const uint8_t* ReadVarintSlow(const uint8_t* p, const uint8_t* end, uint64_t* v);
  static const uint8_t* ReadSizeSlow(const uint8_t* p, const uint8_t* end, uint32_t* size);
  static const uint8_t* SkipGroup(const uint8_t* p, const uint8_t* end, uint32_t number, uint32_t wire_type,
                                  int depth);

  const uint8_t* p_;
  const uint8_t* end_;
};

// Splits `wire` into its records. False when the bytes are not a RecordBatch at the wire level
// (bad keys, lengths past the end, ...). Fields of RecordBatch with an unexpected wire type or an
// unknown number are skipped, as protobuf skips them. The records themselves are not looked into.
bool SplitRecordBatch(std::string_view wire, RecordBatchWire* out);

// True when protobuf's parser accepts `wire` as a RecordBatch (every record well formed, string
// fields valid UTF-8 as proto3 requires), without building any message. Fills *out like
// SplitRecordBatch. This is the check the ingest server runs on untrusted agent bytes.
bool CheckRecordBatch(std::string_view wire, RecordBatchWire* out);

// True when `bytes` is valid UTF-8 (what protobuf requires of proto3 string fields).
bool ValidUtf8(std::string_view bytes);

// The last value of varint field `number` of a serialized message (proto3: the last one wins), or
// `fallback` when absent or when the message is malformed.
uint64_t ReadVarintField(std::string_view message, uint32_t number, uint64_t fallback);

}  // namespace sonde::server::storage
