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

#include "lib/access_grant.h"
#include "lib/drop_mode.h"
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
  // Whether the file (dev, ino) is open here (in use, or lingering): an open of it then takes
  // OpenCore's fast path, unless it closes meanwhile. MayHaveOpenFiles false: nothing is (it
  // costs one load, for callers that would stat a name only to ask IsOpenHere).
  bool IsOpenHere(dev_t dev, ino_t ino);
  static bool MayHaveOpenFiles() { return FileCore::LiveCount() != 0; }

  // Background work for a file, run on this process's one background thread (started on first
  // use): log compaction, growing ahead of the allocator. The caller sets the file's matching
  // *_scheduled_ flag first; the thread clears it when done.
  // kAnnounceChange: a change announcement to inotify watchers that FileCore::NoteModified put off.
  // kMakeSpare: BackingCache::MakeFreshSpare; kReleaseBackings: BackingCache::ReleaseEvicted
  // (neither has a file: `core` is null).
  // kEndLingering: EndExpiredLingering (no file either).
  enum class Job { kCompact, kGrowAhead, kAnnounceChange, kMakeSpare, kReleaseBackings, kEndLingering };
  void Schedule(const std::shared_ptr<FileCore>& core, Job job);
  // As Schedule, run no earlier than `due`.
  void ScheduleAt(const std::shared_ptr<FileCore>& core, Job job, std::chrono::steady_clock::time_point due);

  // Lingering (off until EnableLinger; the shim turns it on). A file this process opens again (it
  // closed it lately, or has it open) stays open here after its last user closes it: until
  // kLingerFor after its last open (the background thread then closes it), until it is deleted
  // and a first open of another file needs its shared state (none waits for reuse), or until
  // kMaxLingering newer ones push it out. Opening a lingering file finds it open: a stat (and an
  // access check, unless AccessGrant holds) instead of the open and close protocols' dozen system
  // calls (the open lock, the slot, the shared state's publication, FileCore's destructor). A
  // shell appending to a log line by line, or a program that reads a file again and again,
  // reopens that way. Files opened once never linger: a process that reads a file and ends, or
  // writes file after file, closes as before (and starts no background thread for it). To every
  // other process a lingering file looks open here, as it did a moment before. Only files this
  // process is attached to as a writer linger (FileCore::attached: their close releases its locks
  // explicitly, which fork's handling below relies on). `linger_for` other than kLingerFor is for
  // tests (a slow machine must not end a lingering file a test expects open); it holds for files
  // that begin to linger after the call.
  void EnableLinger(std::chrono::milliseconds linger_for = kLingerFor);
  // Reading without joining (off until EnableSlotlessFirstReads; the shim turns it on). A read-only
  // open of an existing file that no other process has open, and that this process neither has
  // open, nor kept from a close, nor read this way lately (the last kReadOnceRemembered such
  // files) reads it slotless, as a process without write permission does (file_core_readonly.cc):
  // no shared-state object to create or attach, no slot, no publication and no last-close
  // protocol — most of a new process's first open (`cat`, a compiler's headers, a script's input).
  // What it costs: a writer that opens the file while such a reader has it frees none of its log
  // blocks until the reader closes (open_lock.h; a file open elsewhere, such as a log its daemon
  // keeps open, is therefore read attached), and a mapping pins blocks through an attached open
  // (AttachedFor). An open for writing, and a second read-only open of a file read this way
  // lately, open as before, so a file read again and again lingers as before.
  void EnableSlotlessFirstReads();
  // An attached engine for the file `core` serves slotless: the one open here, or a new read-only
  // open of core.path() when that still names the same file and this process may write it
  // (registered, so later opens here find it). ENOTSUP when there is none to be had.
  Result<std::shared_ptr<FileCore>> AttachedFor(const FileCore& core);
  static constexpr size_t kReadOnceRemembered = 32;

  // The file (dev, ino) stops lingering and closes now if nobody here has it open: its name is
  // about to go (unlink), and a closed file's backing can be recycled (BackingCache::Retire).
  void EndLinger(dev_t dev, ino_t ino);
  // Every lingering file closes now (exit, exec: the close protocol leaves no published state
  // behind). At kImmediateExit only if the pool's lock comes free within a moment.
  void EndAllLingering(DropMode mode = DropMode::kRelease);
  // The background job (Job::kEndLingering): closes the files whose time is up.
  void EndExpiredLingering();
  // A write found the filesystem full: files deleted since they began to linger here close now
  // (their space goes back). True if any did. The caller holds no engine lock.
  bool EndLingeringOfDeletedFiles();
  // How many files linger now (tests).
  size_t LingeringCount();
  static constexpr size_t kMaxLingering = 16;
  static constexpr std::chrono::milliseconds kLingerFor{250};

 private:
  // After a successful OpenCore: `core`, when `reopen`, lingers for linger_for_ from now; the file
  // that pushes out, if any, closes.
  void NoteOpened(const std::shared_ptr<FileCore>& core, bool reopen);
  // Moves the cores of the lingering files `pick` accepts (at most `most`, in list order) out of
  // the list; the caller drops them after releasing mu_, which closes those nobody else uses.
  // REQUIRES: mu_ held.
  template <typename Pick>
  std::vector<std::shared_ptr<FileCore>> TakeLingeringLocked(Pick&& pick, size_t most = SIZE_MAX);
  // Before a first open here, when no shared-state object waits for reuse: closes a lingering file
  // that nobody here uses and whose name is gone, whose close leaves one.
  void EndDeletedLingeringForSharedState();
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
  struct Opened {
    std::weak_ptr<FileCore> core;
    AccessGrant grant;  // what the kernel last allowed an open of it here (faccessat)
  };
  std::map<std::pair<dev_t, ino_t>, Opened> cores_;  // guarded by mu_
  struct Lingering {
    std::shared_ptr<FileCore> core;
    std::chrono::steady_clock::time_point until;
  };
  std::atomic<bool> slotless_first_reads_{false};
  // The files (dev, ino) whose last read-only open here was a first read (slotless unless open
  // elsewhere), newest at read_once_next_ - 1.
  std::pair<dev_t, ino_t> read_once_[kReadOnceRemembered]{};  // guarded by mu_
  size_t read_once_next_ = 0;                                 // guarded by mu_
  // Whether a read-only open of (dev, ino) reads slotless: true, and remembered, unless it was
  // read so lately (then forgotten: this open attaches). REQUIRES: mu_ held.
  bool FirstReadLocked(dev_t dev, ino_t ino);
  std::atomic<bool> linger_enabled_{false};
  std::vector<Lingering> lingering_;                  // guarded by mu_
  bool linger_scheduled_ = false;                     // guarded by mu_: a kEndLingering job is due
  std::chrono::milliseconds linger_for_{kLingerFor};  // guarded by mu_
  // fork: files only lingering (nobody here uses them) at the prepare handler. A child never
  // closes those: their locks live on open file descriptions it shares with the parent, and
  // FileCore's destructor would release them for the parent too. The child forgets them instead,
  // here, never destroyed: copy-on-write memory and descriptors that exec or exit closes.
  std::vector<FileCore*> linger_only_at_fork_;             // guarded by mu_
  std::vector<std::shared_ptr<FileCore>> left_to_parent_;  // the child's; never destroyed
};

}  // namespace tern
