// tern's public C++ API: a tern file opened by path.
//
// A tern file is a regular file whose bytes are tern's on-media format (doc/format/file.md): the
// logical content the application sees is served from a mapped log of copy-on-write blocks.
// Every Pwrite/Append/Truncate is atomic against crashes and concurrent readers; Fsync makes
// everything committed before it durable.
//
// Thread-safety: a File may be used by many threads at once; several Files (in one or many
// processes) may have the same path open. Two opens of one path in a process share one engine
// object (FileCore) through the Pool.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "lib/status.h"

namespace tern {

// File::Open's `looked` for a name the caller found absent (ENOENT from lstat(2)).
inline const struct stat kPathAbsent {};

class FileCore;

struct FileCounters {
  uint64_t commits;
  uint64_t conflicts;
  uint64_t recopies;
  uint64_t read_retries;
};

// What one log compaction did.
struct CompactStats {
  uint64_t entries_before;    // log entries past the previous checkpoint
  uint64_t entries_after;     // log entries past the new checkpoint when it was published
  uint64_t log_blocks_after;  // log blocks still in the chain
  uint32_t checkpoint_runs;   // runs in the new checkpoint (0: nothing was compacted)
  uint64_t checkpoint_position;  // log position the new checkpoint stands for (0: none written)
  bool drained;               // old operations finished in time, so old blocks were freed
  uint64_t blocks_freed;
};

// Called first on every thread the engine starts (its one background thread, which compacts logs
// and grows files ahead of writers), before it touches any file. The shim sets it so the thread's
// own libc calls bypass interposition. Set it before opening files; nullptr means none.
void SetEngineThreadHook(void (*hook)());

class File {
 public:
  // Opens (or with O_CREAT creates) the tern file at `path`. Honours O_RDONLY/O_WRONLY/O_RDWR,
  // O_CREAT, O_EXCL, O_TRUNC, O_APPEND (Write then always appends), O_NOFOLLOW; `mode` as open(2).
  // Errors: the errno open(2) would give (ENOENT, EEXIST, EACCES, EISDIR…); kNotTernFile when the
  // path is an existing file that is not a tern file (it is left untouched), or an empty file opened
  // read-only; EUCLEAN when it is a damaged tern file (a log line names file and cause); EINVAL for
  // bad flags.
  // `looked`, when given, is what stat(2) of path (lstat(2) with O_NOFOLLOW) returned to the caller
  // just before, or &kPathAbsent when lstat(2) found no such name; the open uses it instead of
  // looking again. A file changed since then is found under the open lock as with any other race,
  // and the open starts over.
  static Result<std::unique_ptr<File>> Open(const std::string& path, int flags, mode_t mode = 0644,
                                            const struct stat* looked = nullptr);

  File(std::shared_ptr<FileCore> core, int flags);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // Reads up to n bytes at offset; returns the number read (0 at or past EOF). Holes read as zeros.
  // EBADF if not opened for reading.
  Result<size_t> Pread(void* buf, size_t n, uint64_t offset);
  // Writes n bytes at offset (at EOF, atomically, when opened with O_APPEND); returns n.
  // EBADF if not opened for writing; EFBIG past the 1 TiB limit; ENOSPC when the backing
  // filesystem is full. Volatile until Fsync (atomic either way).
  Result<size_t> Pwrite(const void* buf, size_t n, uint64_t offset);
  // Writes n bytes at the end of the file, atomically; returns the offset they were written at.
  Result<uint64_t> Append(const void* buf, size_t n);
  // Sets the size. Shrinking frees the blocks past the end; growing leaves a hole that reads as zeros.
  Status Truncate(uint64_t size);
  // fallocate(2): modes 0 and KEEP_SIZE (grow the size; blocks are allocated at write time),
  // PUNCH_HOLE|KEEP_SIZE and ZERO_RANGE[|KEEP_SIZE]; EOPNOTSUPP for other modes, EBADF if not
  // open for writing.
  Status Fallocate(int mode, uint64_t offset, uint64_t len);
  // lseek(2) SEEK_DATA / SEEK_HOLE (holes are unmapped blocks); ENXIO at or past EOF.
  Result<uint64_t> Seek(int whence, uint64_t offset);
  // Makes every commit before it durable (on this node).
  Status Fsync();
  // Logical size in bytes.
  Result<uint64_t> Size();
  // stat of the backing file with the logical size, and blocks counted from the blocks mapped.
  Status Stat(struct stat* st);

  // Tells inotify watchers of the file (tail -f, build watchers) that it changed: IN_MODIFY on the
  // backing file, which stores through the engine's mapping never produce. At once when the last
  // announcement is 10 ms old, else when that window closes (the background thread), so that a
  // stream of writes costs at most 100 system calls a second. Changes nothing in the file.
  void NoteModified();

  FileCounters Counters() const;
  int flags() const { return flags_; }
  FileCore& core() const { return *core_; }

 private:
  Result<size_t> WriteAt(const void* buf, size_t n, uint64_t offset, bool append, uint64_t* at);

  std::shared_ptr<FileCore> core_;
  int flags_;
};

}  // namespace tern
