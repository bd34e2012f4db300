// The cached pid (lib/process_id.h) must be each process's own, or a forked child's slot would
// name its parent (`tern stat`) and its temporary object names would collide with the parent's.
#include "lib/process_id.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "lib/file.h"
#include "lib/file_core.h"
#include "tests/process_util.h"
#include "tests/test_util.h"

namespace tern {
namespace {

bool Attached(const FileCore& core, uint32_t pid) {
  auto attached = core.AttachedProcesses();
  return std::any_of(attached.begin(), attached.end(), [&](const ProcessInfo& p) { return p.pid == pid; });
}

TEST(ProcessIdTest, IsEachForkedProcesssOwn) {
  EXPECT_EQ(ThisProcessId(), static_cast<uint32_t>(getpid()));
  EXPECT_TRUE(test::InForkedChild([] {
    bool child_ok = ThisProcessId() == static_cast<uint32_t>(getpid());
    return child_ok && test::InForkedChild([] { return ThisProcessId() == static_cast<uint32_t>(getpid()); });
  }));
  EXPECT_EQ(ThisProcessId(), static_cast<uint32_t>(getpid()));
}

TEST(ProcessIdTest, AForkedChildsSlotNamesTheChild) {
  test::TempDir dir;
  auto file = File::Open(dir.File("f"), O_RDWR | O_CREAT, 0644);
  ASSERT_TRUE(file.ok()) << file.status().context();
  ASSERT_TRUE(Attached((*file)->core(), ThisProcessId()));
  EXPECT_TRUE(test::InForkedChild([&] {
    const FileCore& core = (*file)->core();
    return Attached(core, static_cast<uint32_t>(getpid())) && Attached(core, static_cast<uint32_t>(getppid()));
  }));
  test::CloseAndSettle(std::move(*file));
}

}  // namespace
}  // namespace tern
