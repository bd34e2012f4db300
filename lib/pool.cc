#include "lib/pool.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tern {

Pool& Pool::Default() {
  static Pool* pool = [] {
    auto* p = new Pool();  // never destroyed: files may be closed during exit
    pthread_atfork(&Pool::PrepareFork, &Pool::ParentAfterFork, &Pool::ChildAfterFork);
    return p;
  }();
  return *pool;
}

void Pool::PrepareFork() {
  // Quiesce: no engine mutex may be held by a thread that will not exist in the child.
  Pool& pool = Default();
  pool.mu_.lock();
  for (auto& [key, weak] : pool.cores_) {
    if (auto core = weak.lock()) pool.forking_.push_back(std::move(core));
  }
  for (auto& core : pool.forking_) core->LockForFork();
}

void Pool::ParentAfterFork() {
  Pool& pool = Default();
  for (auto& core : pool.forking_) core->UnlockAfterFork();
  pool.forking_.clear();
  pool.mu_.unlock();
}

void Pool::ChildAfterFork() {
  Pool& pool = Default();
  for (auto& core : pool.forking_) {
    core->UnlockAfterFork();
    core->AfterForkInChild();
  }
  pool.forking_.clear();
  pool.mu_.unlock();
}

Result<std::shared_ptr<FileCore>> Pool::OpenCore(const std::string& path, int flags, mode_t mode) {
  bool want_write = (flags & O_ACCMODE) != O_RDONLY;
  // Fast path: the file is open here already. The kernel still checks permission and existence
  // flags for this open: stat follows the path as open would.
  if ((flags & O_EXCL) == 0) {
    struct stat st;
    int rc = (flags & O_NOFOLLOW) ? lstat(path.c_str(), &st) : stat(path.c_str(), &st);
    if (rc == 0 && S_ISREG(st.st_mode)) {
      std::shared_ptr<FileCore> found;
      {
        std::lock_guard lock(mu_);
        auto it = cores_.find({st.st_dev, st.st_ino});
        if (it != cores_.end()) found = it->second.lock();
      }
      int access = want_write ? ((flags & O_ACCMODE) == O_WRONLY ? W_OK : R_OK | W_OK) : R_OK;
      if (found != nullptr && (!want_write || found->writable()) && faccessat(AT_FDCWD, path.c_str(), access, AT_EACCESS) == 0) {
        return found;
      }
    }
  }
  TERN_ASSIGN_OR_RETURN(std::shared_ptr<FileCore> core, FileCore::Open(path, flags, mode));
  std::lock_guard lock(mu_);
  cores_[{core->dev(), core->ino()}] = core;
  // Drop entries whose files were all closed.
  std::erase_if(cores_, [](const auto& kv) { return kv.second.expired(); });
  return core;
}

}  // namespace tern
