// Project quotas: the errors a caller sees where quotas cannot be set.
// (The quotas themselves need a kernel with quota support and a prjquota
// mount: test/snapshotter-quota.test.ts runs them in the 6.1 guest.)
#include <gtest/gtest.h>

#include "quota/project_quota.h"
#include "test_util.h"

namespace obd {
namespace {

TEST(ProjectQuota, RefusesTheDefaultProject) {
  test::TempDir dir;
  Status s = quota::set_project_quota(dir.path(), 0, 1 << 20);
  EXPECT_EQ(s.code(), Code::kEINVAL);
  EXPECT_NE(s.message().find("project ID 0"), std::string::npos) << s.message();
}

TEST(ProjectQuota, NamesAMissingDirectory) {
  test::TempDir dir;
  std::string gone = dir.path() + "/gone";
  Status s = quota::set_project_quota(gone, 16777217, 1 << 20);
  EXPECT_EQ(s.code(), Code::kENOENT);
  EXPECT_NE(s.message().find(gone), std::string::npos) << s.message();
  EXPECT_EQ(quota::project_id(gone).status().code(), Code::kENOENT);
  EXPECT_EQ(quota::clear_project_limit(gone, 16777217).code(), Code::kENOENT);
}

// /proc has no project IDs: the message says so rather than a bare errno.
TEST(ProjectQuota, SaysWhenAFilesystemHasNoProjectIds) {
  auto id = quota::project_id("/proc/self");
  ASSERT_FALSE(id.is_ok());
  EXPECT_NE(id.status().message().find("no project IDs"), std::string::npos) << id.status().message();
}

}  // namespace
}  // namespace obd
