// The Pool: this process's registry of open tern files, so that two opens of one file share one
// FileCore (one block table, one replay). Keyed by (device, inode), so renames and hard links find
// the same engine and a file recreated at the same path gets a new one.
// Thread-safe.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "lib/file_core.h"
#include "lib/status.h"

namespace tern {

class Pool {
 public:
  // The process's pool. The first call installs pthread_atfork handlers that give a forked child
  // its own open file descriptions, slots and record arenas for every open file (DESIGN §5).
  static Pool& Default();

  // Opens the FileCore for path, reusing this process's open one for the same file when it can
  // serve the requested access. `looked` and errors as File::Open.
  Result<std::shared_ptr<FileCore>> OpenCore(const std::string& path, int flags, mode_t mode,
                                             const struct stat* looked = nullptr);

  // Background work for a file, run on this process's one background thread (started on first
  // use): log compaction, growing ahead of the allocator. The caller sets the file's matching
  // *_scheduled_ flag first; the thread clears it when done.
  // kAnnounceChange: a change announcement to inotify watchers that FileCore::NoteModified put off.
  // kMakeSpare: BackingCache::MakeFreshSpare; kReleaseBackings: BackingCache::ReleaseEvicted
  // (neither has a file: `core` is null).
  enum class Job { kCompact, kGrowAhead, kAnnounceChange, kMakeSpare, kReleaseBackings };
  void Schedule(const std::shared_ptr<FileCore>& core, Job job);
  // As Schedule, run no earlier than `due`.
  void ScheduleAt(const std::shared_ptr<FileCore>& core, Job job, std::chrono::steady_clock::time_point due);

 private:
  // What an open that may write does first, so that its writes allocate nothing (one may come from
  // a signal handler that interrupted malloc: shim/interruption_hold.h): the file's reservations
  // (FileCore::ReserveForWrites) and the background thread with room for its queues.
  void PrepareForWrites(FileCore& core);
  static void PrepareFork();
  static void ParentAfterFork();
  static void ChildAfterFork();

  void GcThreadMain();
  static constexpr int kMaxStaleRetries = 8;
 public:
  static std::atomic<void (*)()>& ThreadHook();
 private:

  std::mutex mu_;
  std::vector<std::shared_ptr<FileCore>> forking_;  // held between prepare and parent/child
  std::mutex gc_mu_;
  std::condition_variable gc_cv_;
  std::vector<std::pair<std::weak_ptr<FileCore>, Job>> gc_queue_;  // guarded by gc_mu_
  struct Delayed {
    std::chrono::steady_clock::time_point due;
    std::weak_ptr<FileCore> core;
    Job job;
  };
  std::vector<Delayed> delayed_;  // guarded by gc_mu_; moved to gc_queue_ when due
  void StartThreadLocked();       // REQUIRES: gc_mu_ held
  bool gc_thread_running_ = false;                 // guarded by gc_mu_
  std::map<std::pair<dev_t, ino_t>, std::weak_ptr<FileCore>> cores_;  // guarded by mu_
};

}  // namespace tern
