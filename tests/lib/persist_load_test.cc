// libpmem is loaded at a process's first persist (pmem/persist.cc): a process that only reads tern
// files never pays for loading it and its dependencies, and a process that cannot load it persists
// through msync with one error line instead of failing. Each case runs in forked children of a
// test process that itself never persists (nor opens a tern file), so each child starts clean.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "lib/file.h"
#include "tests/process_util.h"
#include "tests/test_util.h"

namespace tern {
namespace {

bool LibpmemMapped() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("libpmem.so") != std::string::npos) return true;
  }
  return false;
}

std::string Pattern() { return std::string(3 * 4096 + 100, 'p'); }

// Creates `path` holding Pattern(), fsynced and closed. True on success.
bool WriteAndSync(const std::string& path) {
  auto file = File::Open(path, O_RDWR | O_CREAT, 0644);
  if (!file.ok()) return false;
  std::string bytes = Pattern();
  bool ok = (*file)->Pwrite(bytes.data(), bytes.size(), 0).ok() && (*file)->Fsync().ok();
  test::CloseAndSettle(std::move(*file));
  return ok;
}

// True if `path` reads back as Pattern().
bool ReadsBack(const std::string& path) {
  auto file = File::Open(path, O_RDONLY);
  if (!file.ok()) return false;
  std::string bytes = Pattern();
  std::string got(bytes.size(), '\0');
  auto n = (*file)->Pread(got.data(), got.size(), 0);
  test::CloseAndSettle(std::move(*file));
  return n.ok() && *n == got.size() && got == bytes;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(PersistLoadTest, AReaderNeverLoadsLibpmemAWriterDoes) {
  test::TempDir dir;
  const std::string path = dir.File("f");
  ASSERT_FALSE(LibpmemMapped());
  EXPECT_TRUE(test::InForkedChild([&] { return !LibpmemMapped() && WriteAndSync(path) && LibpmemMapped(); }));
  EXPECT_TRUE(test::InForkedChild([&] { return ReadsBack(path) && !LibpmemMapped(); }));
}

TEST(PersistLoadTest, WithoutLibpmemFilesPersistThroughMsync) {
  test::TempDir dir;
  const std::string log = dir.File("log");
  // One library that is not there, one that lacks libpmem's functions.
  for (const char* stand_in : {"/nonexistent/libpmem.so.1", "libc.so.6"}) {
    SCOPED_TRACE(stand_in);
    const std::string path = dir.File(std::string("f") + (stand_in[0] == '/' ? "1" : "2"));
    EXPECT_TRUE(test::InForkedChild([&] {
      int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (out < 0 || dup2(out, STDERR_FILENO) < 0 || setenv("TERN_LIBPMEM", stand_in, 1) != 0) return false;
      return WriteAndSync(path) && !LibpmemMapped();
    }));
    EXPECT_NE(Slurp(log).find("cannot load"), std::string::npos) << Slurp(log);
    EXPECT_TRUE(test::InForkedChild([&] { return ReadsBack(path); }));
  }
}

}  // namespace
}  // namespace tern
