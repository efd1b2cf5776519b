// FrameQueue<T>: the FIFO of parsed frames per direction that FrameParser fills and stitchers
// drain. A ring buffer in one array that allocates nothing until the first push: std::deque
// allocated its map and a node for every new connection, and a node for every one or two
// frames (frames are a few hundred bytes), which made it the largest per-connection cost.
// Deque-like API: push/pop at both ends, random-access iterators, erase in the middle.
#pragma once

#include <compare>
#include <cstddef>
#include <iterator>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace sonde::agent::protocols {

template <typename T>
class FrameQueue {
  template <bool kConst>
  class Iter {
    using Queue = std::conditional_t<kConst, const FrameQueue, FrameQueue>;

   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = std::conditional_t<kConst, const T*, T*>;
    using reference = std::conditional_t<kConst, const T&, T&>;

    Iter() = default;
    Iter(Queue* q, size_t i) : q_(q), i_(i) {}
    operator Iter<true>() const { return Iter<true>(q_, i_); }  // NOLINT: like std iterators

    reference operator*() const { return (*q_)[i_]; }
    pointer operator->() const { return &(*q_)[i_]; }
    reference operator[](difference_type n) const { return (*q_)[i_ + n]; }
    Iter& operator++() { ++i_; return *this; }
    Iter operator++(int) { Iter t = *this; ++i_; return t; }
    Iter& operator--() { --i_; return *this; }
    Iter operator--(int) { Iter t = *this; --i_; return t; }
    Iter& operator+=(difference_type n) { i_ += n; return *this; }
    Iter& operator-=(difference_type n) { i_ -= n; return *this; }
    friend Iter operator+(Iter a, difference_type n) { return a += n; }
    friend Iter operator+(difference_type n, Iter a) { return a += n; }
    friend Iter operator-(Iter a, difference_type n) { return a -= n; }
    friend difference_type operator-(const Iter& a, const Iter& b) {
      return static_cast<difference_type>(a.i_) - static_cast<difference_type>(b.i_);
    }
    friend bool operator==(const Iter& a, const Iter& b) { return a.i_ == b.i_; }
    friend auto operator<=>(const Iter& a, const Iter& b) { return a.i_ <=> b.i_; }
    size_t index() const { return i_; }

   private:
    Queue* q_ = nullptr;
    size_t i_ = 0;
  };

 public:
  using value_type = T;
  using size_type = size_t;
  using reference = T&;
  using const_reference = const T&;
  using iterator = Iter<false>;
  using const_iterator = Iter<true>;

  FrameQueue() = default;
  explicit FrameQueue(size_t n) {
    for (size_t i = 0; i < n; ++i) emplace_back();
  }
  FrameQueue(const FrameQueue& o) {
    for (const T& v : o) push_back(v);
  }
  FrameQueue(FrameQueue&& o) noexcept { Swap(o); }
  FrameQueue& operator=(FrameQueue o) noexcept {
    Swap(o);
    return *this;
  }
  ~FrameQueue() {
    clear();
    if (data_ != nullptr) std::allocator<T>().deallocate(data_, cap_);
  }

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }

  T& operator[](size_t i) { return data_[(head_ + i) & (cap_ - 1)]; }
  const T& operator[](size_t i) const { return data_[(head_ + i) & (cap_ - 1)]; }
  T& front() { return (*this)[0]; }
  const T& front() const { return (*this)[0]; }
  T& back() { return (*this)[size_ - 1]; }
  const T& back() const { return (*this)[size_ - 1]; }

  iterator begin() { return iterator(this, 0); }
  iterator end() { return iterator(this, size_); }
  const_iterator begin() const { return const_iterator(this, 0); }
  const_iterator end() const { return const_iterator(this, size_); }

  template <typename... Args>
  T& emplace_back(Args&&... args) {
    if (size_ == cap_) Grow();
    T* slot = &data_[(head_ + size_) & (cap_ - 1)];
    ::new (static_cast<void*>(slot)) T(std::forward<Args>(args)...);
    ++size_;
    return *slot;
  }
  void push_back(T&& v) { emplace_back(std::move(v)); }
  void push_back(const T& v) { emplace_back(v); }

  void pop_front() {
    std::destroy_at(&front());
    head_ = (head_ + 1) & (cap_ - 1);
    --size_;
  }
  void pop_back() {
    std::destroy_at(&back());
    --size_;
  }
  void clear() {
    while (size_ > 0) pop_back();
    head_ = 0;
  }

  // Removes one element, moving the later ones forward; returns the element after it.
  iterator erase(const_iterator pos) {
    const size_t i = pos.index();
    for (size_t k = i; k + 1 < size_; ++k) (*this)[k] = std::move((*this)[k + 1]);
    pop_back();
    return iterator(this, i);
  }

 private:
  void Swap(FrameQueue& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(cap_, o.cap_);
    std::swap(head_, o.head_);
    std::swap(size_, o.size_);
  }
  void Grow() {
    // Large frames start with one slot: most connections hold one frame per direction at a
    // time, and every open connection keeps its arrays.
    const size_t cap = cap_ != 0 ? cap_ * 2 : (sizeof(T) >= 128 ? 1 : 4);
    T* data = std::allocator<T>().allocate(cap);
    for (size_t i = 0; i < size_; ++i) {
      T& from = (*this)[i];
      ::new (static_cast<void*>(&data[i])) T(std::move(from));
      std::destroy_at(&from);
    }
    if (data_ != nullptr) std::allocator<T>().deallocate(data_, cap_);
    data_ = data;
    cap_ = cap;
    head_ = 0;
  }

  T* data_ = nullptr;
  size_t cap_ = 0;  // 0 or a power of two
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace sonde::agent::protocols
