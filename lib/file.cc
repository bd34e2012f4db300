#include "lib/file.h"

#include <fcntl.h>

#include "lib/file_core.h"
#include "lib/pool.h"

namespace tern {
namespace {
bool CanRead(int flags) { return (flags & O_ACCMODE) != O_WRONLY; }
bool CanWrite(int flags) { return (flags & O_ACCMODE) != O_RDONLY; }
}  // namespace

Result<std::unique_ptr<File>> File::Open(const std::string& path, int flags, mode_t mode,
                                         const struct stat* looked) {
  if ((flags & O_ACCMODE) == O_ACCMODE) return Status::Error(EINVAL, "bad access mode");
  if ((flags & O_TRUNC) && !CanWrite(flags)) {
    // Linux truncates even then; tern refuses rather than guess (the engine needs write access).
    return Status::Error(EACCES, "O_TRUNC on a read-only open");
  }
  TERN_ASSIGN_OR_RETURN(std::shared_ptr<FileCore> core, Pool::Default().OpenCore(path, flags, mode, looked));
  auto file = std::make_unique<File>(std::move(core), flags);
  if (flags & O_TRUNC) TERN_TRY(file->core().Truncate(0));
  return file;
}

File::File(std::shared_ptr<FileCore> core, int flags) : core_(std::move(core)), flags_(flags) {}
File::~File() = default;

Result<size_t> File::Pread(void* buf, size_t n, uint64_t offset) {
  if (!CanRead(flags_)) return Status::Error(EBADF, "file not open for reading");
  return core_->Read(buf, n, offset);
}

Result<size_t> File::WriteAt(const void* buf, size_t n, uint64_t offset, bool append, uint64_t* at) {
  auto written = core_->Write(buf, n, offset, append, at);
  // A full filesystem may be full of files deleted while they lingered open here (Pool): once
  // they are closed, their space is back. (A failed write changed nothing.)
  if (!written.ok() && written.status().err() == ENOSPC && Pool::Default().EndLingeringOfDeletedFiles()) {
    written = core_->Write(buf, n, offset, append, at);
  }
  return written;
}

Result<size_t> File::Pwrite(const void* buf, size_t n, uint64_t offset) {
  if (!CanWrite(flags_)) return Status::Error(EBADF, "file not open for writing");
  uint64_t at = 0;
  return WriteAt(buf, n, offset, (flags_ & O_APPEND) != 0, &at);
}

Result<uint64_t> File::Append(const void* buf, size_t n) {
  if (!CanWrite(flags_)) return Status::Error(EBADF, "file not open for writing");
  uint64_t at = 0;
  TERN_TRY(WriteAt(buf, n, 0, true, &at).status());
  return at;
}

Status File::Truncate(uint64_t size) {
  if (!CanWrite(flags_)) return Status::Error(EINVAL, "file not open for writing");
  return core_->Truncate(size);
}

Status File::Fallocate(int mode, uint64_t offset, uint64_t len) {
  if (!CanWrite(flags_)) return Status::Error(EBADF, "file not open for writing");
  return core_->Fallocate(mode, offset, len);
}

Result<uint64_t> File::Seek(int whence, uint64_t offset) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Status::Error(EINVAL, "bad whence");
  return core_->Seek(whence, offset);
}

Status File::Fsync() { return core_->Fsync(); }
Result<uint64_t> File::Size() { return core_->Size(); }
Status File::Stat(struct stat* st) { return core_->Stat(st); }
void File::NoteModified() { core_->NoteModified(); }

FileCounters File::Counters() const { return core_->Counters(); }

}  // namespace tern
