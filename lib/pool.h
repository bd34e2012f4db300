// The Pool: this process's registry of open tern files, so that two opens of one file share one
// FileCore (one block table, one replay). Keyed by (device, inode), so renames and hard links find
// the same engine and a file recreated at the same path gets a new one.
// Thread-safe.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "lib/file_core.h"
#include "lib/status.h"

namespace tern {

class Pool {
 public:
  static Pool& Default();

  // Opens the FileCore for path, reusing this process's open one for the same file when it can
  // serve the requested access. Errors as File::Open.
  Result<std::shared_ptr<FileCore>> OpenCore(const std::string& path, int flags, mode_t mode);

 private:
  std::mutex mu_;
  std::map<std::pair<dev_t, ino_t>, std::weak_ptr<FileCore>> cores_;  // guarded by mu_
};

}  // namespace tern
