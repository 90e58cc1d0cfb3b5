// WriteQueue's contract: one write in flight, merging behind it, finishing
// exactly once after everything queued, nothing written once broken.
#include "lib/base/write_queue.h"

#include <gtest/gtest.h>

#include <string>

namespace moa {
namespace {

using Bytes = WriteQueue<std::string, AppendBytes>;
using Step = Bytes::Step;

TEST(WriteQueueTest, OneWriteInFlightAndWhatQueuesBehindItIsMerged) {
  Bytes q;
  EXPECT_TRUE(q.Push("a"));
  ASSERT_EQ(q.Next(), Step::kWrite);
  EXPECT_EQ(q.in_flight(), "a");
  EXPECT_TRUE(q.Push("b"));
  EXPECT_TRUE(q.Push("c"));
  EXPECT_EQ(q.Next(), Step::kNone) << "a write is in flight";
  q.WriteDone(true);
  ASSERT_EQ(q.Next(), Step::kWrite);
  EXPECT_EQ(q.in_flight(), "bc");
  q.WriteDone(true);
  EXPECT_EQ(q.Next(), Step::kNone);
  EXPECT_TRUE(q.idle());
}

TEST(WriteQueueTest, FinishesOnceAfterEverythingQueuedBeforeClose) {
  Bytes q;
  q.Push("a");
  ASSERT_EQ(q.Next(), Step::kWrite);
  q.Push("b");
  EXPECT_TRUE(q.Close());
  EXPECT_FALSE(q.Close()) << "Close is taken once";
  EXPECT_FALSE(q.Push("late")) << "nothing is taken after Close";
  EXPECT_EQ(q.Next(), Step::kNone);
  q.WriteDone(true);
  ASSERT_EQ(q.Next(), Step::kWrite);
  EXPECT_EQ(q.in_flight(), "b");
  q.WriteDone(true);
  EXPECT_EQ(q.Next(), Step::kFinish);
  EXPECT_TRUE(q.finished());
  EXPECT_EQ(q.Next(), Step::kNone) << "kFinish comes exactly once";
}

TEST(WriteQueueTest, AFailedWriteDropsTheQueueAndFinishesAtClose) {
  Bytes q;
  q.Push("a");
  ASSERT_EQ(q.Next(), Step::kWrite);
  q.Push("b");
  q.WriteDone(false);
  EXPECT_TRUE(q.broken());
  EXPECT_EQ(q.Next(), Step::kNone) << "open, nothing more to write";
  EXPECT_FALSE(q.Push("c"));
  q.Close();
  EXPECT_EQ(q.Next(), Step::kFinish);
}

TEST(WriteQueueTest, NoMergeKeepsMessagesApartAndInOrder) {
  WriteQueue<int> q;
  for (int i = 1; i <= 3; ++i) q.Push(i);
  q.Close();
  std::vector<int> written;
  while (q.Next() == WriteQueue<int>::Step::kWrite) {
    written.push_back(q.in_flight());
    q.WriteDone(true);
  }
  EXPECT_EQ(written, (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(q.finished());
}

TEST(WriteQueueTest, AMergeRuleMayRefuse) {
  // Merges two odd numbers only, as a stream merges text of one source only.
  struct BothOdd {
    bool operator()(int& last, int& next) const {
      if (last % 2 == 0 || next % 2 == 0) return false;
      last += next;
      return true;
    }
  };
  using Queue = WriteQueue<int, BothOdd>;
  Queue q;
  q.Push(1);
  ASSERT_EQ(q.Next(), Queue::Step::kWrite);
  q.Push(3);
  q.Push(5);  // 3 + 5 = 8, even: what follows stays apart.
  q.Push(7);
  q.WriteDone(true);
  ASSERT_EQ(q.Next(), Queue::Step::kWrite);
  EXPECT_EQ(q.in_flight(), 8);
  q.WriteDone(true);
  ASSERT_EQ(q.Next(), Queue::Step::kWrite);
  EXPECT_EQ(q.in_flight(), 7);
}

TEST(WriteQueueTest, ReopenStartsTheNextStreamOnTheSameConnection) {
  Bytes q;
  q.Close();
  ASSERT_EQ(q.Next(), Step::kFinish);
  q.Reopen();
  EXPECT_TRUE(q.Push("next"));
  EXPECT_EQ(q.Next(), Step::kWrite);
  EXPECT_EQ(q.in_flight(), "next");
}

}  // namespace
}  // namespace moa
