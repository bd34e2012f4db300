// shim_probe rawfd (tern only): what a system call that bypasses libc (which no preload sees) can
// do with a tern file's descriptor, a first open's and a reopen's: nothing (EBADF, as on the
// kernel's O_PATH descriptors), so it fails loudly instead of reading or writing the backing file.
//
// shim_probe reopen: a file opened again while this process has it open, or right after closing
// it. Under tern such an open finds the file's engine open and hands out a duplicate of the O_PATH
// descriptor the engine keeps (shim/open.cc, ReopenOpenHere) instead of opening the name: what a
// program sees must be what the kernel's open gives — the lowest free number, close-on-exec as
// asked, the access mode asked, O_TRUNC, O_APPEND, O_EXCL, a name renamed over or removed between
// two opens, a symlink, a second hard link, and /proc/self/fd.
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "tests/shim/shim_probe.h"

namespace shim_probe {
namespace {

std::string PreadAll(int fd) {
  char buf[256];
  ssize_t n = pread(fd, buf, sizeof(buf), 0);
  return n < 0 ? "<" + ErrName(errno) + ">" : std::string(buf, static_cast<size_t>(n));
}

// Opens `name` with `flags`, says what it got (the number relative to `expect_fd`, the lowest one
// free, when that is given), what it reads, and closes it.
void OpenReadClose(const char* what, const char* name, int flags, int expect_fd = -1) {
  int fd = open(name, flags, 0644);
  if (fd < 0) {
    Say(what, fd);
    return;
  }
  printf("%s: ok%s, reads \"%s\", cloexec %d\n", what, expect_fd < 0 ? "" : (fd == expect_fd ? " (lowest fd)" : " (not the lowest fd)"),
         PreadAll(fd).c_str(), (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  close(fd);
}

}  // namespace

int Reopen() {
  int a = open("r.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
  Say("write", write(a, "hello world", 11));
  // Open again while `a` is open, several times (the first reopen makes the file linger).
  for (int i = 0; i < 3; ++i) OpenReadClose("reopen while open", "r.txt", O_RDONLY, a + 1);
  OpenReadClose("reopen O_CLOEXEC", "r.txt", O_RDONLY | O_CLOEXEC, a + 1);
  // The lowest number: one freed below the next.
  int x = open("x.txt", O_RDWR | O_CREAT, 0644);
  int y = open("y.txt", O_RDWR | O_CREAT, 0644);
  close(x);
  OpenReadClose("reopen takes the freed number", "r.txt", O_RDONLY, x);
  close(y);
  // Access modes, each its own description with its own offset.
  int r = open("r.txt", O_RDONLY);
  Say("write through a read-only reopen", write(r, "x", 1));
  int w = open("r.txt", O_WRONLY);
  char c;
  Say("read through a write-only reopen", read(w, &c, 1));
  Say("write at its own offset 0", write(w, "J", 1));
  Say("read at r's own offset", read(r, &c, 1));
  printf("r read '%c'\n", c);
  close(r);
  close(w);
  int ap = open("r.txt", O_WRONLY | O_APPEND);
  Say("append through a reopen", write(ap, "!", 1));
  close(ap);
  OpenReadClose("after the append", "r.txt", O_RDONLY);
  Say("O_CREAT|O_EXCL of the open file", open("r.txt", O_RDWR | O_CREAT | O_EXCL, 0644));
  OpenReadClose("O_CREAT of the open file", "r.txt", O_RDWR | O_CREAT);
  OpenReadClose("O_TRUNC reopen", "r.txt", O_RDWR | O_TRUNC);
  struct stat st;
  Say("fstat of the first fd", fstat(a, &st));
  printf("size seen through the first fd: %lld\n", static_cast<long long>(st.st_size));
  Say("write again", pwrite(a, "second", 6, 0));
  close(a);
  // Closed now (lingering under tern): open, read, close, again and again.
  for (int i = 0; i < 3; ++i) OpenReadClose("reopen after close", "r.txt", O_RDONLY);
  // A name renamed over between two opens names the new file.
  int o = open("o.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
  Say("write the other", write(o, "other", 5));
  close(o);
  Say("rename over", rename("o.txt", "r.txt"));
  OpenReadClose("reopen after the rename", "r.txt", O_RDONLY);
  OpenReadClose("and again", "r.txt", O_RDONLY);
  struct stat named, opened;
  int n = open("r.txt", O_RDONLY);
  printf("same inode as the name: %d\n", fstat(n, &opened) == 0 && stat("r.txt", &named) == 0 &&
                                           opened.st_ino == named.st_ino);
  // Through /proc/self/fd of a reopened fd: the file again, at offset 0.
  std::string proc = "/proc/self/fd/" + std::to_string(n);
  OpenReadClose("open /proc/self/fd/N", proc.c_str(), O_RDONLY);
  close(n);
  // A removed name is gone for an open, whatever this process keeps.
  Say("unlink", unlink("r.txt"));
  OpenReadClose("reopen after unlink", "r.txt", O_RDONLY);
  OpenReadClose("O_CREAT after unlink", "r.txt", O_RDWR | O_CREAT);
  // A symlink to a file open here: followed, or refused with O_NOFOLLOW.
  int t = open("t.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
  Say("write the target", write(t, "target", 6));
  Say("symlink", symlink("t.txt", "link"));
  OpenReadClose("open the target again", "t.txt", O_RDONLY);
  OpenReadClose("through the link", "link", O_RDONLY);
  OpenReadClose("through the link, O_NOFOLLOW", "link", O_RDONLY | O_NOFOLLOW);
  // A second name: /proc/self/fd shows the name an fd was opened by.
  Say("hard link", link("t.txt", "hard.txt"));
  int h = open("hard.txt", O_RDONLY);
  char target[4096];
  std::string fd_link = "/proc/self/fd/" + std::to_string(h);
  ssize_t n_target = readlink(fd_link.c_str(), target, sizeof(target) - 1);
  std::string fd_names = n_target > 0 ? std::string(target, static_cast<size_t>(n_target)) : "<" + ErrName(errno) + ">";
  printf("opened through the second name, the fd names: %s\n", fd_names.substr(fd_names.rfind('/') + 1).c_str());
  close(h);
  close(t);
  printf("content: %s\n", ReadWhole("t.txt").c_str());
  return 0;
}

int RawFd() {
  int first = open("raw.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
  Say("write", write(first, "bytes", 5));
  for (int i = 0; i < 3; ++i) {  // the second and later opens find the file open here
    int fd = open("raw.txt", O_RDWR);
    char buf[8];
    Say("raw pread", syscall(SYS_pread64, fd, buf, sizeof(buf), 0));
    Say("raw pwrite", syscall(SYS_pwrite64, fd, "XX", 2, 0));
    Say("raw ftruncate", syscall(SYS_ftruncate, fd, 0));
    close(fd);
  }
  Say("raw pread of the first", syscall(SYS_pread64, first, nullptr, 0, 0));
  close(first);
  printf("content: %s\n", ReadWhole("raw.txt").c_str());
  return 0;
}

}  // namespace shim_probe
