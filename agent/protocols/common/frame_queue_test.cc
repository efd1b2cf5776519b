// FrameQueue: FIFO order across wrap-around and growth, erase in the middle, iterators that
// std algorithms accept, and element lifetimes (no leaks, no double destruction).
#include "agent/protocols/common/frame_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <random>
#include <string>

namespace sonde::agent::protocols {
namespace {

TEST(FrameQueueTest, BehavesLikeDequeUnderRandomOperations) {
  FrameQueue<std::string> q;
  std::deque<std::string> ref;
  std::mt19937 rng(7);
  for (int step = 0; step < 20000; ++step) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      std::string v = std::to_string(step) + std::string(rng() % 40, 'x');  // some heap strings
      q.push_back(v);
      ref.push_back(v);
    } else if (op < 8 && !ref.empty()) {
      q.pop_front();
      ref.pop_front();
    } else if (op == 8 && !ref.empty()) {
      const size_t i = rng() % ref.size();
      auto qi = q.erase(q.begin() + static_cast<std::ptrdiff_t>(i));
      auto ri = ref.erase(ref.begin() + static_cast<std::ptrdiff_t>(i));
      EXPECT_EQ(qi - q.begin(), ri - ref.begin());
    } else if (op == 9 && rng() % 50 == 0) {
      q.clear();
      ref.clear();
    }
    ASSERT_EQ(q.size(), ref.size());
    if (!ref.empty()) {
      ASSERT_EQ(q.front(), ref.front());
      ASSERT_EQ(q.back(), ref.back());
    }
  }
  ASSERT_TRUE(std::equal(q.begin(), q.end(), ref.begin(), ref.end()));
}

TEST(FrameQueueTest, NoAllocationUntilFirstPushAndSortable) {
  FrameQueue<int> q;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.begin(), q.end());
  for (int v : {5, 3, 9, 1, 7, 3}) q.push_back(v);
  q.pop_front();  // head moves: sorting must work on a wrapped ring too
  q.push_back(0);
  std::stable_sort(q.begin(), q.end());
  const std::deque<int> want = {0, 1, 3, 3, 7, 9};
  EXPECT_TRUE(std::equal(q.begin(), q.end(), want.begin(), want.end()));
  auto it = std::find(q.begin(), q.end(), 7);
  ASSERT_NE(it, q.end());
  EXPECT_EQ(it - q.begin(), 4);
}

TEST(FrameQueueTest, DestroysEveryElementOnce) {
  auto token = std::make_shared<int>(0);
  {
    FrameQueue<std::shared_ptr<int>> q;
    for (int i = 0; i < 100; ++i) q.push_back(token);
    for (int i = 0; i < 30; ++i) q.pop_front();
    q.erase(q.begin() + 10);
    EXPECT_EQ(token.use_count(), 1 + 69);
    FrameQueue<std::shared_ptr<int>> copy(q);
    EXPECT_EQ(token.use_count(), 1 + 2 * 69);
    FrameQueue<std::shared_ptr<int>> moved(std::move(copy));
    EXPECT_EQ(token.use_count(), 1 + 2 * 69);
  }
  EXPECT_EQ(token.use_count(), 1);
}

}  // namespace
}  // namespace sonde::agent::protocols
