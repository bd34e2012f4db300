// tern export FILE OUT: copies a tern file's logical content into a plain file (or stdout).
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "lib/file.h"
#include "tools/cmd_common.h"

namespace tern::tools {
namespace {

constexpr const char kExportUsage[] =
    "usage: tern export FILE OUT\n"
    "\n"
    "Writes the content of the tern file FILE into OUT as a plain file (created or truncated, with\n"
    "FILE's mode when created; '-' is standard output). FILE is not changed.\n"
    "Exit status: 0 success, 1 failure (including FILE not being a tern file), 2 usage.\n";

constexpr size_t kChunk = size_t{1} << 20;

int Failure(const std::string& what, int err) {
  fprintf(stderr, "tern export: %s: %s\n", what.c_str(), strerror(err));
  return kExitFailure;
}

bool WriteAll(int fd, const char* buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    buf += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

int CmdExport(int argc, char** argv) {
  if (argc >= 1 && IsHelp(argv[0])) {
    fputs(kExportUsage, stdout);
    return kExitOk;
  }
  if (argc != 2) {
    fputs(kExportUsage, stderr);
    return kExitUsage;
  }
  std::string path = argv[0];
  std::string out_path = argv[1];
  auto file = File::Open(path, O_RDONLY);
  if (!file.ok()) {
    if (file.status().err() == kNotTernFile) {
      fprintf(stderr, "tern export: %s is not a tern file\n", path.c_str());
      return kExitFailure;
    }
    return Failure(path, file.status().err());
  }
  struct stat st;
  Status s = (*file)->Stat(&st);
  if (!s.ok()) return Failure(path, s.err());
  bool to_stdout = out_path == "-";
  int out = to_stdout ? STDOUT_FILENO
                      : open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 07777);
  if (out < 0) return Failure(out_path, errno);
  std::unique_ptr<char[]> buf(new char[kChunk]);
  uint64_t at = 0;
  int err = 0;
  std::string where = out_path;
  for (;;) {
    auto n = (*file)->Pread(buf.get(), kChunk, at);
    if (!n.ok()) {
      err = n.status().err();
      where = path;
      break;
    }
    if (*n == 0) break;
    if (!WriteAll(out, buf.get(), *n)) {
      err = errno;
      break;
    }
    at += *n;
  }
  if (!to_stdout) {
    if (err == 0 && fsync(out) != 0) err = errno;
    if (close(out) != 0 && err == 0) err = errno;
  }
  return err == 0 ? kExitOk : Failure(where, err);
}

}  // namespace tern::tools
