// The shim's process-wide state and the steps shared by several entry-point families: start-up,
// opening a path, and keeping stdin/stdout/stderr's FILE objects in step with fds 0–2.
#pragma once

#include <stdio.h>
#include <sys/types.h>

namespace tern::shim {

// Full initialisation (idempotent): real libc table, paths, fd table, offset region, fork
// handlers, adoption of inherited fds. Run by the library constructor.
void InitShim();
// True once InitShim finished; before that every entry point passes to the real libc.
bool ShimReady();

// open/openat for every flag combination: a tern file gets an O_PATH fd and a Desc; anything else
// is the real libc's open. Returns the fd or -1 with errno.
int ShimOpen(int dirfd, const char* path, int flags, mode_t mode);
// True when `path` is /dev/stdin, /dev/fd/N, /proc/self/fd/N or the like and that fd is a tern
// file: ShimOpen opens the tern file again (the kernel would open its backing file).
bool NamesTernFd(const char* path);
// dup2 with the table kept in step (also used by freopen).
int ShimDup2(int oldfd, int newfd);
// After the kernel handed out `fd` for something that is not a tern file: forget any stale entry
// and bring stdin/stdout/stderr back to their own streams when fd is 0–2.
void NoteKernelFd(int fd);
// After fd (0–2) started or stopped naming a tern file: the matching std stream goes through a
// cookie stream over the fd (glibc's stdio writes to fds 0–2 with internal calls the shim cannot
// see), or back to the original FILE.
void SyncStdStream(int fd);
// Records the original stdin/stdout/stderr FILE objects (constructor).
void CaptureStdStreams();
// fork: hold the stream registry's lock across fork (parent and child release it).
void StdioPrepareFork();
void StdioAfterFork();

// fds the engine opens are moved to the internal range and remembered (see fd_table.h).
int TrackEngineFd(int fd, int flags);

// Turns the inherited O_PATH fds of tern files into descriptions (constructor).
void AdoptInheritedFds();

// The TERN_* settings this process started with (constructor), which exec and posix_spawn put
// back into a child's environment when it lost LD_PRELOAD (entry_exec.cc).
void NoteStartupSettings();

// Engine fork hooks bracket: makes the Pool's child handler run inside an EngineScope.
void InstallForkHandlers();

}  // namespace tern::shim
