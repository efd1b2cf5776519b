// FlowTable: the bidirectional flow table. Open addressing (linear probing, backward-shift
// erase) over 8-byte slots {hash tag, value index}; values live in a chunked slab that never
// moves them, so pointers and indices stay valid until Erase. No allocation per lookup, and one
// per 4096 new values at most (slab chunks) plus index doubling.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "common/net/five_tuple.h"

namespace sonde::agent::flow {

// Direction-independent flow key: the lower (ip, port) endpoint is `a`. 40 bytes, no implicit
// padding, so it compares and hashes as raw memory.
struct FlowKey {
  std::array<uint8_t, 16> ip_a{};
  std::array<uint8_t, 16> ip_b{};
  uint16_t port_a = 0;
  uint16_t port_b = 0;
  uint8_t protocol = 0;
  uint8_t reserved[3] = {0, 0, 0};

  // Builds the key of `t`; `*src_is_a` tells whether t.src is endpoint a.
  static FlowKey Of(const net::FiveTuple& t, bool* src_is_a) {
    FlowKey k;
    const auto& s = t.src_ip.bytes();
    const auto& d = t.dst_ip.bytes();
    // memcmp order of the 16 bytes, as two big-endian words compared inline.
    static_assert(std::endian::native == std::endian::little);
    uint64_t s0, s1, d0, d1;
    std::memcpy(&s0, s.data(), 8);
    std::memcpy(&s1, s.data() + 8, 8);
    std::memcpy(&d0, d.data(), 8);
    std::memcpy(&d1, d.data() + 8, 8);
    s0 = __builtin_bswap64(s0), s1 = __builtin_bswap64(s1);
    d0 = __builtin_bswap64(d0), d1 = __builtin_bswap64(d1);
    const bool less = s0 < d0 || (s0 == d0 && s1 < d1);
    const bool equal = s0 == d0 && s1 == d1;
    bool keep = less || (equal && t.src_port <= t.dst_port);
    if (keep) {
      k.ip_a = s, k.ip_b = d, k.port_a = t.src_port, k.port_b = t.dst_port;
    } else {
      k.ip_a = d, k.ip_b = s, k.port_a = t.dst_port, k.port_b = t.src_port;
    }
    k.protocol = static_cast<uint8_t>(t.protocol);
    if (src_is_a != nullptr) *src_is_a = keep;
    return k;
  }

  uint64_t Hash() const {
    uint64_t w[5];
    std::memcpy(w, this, sizeof(w));
    uint64_t h = Mix(w[0] ^ 0x243F6A8885A308D3ull, w[1] ^ 0x13198A2E03707344ull);
    h = Mix(h ^ w[2], w[3] ^ 0xA4093822299F31D0ull);
    return Mix(h ^ w[4], 0x082EFA98EC4E6C89ull);
  }

  friend bool operator==(const FlowKey& x, const FlowKey& y) {
    // Five words compared inline (a memcmp call per lookup showed in profiles).
    uint64_t a[5], b[5];
    std::memcpy(a, &x, sizeof(a));
    std::memcpy(b, &y, sizeof(b));
    return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0;
  }

 private:
  static uint64_t Mix(uint64_t a, uint64_t b) {
    __extension__ using U128 = unsigned __int128;
    U128 r = static_cast<U128>(a) * b;
    return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
  }
};
static_assert(sizeof(FlowKey) == 40);

// `T` must be default-constructible and have a public `FlowKey key` member. The slot tag is the
// hash's low 32 bits, which also give the home slot (tables stay below 2^32 slots).
template <typename T>
class FlowTable {
 public:
  static constexpr uint32_t kNone = 0xFFFFFFFFu;

  explicit FlowTable(size_t max_entries) : max_entries_(max_entries) {
    // Small tables (tests, fuzzers) get small slab chunks and index.
    while (chunk_bits_ > 4 && (size_t{1} << (chunk_bits_ - 1)) >= max_entries) --chunk_bits_;
    size_t slots = 16;
    while (slots < kMinSlots && slots < 2 * max_entries) slots *= 2;
    Rehash(slots);
  }

  size_t size() const { return size_; }
  size_t max_entries() const { return max_entries_; }
  // Bytes held by the index and the slab (excluding what values allocate themselves).
  size_t memory_bytes() const {
    return slots_.capacity() * sizeof(Slot) + used_.capacity() * sizeof(uint64_t) +
           chunks_.size() * (size_t{1} << chunk_bits_) * sizeof(T) +
           free_.capacity() * sizeof(uint32_t);
  }

  T* Find(const FlowKey& key, uint64_t hash) {
    uint32_t tag = static_cast<uint32_t>(hash);
    // An empty home slot means absent (probe chains have no gaps): the occupancy bits say so
    // without touching the index, whose slot would miss every cache for a new flow.
    if (!Used(hash & mask_)) return nullptr;
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.index == kNone) return nullptr;
      if (s.tag == tag) {
        T* v = At(s.index);
        if (v->key == key) return v;
      }
    }
  }

  // Starts loading the index line a lookup or erase of `hash` probes first (loops that visit
  // many flows issue it a few flows ahead: the index of a large table misses every cache).
  // (Not the occupancy word: one bit per slot keeps it small enough to stay cached, and the
  // extra prefetch measured slower.)
  void Prefetch(uint64_t hash) const { __builtin_prefetch(&slots_[hash & mask_]); }

  // Inserts a default value for `key` (which must be absent); nullptr when the table is full.
  T* Insert(const FlowKey& key, uint64_t hash, uint32_t* index_out = nullptr) {
    if (size_ >= max_entries_) return nullptr;
    if ((size_ + 1) * 2 > slots_.size()) Rehash(slots_.size() * 2);
    uint32_t index;
    if (!free_.empty()) {
      index = free_.back();
      free_.pop_back();
    } else {
      size_t chunk = size_t{1} << chunk_bits_;
      if (next_fresh_ == chunks_.size() * chunk) chunks_.push_back(NewChunk(chunk));
      index = next_fresh_++;
      // Constructed on first hand-out, not with its chunk: a chunk of a large table is 2 MB,
      // and values built all at once would have left the caches again by the time each is
      // used; built here, a new flow's lines are hot for its first packet.
      new (At(index)) T();
    }
    T* v = At(index);
    v->key = key;
    Place(Slot{static_cast<uint32_t>(hash), index});
    ++size_;
    if (index_out != nullptr) *index_out = index;
    return v;
  }

  // Removes the live value at `index` and resets it to a default value.
  void Erase(uint32_t index) {
    T* v = At(index);
    size_t i = v->key.Hash() & mask_;
    while (slots_[i].index != index) i = (i + 1) & mask_;
    // Backward-shift deletion keeps every probe sequence unbroken without tombstones.
    for (size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
      if (slots_[j].index == kNone) break;
      size_t home = slots_[j].tag & mask_;
      // Move j into the hole at i when its home does not lie in (i, j].
      if (((j - home) & mask_) >= ((j - i) & mask_)) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Slot{};
    used_[i >> 6] &= ~(uint64_t{1} << (i & 63));
    *v = T{};
    free_.push_back(index);
    --size_;
  }

  // Removes every value at once (no index probe, no reset per value): values are destroyed, the
  // index emptied; slab chunks are kept for the values inserted next.
  void Clear() {
    for (uint32_t i = 0; i < next_fresh_; ++i) At(i)->~T();
    next_fresh_ = 0;
    free_.clear();
    size_ = 0;
    std::fill(slots_.begin(), slots_.end(), Slot{});
    std::fill(used_.begin(), used_.end(), 0);
  }

  T* At(uint32_t index) { return chunks_[index >> chunk_bits_].get() + (index & ChunkMask()); }
  const T* At(uint32_t index) const {
    return chunks_[index >> chunk_bits_].get() + (index & ChunkMask());
  }

  // Calls f(T&) for every live value; f must not insert or erase.
  template <typename F>
  void ForEach(F&& f) {
    for (const Slot& s : slots_) {
      if (s.index != kNone) f(*At(s.index));
    }
  }
  ~FlowTable() {
    for (uint32_t i = 0; i < next_fresh_; ++i) At(i)->~T();
  }
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // Calls f(index, T&) for every slab position handed out so far, live or erased (an erased one
  // holds a default value), in index order: a sequential walk of the slab, unlike ForEach, whose
  // index order makes every value a random access. f must not insert or erase.
  template <typename F>
  void ForEachSlabEntry(F&& f) {
    for (uint32_t i = 0; i < next_fresh_; ++i) f(i, *At(i));
  }
  // Any live value, or nullptr when empty.
  T* Any() {
    for (const Slot& s : slots_) {
      if (s.index != kNone) return At(s.index);
    }
    return nullptr;
  }

 private:
  static constexpr size_t kMinSlots = 1024;
  // Raw slab storage: values are constructed one by one as they are handed out (Insert) and
  // destroyed by ~FlowTable.
  struct ChunkFree {
    void operator()(T* p) const { ::operator delete(static_cast<void*>(p), std::align_val_t{alignof(T)}); }
  };
  using Chunk = std::unique_ptr<T, ChunkFree>;
  static Chunk NewChunk(size_t count) {
    return Chunk(static_cast<T*>(::operator new(count * sizeof(T), std::align_val_t{alignof(T)})));
  }
  struct Slot {
    uint32_t tag = 0;
    uint32_t index = kNone;
  };

  bool Used(size_t i) const { return (used_[i >> 6] >> (i & 63)) & 1; }
  // Finds the free slot from the occupancy bits, so placing a new value only writes the index.
  void Place(Slot s) {
    size_t i = s.tag & mask_;
    while (Used(i)) i = (i + 1) & mask_;
    slots_[i] = s;
    used_[i >> 6] |= uint64_t{1} << (i & 63);
  }
  void Rehash(size_t n) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(n, Slot{});
    used_.assign((n + 63) / 64, 0);
    mask_ = n - 1;
    for (const Slot& s : old) {
      if (s.index != kNone) Place(s);
    }
  }

  uint32_t ChunkMask() const { return (uint32_t{1} << chunk_bits_) - 1; }

  size_t max_entries_;
  uint32_t chunk_bits_ = 12;  // slab chunks of 4096 values, fewer for small tables
  size_t size_ = 0;
  size_t mask_ = 0;
  uint32_t next_fresh_ = 0;
  std::vector<Slot> slots_;
  std::vector<uint64_t> used_;  // one bit per slot: occupied
  std::vector<Chunk> chunks_;
  std::vector<uint32_t> free_;
};

}  // namespace sonde::agent::flow
