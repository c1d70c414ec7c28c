// OS errors map to the codes and categories policy code relies on: a
// passing failure is transient (retry), a held lock is busy.
#include <gtest/gtest.h>

#include <cerrno>

#include "common/status.h"

namespace obd {
namespace {

TEST(StatusTest, ErrnoMapsToCodeAndCategory) {
  struct Case {
    int err;
    Code code;
    Category cat;
  } cases[] = {
      {EAGAIN, Code::kEAGAIN, Category::kTransient},   {EINTR, Code::kEAGAIN, Category::kTransient},
      {ETIMEDOUT, Code::kETIMEDOUT, Category::kTransient}, {EBUSY, Code::kEBUSY, Category::kBusy},
      {ENOENT, Code::kENOENT, Category::kNotFound},    {EACCES, Code::kEPERM, Category::kInvalidArgument},
      {ENOSPC, Code::kENOSPC, Category::kIo},          {EIO, Code::kEIO, Category::kIo},
  };
  for (const Case& c : cases) {
    Status s = Status::from_errno(c.err, "op");
    EXPECT_EQ(s.code(), c.code) << "errno " << c.err << ": " << s.to_string();
    EXPECT_TRUE(s.is(c.cat)) << "errno " << c.err << ": " << category_name(s.category());
  }
}

TEST(StatusTest, FormatErrorsAreCorrupt) {
  EXPECT_TRUE(Status(Code::kZFILE_CRC_MISMATCH, "x").is(Category::kCorrupt));
  EXPECT_TRUE(Status(Code::kLSMT_TRUNCATED, "x").is(Category::kCorrupt));
  EXPECT_TRUE(Status(Code::kCLOSED, "x").is(Category::kClosed));
  EXPECT_TRUE(Status::ok().is(Category::kOk));
}

}  // namespace
}  // namespace obd
