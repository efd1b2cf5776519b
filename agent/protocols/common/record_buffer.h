// RecordBuffer: the records one Stitch call produces. The message objects are kept across calls
// (clear() only resets the count), so a stitcher that fills Add()'s record reuses the strings
// the previous occupant allocated instead of allocating a new message and a string object per
// field for every record. A sink that moves a record out leaves an empty message behind, which
// is reused the same way. Vector-like for reading: size(), operator[], begin()/end().
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "sonde/agent/v1/records.pb.h"

namespace sonde::agent::protocols {

class RecordBuffer {
 public:
  // A cleared record appended at the end. The reference is valid until the next Add().
  v1::L7RequestLog& Add() {
    if (size_ < items_.size()) {
      v1::L7RequestLog& r = items_[size_++];
      r.Clear();
      return r;
    }
    ++size_;
    return items_.emplace_back();
  }
  void push_back(v1::L7RequestLog&& r) { Add().Swap(&r); }
  void push_back(const v1::L7RequestLog& r) { Add().CopyFrom(r); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  v1::L7RequestLog& operator[](size_t i) { return items_[i]; }
  const v1::L7RequestLog& operator[](size_t i) const { return items_[i]; }
  v1::L7RequestLog& front() { return items_[0]; }
  v1::L7RequestLog& back() { return items_[size_ - 1]; }
  v1::L7RequestLog* begin() { return items_.data(); }
  v1::L7RequestLog* end() { return items_.data() + size_; }
  const v1::L7RequestLog* begin() const { return items_.data(); }
  const v1::L7RequestLog* end() const { return items_.data() + size_; }

  // Forgets the records; their message objects stay for reuse.
  void clear() { size_ = 0; }
  // Copies of the records (tests).
  std::vector<v1::L7RequestLog> ToVector() const { return {begin(), end()}; }

 private:
  std::vector<v1::L7RequestLog> items_;
  size_t size_ = 0;
};

}  // namespace sonde::agent::protocols
