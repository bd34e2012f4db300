// tern import FILE: a plain file becomes a tern file with the same content, mode and owner. The tern
// copy is written next to it under a temporary name, made durable, then renamed over FILE, so FILE
// is at every moment either the old plain file or the complete tern file.
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

constexpr const char kImportUsage[] =
    "usage: tern import FILE\n"
    "\n"
    "Converts the plain file FILE into a tern file in place (same content, mode and owner). A file\n"
    "that already is a tern file is left alone. Programs must not have FILE open meanwhile.\n"
    "Exit status: 0 converted or already tern, 1 failure, 2 usage.\n";

constexpr size_t kChunk = size_t{1} << 20;

int Failure(const std::string& what, int err) {
  fprintf(stderr, "tern import: %s: %s\n", what.c_str(), strerror(err));
  return kExitFailure;
}

}  // namespace

int CmdImport(int argc, char** argv) {
  if (argc >= 1 && IsHelp(argv[0])) {
    fputs(kImportUsage, stdout);
    return kExitOk;
  }
  if (argc != 1) {
    fputs(kImportUsage, stderr);
    return kExitUsage;
  }
  std::string path = argv[0];
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return Failure(path, errno);
  if (!S_ISREG(st.st_mode)) return Failure(path, S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
  if (st.st_size > 0) {
    auto existing = File::Open(path, O_RDONLY);
    if (existing.ok()) {
      printf("%s is already a tern file\n", path.c_str());
      return kExitOk;
    }
    if (existing.status().err() != kNotTernFile) return Failure(path, existing.status().err());
  }
  int in = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Failure(path, errno);
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string tmp = dir + "/." + base + ".tern-import." + std::to_string(getpid());
  int err = 0;
  std::string where = tmp;
  {
    auto out = File::Open(tmp, O_WRONLY | O_CREAT | O_EXCL, st.st_mode & 07777);
    if (!out.ok()) {
      close(in);
      return Failure(tmp, out.status().err());
    }
    std::unique_ptr<char[]> buf(new char[kChunk]);
    uint64_t at = 0;
    for (;;) {
      ssize_t n = read(in, buf.get(), kChunk);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        err = errno;
        where = path;
        break;
      }
      if (n == 0) break;
      auto w = (*out)->Pwrite(buf.get(), static_cast<size_t>(n), at);
      if (!w.ok()) {
        err = w.status().err();
        break;
      }
      at += static_cast<uint64_t>(n);
    }
    if (err == 0) {
      Status s = (*out)->Fsync();
      if (!s.ok()) err = s.err();
    }
  }
  close(in);
  if (err == 0 && geteuid() == 0 && chown(tmp.c_str(), st.st_uid, st.st_gid) != 0) err = errno;
  if (err == 0 && chmod(tmp.c_str(), st.st_mode & 07777) != 0) err = errno;
  if (err == 0 && rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    where = path;
  }
  if (err != 0) {
    unlink(tmp.c_str());
    return Failure(where, err);
  }
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return kExitOk;
}

}  // namespace tern::tools
