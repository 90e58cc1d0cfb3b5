#include "lib/base/cancel_slot.h"

#include <gtest/gtest.h>

namespace moa {
namespace {

struct Work {
  void Cancel() { ++cancels; }
  int cancels = 0;
};

TEST(CancelSlotTest, ACancelBeforeTheWorkIsAttachedIsNotLost) {
  CancelSlot<Work> slot;
  slot.Cancel();
  auto work = std::make_shared<Work>();
  slot.Attach(work);
  EXPECT_EQ(work->cancels, 1);
}

TEST(CancelSlotTest, CancelReachesAttachedWorkOnce) {
  CancelSlot<Work> slot;
  auto work = std::make_shared<Work>();
  slot.Attach(work);
  EXPECT_EQ(work->cancels, 0);
  slot.Cancel();
  slot.Cancel();
  EXPECT_EQ(work->cancels, 1) << "the handle is dropped after the first cancel";
}

TEST(CancelSlotTest, AfterCloseTheHandleIsDroppedAndCancelsAreIgnored) {
  CancelSlot<Work> slot;
  auto work = std::make_shared<Work>();
  slot.Attach(work);
  slot.Close();
  EXPECT_EQ(work.use_count(), 1) << "the slot let go of the handle";
  slot.Cancel();
  EXPECT_EQ(work->cancels, 0);
  auto late = std::make_shared<Work>();
  slot.Attach(late);
  EXPECT_EQ(late.use_count(), 1) << "work attached after Close is not kept";
}

}  // namespace
}  // namespace moa
