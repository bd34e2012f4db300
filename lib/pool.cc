#include "lib/pool.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <new>
#include <thread>

#include "lib/backing_cache.h"
#include "lib/process_id.h"
#include "lib/shared_state.h"
#include "lib/shared_state_spares.h"
#include "pmem/log.h"
#include <sys/stat.h>
#include <unistd.h>

namespace tern {
namespace {

// Jobs the background thread's queues hold without growing: one of each kind for a few files.
constexpr size_t kQueueRoom = 32;

}  // namespace

Pool& Pool::Default() {
  static Pool* pool = [] {
    auto* p = new Pool();  // never destroyed: files may be closed during exit
    pthread_atfork(&Pool::PrepareFork, &Pool::ParentAfterFork, &Pool::ChildAfterFork);
    return p;
  }();
  return *pool;
}

void Pool::Schedule(const std::shared_ptr<FileCore>& core, Job job) {
  std::lock_guard lock(gc_mu_);
  gc_queue_.emplace_back(core, job);
  StartThreadLocked();
  gc_cv_.notify_one();
}

void Pool::ScheduleAt(const std::shared_ptr<FileCore>& core, Job job, std::chrono::steady_clock::time_point due) {
  std::lock_guard lock(gc_mu_);
  delayed_.push_back({due, core, job});
  StartThreadLocked();
  gc_cv_.notify_one();
}

void Pool::PrepareForWrites(FileCore& core) {
  core.ReserveForWrites();
  std::lock_guard lock(gc_mu_);
  StartThreadLocked();
}

void Pool::StartThreadLocked() {
  if (!gc_thread_running_) {
    gc_thread_running_ = true;
    gc_queue_.reserve(kQueueRoom);
    delayed_.reserve(kQueueRoom);
    // No signal handler of the program runs on this thread: it holds engine locks, and its libc
    // calls bypass the shim, so a handler's open or write of a tern file there would wait for
    // itself or reach a backing file. It starts with every signal blocked (inherited), so none
    // can arrive before it could block them itself.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    std::thread([this] { GcThreadMain(); }).detach();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
}

std::atomic<void (*)()>& Pool::ThreadHook() {
  static std::atomic<void (*)()> hook{nullptr};
  return hook;
}

void SetEngineThreadHook(void (*hook)()) { Pool::ThreadHook().store(hook); }

void Pool::GcThreadMain() {
  // Runs for the life of the process; compactions never block the threads that asked for them.
  if (auto hook = ThreadHook().load()) hook();
  for (;;) {
    std::pair<std::weak_ptr<FileCore>, Job> next;
    {
      std::unique_lock lock(gc_mu_);
      for (;;) {
        auto now = std::chrono::steady_clock::now();
        auto earliest = std::chrono::steady_clock::time_point::max();
        for (auto it = delayed_.begin(); it != delayed_.end();) {
          if (it->due <= now) {
            gc_queue_.emplace_back(it->core, it->job);
            it = delayed_.erase(it);
          } else {
            earliest = std::min(earliest, it->due);
            ++it;
          }
        }
        if (!gc_queue_.empty()) break;
        if (delayed_.empty()) {
          gc_cv_.wait(lock);
        } else {
          gc_cv_.wait_until(lock, earliest);
        }
      }
      next = gc_queue_.front();
      gc_queue_.erase(gc_queue_.begin());
    }
    if (next.second == Job::kMakeSpare) {
      BackingCache::Default().MakeFreshSpare();
      continue;
    }
    if (next.second == Job::kReleaseBackings) {
      BackingCache::Default().ReleaseEvicted();
      continue;
    }
    if (next.second == Job::kEndLingering) {
      EndExpiredLingering();
      continue;
    }
    auto core = next.first.lock();
    if (core == nullptr) continue;
    if (next.second == Job::kAnnounceChange) {
      core->AnnounceOwedChange();
      continue;
    }
    if (next.second == Job::kGrowAhead) {
      // A file closed since it asked needs no space ahead (and its close would wait for the job).
      if (core.use_count() > 1) core->GrowAhead();
      core->grow_ahead_.scheduled.store(false);
      continue;
    }
    auto stats = core->Compact(FileCore::GcMode::kAuto);
    if (!stats.ok() && stats.status().err() != EBUSY) {
      TERN_LOG_WARN("%s: background compaction failed: %s", core->path().c_str(), stats.status().context());
    }
    core->compaction_scheduled_.store(false);
  }
}

void Pool::PrepareFork() {
  // Quiesce: no engine mutex may be held by a thread that will not exist in the child.
  Pool& pool = Default();
  pool.gc_mu_.lock();
  pool.mu_.lock();
  BackingCache::Default().LockForFork();
  SharedStateSpares::Default().LockForFork();
  // Before forking_ takes references: a file only the lingering list holds has one.
  pool.linger_only_at_fork_.clear();
  for (const Lingering& l : pool.lingering_) {
    if (l.core.use_count() == 1) pool.linger_only_at_fork_.push_back(l.core.get());
  }
  for (auto& [key, opened] : pool.cores_) {
    if (auto core = opened.core.lock()) pool.forking_.push_back(std::move(core));
  }
  for (auto& core : pool.forking_) core->LockForFork();
}

void Pool::ParentAfterFork() {
  Pool& pool = Default();
  // First: dropping forking_ may close a file, which hands its backing to the cache.
  BackingCache::Default().UnlockAfterFork();
  SharedStateSpares::Default().UnlockAfterFork();
  SharedState::NoteFork();  // objects mapped now may be the child's too: never kept as spares
  for (FileCore* core : pool.linger_only_at_fork_) core->NoteChildLeftItAlone();  // (except these)
  for (auto& core : pool.forking_) core->UnlockAfterFork();
  pool.forking_.clear();
  pool.linger_only_at_fork_.clear();
  pool.mu_.unlock();
  pool.gc_mu_.unlock();
}

void Pool::ChildAfterFork() {
  RefreshThisProcessId();  // before anything below takes a slot or names an object
  Pool& pool = Default();
  // First: the entries are the parent's; the files the child closes from here on are its own.
  BackingCache::Default().UnlockAfterFork();
  BackingCache::Default().ForgetInChild();
  SharedStateSpares::Default().UnlockAfterFork();
  SharedStateSpares::Default().ForgetInChild();
  SharedState::NoteFork();
  auto linger_only = [&pool](const FileCore* core) {
    return std::find(pool.linger_only_at_fork_.begin(), pool.linger_only_at_fork_.end(), core) !=
           pool.linger_only_at_fork_.end();
  };
  for (auto& core : pool.forking_) {
    core->UnlockAfterFork();
    if (linger_only(core.get())) {
      pool.cores_.erase({core->dev(), core->ino()});  // a later open here opens it anew
    } else {
      core->AfterForkInChild();
    }
  }
  // The others were in use at the fork: the child has them open too now, and its last close of
  // each closes it (no lingering: the child has no background thread until it needs one).
  for (Lingering& l : pool.lingering_) {
    if (linger_only(l.core.get())) pool.left_to_parent_.push_back(std::move(l.core));
  }
  pool.lingering_.clear();
  pool.linger_only_at_fork_.clear();
  pool.linger_scheduled_ = false;
  pool.forking_.clear();
  pool.mu_.unlock();
  // The GC thread did not come along; queued work is the parent's.
  for (auto& [weak, job] : pool.gc_queue_) {
    if (auto core = weak.lock()) {
      core->compaction_scheduled_.store(false);
      core->grow_ahead_.scheduled.store(false);
      core->announce_owed_.store(false);
    }
  }
  for (auto& delayed : pool.delayed_) {
    if (auto core = delayed.core.lock()) core->announce_owed_.store(false);
  }
  pool.gc_queue_.clear();
  pool.delayed_.clear();
  pool.gc_thread_running_ = false;
  // The parent's GC thread may have been waiting on the condition variable: the child's copy
  // still counts that waiter, and glibc's signal then waits for it to wake — forever (a child's
  // first write that schedules work hung). A fresh one; the old is not destroyed (that waits too).
  new (&pool.gc_cv_) std::condition_variable();
  pool.gc_mu_.unlock();
}

Result<std::shared_ptr<FileCore>> Pool::OpenCore(const std::string& path, int flags, mode_t mode,
                                                  const struct stat* looked) {
  bool want_write = (flags & O_ACCMODE) != O_RDONLY;
  uint64_t shared_state_failures = SharedState::Failures();
  bool exists = false;
  std::unique_ptr<Backing> kept;
  std::unique_ptr<KeptTable> kept_table;
  struct stat kept_st {};
  bool reopen = false;  // this process closed the file lately: it may linger (pool.h)
  struct stat seen {};   // the file the path named at the fast path's look, when seen_file
  bool seen_file = false;
  // Fast path: the file is open here already. The kernel still checks permission and existence
  // flags for this open: stat follows the path as open would (its walk checks the directories),
  // and faccessat the file's permission, unless it allowed the same already (AccessGrant).
  if ((flags & O_EXCL) == 0) {
    struct stat st;
    int rc = 0;
    if (looked == &kPathAbsent) {
      rc = -1;
    } else if (looked != nullptr) {
      st = *looked;
    } else {
      rc = (flags & O_NOFOLLOW) ? lstat(path.c_str(), &st) : stat(path.c_str(), &st);
    }
    exists = rc == 0;
    if (rc == 0 && S_ISREG(st.st_mode)) {
      seen = st;
      seen_file = st.st_size > 0;  // (an empty file is formatted by a writer, never read slotless)
      std::shared_ptr<FileCore> found;
      AccessGrant grant;
      {
        std::lock_guard lock(mu_);
        auto it = cores_.find({st.st_dev, st.st_ino});
        if (it != cores_.end()) {
          found = it->second.core.lock();
          grant = it->second.grant;
        }
      }
      int access = want_write ? ((flags & O_ACCMODE) == O_WRONLY ? W_OK : R_OK | W_OK) : R_OK;
      // The kernel's permission check, unless it said yes to this file as it is now already.
      auto allowed = [&](int wanted) {
        if (grant.Covers(st, wanted)) return true;
        if (faccessat(AT_FDCWD, path.c_str(), wanted, AT_EACCESS) != 0) return false;
        std::lock_guard lock(mu_);
        auto it = cores_.find({st.st_dev, st.st_ino});
        if (it != cores_.end()) it->second.grant.Add(st, wanted);
        return true;
      };
      if (found != nullptr && (!want_write || found->writable()) && allowed(access)) {
        if (want_write) PrepareForWrites(*found);
        NoteOpened(found, /*reopen=*/true);
        return found;
      }
      // Closed here last, its Backing kept and the inode unchanged since: no open(2) is needed.
      // It was opened read-write (kept Backings are), which open would do now too if allowed.
      if (found == nullptr) {
        kept = BackingCache::Default().TakeUnchanged(st, &kept_table, &reopen);
        if (kept != nullptr && !allowed(R_OK | W_OK)) kept.reset();
        kept_st = st;
      }
    }
  }
  // A first open here needs a shared-state object, and the close of a lingering file would leave
  // one for reuse (SharedStateSpares): with none waiting, a lingering file that somebody deleted
  // (nothing can reopen it) closes first. A shell that writes, reads back and `rm`s file after
  // file so reuses each one's object as it did before lingering.
  if (linger_enabled_.load(std::memory_order_relaxed)) EndDeletedLingeringForSharedState();
  // A new file may take a spare backing file (BackingCache): it is then an existing empty tern
  // file whose Backing the open uses as it is (O_EXCL has been honoured by the placement).
  bool placed = false;
  if ((flags & O_CREAT) && !exists) {
    kept = BackingCache::Default().PlaceSpare(path, mode, &kept_st);
    placed = kept != nullptr;
    if (placed) flags &= ~O_EXCL;
    if (BackingCache::Default().WantsFreshSpare()) Schedule(nullptr, Job::kMakeSpare);
  }
  // Backings of files closed long ago that the cache let go: parked and released in the background.
  if (BackingCache::Default().WantsRelease()) Schedule(nullptr, Job::kReleaseBackings);
  FileCore::Slotless slotless = FileCore::Slotless::kNever;
  if (!want_write && kept == nullptr && seen_file && slotless_first_reads_.load(std::memory_order_relaxed)) {
    std::lock_guard lock(mu_);
    if (FirstReadLocked(seen.st_dev, seen.st_ino)) slotless = FileCore::Slotless::kIfOpenNowhereElse;
  }
  auto opened = kept != nullptr ? FileCore::OpenWith(path, flags, std::move(kept), kept_st, std::move(kept_table), placed)
                                : FileCore::Open(path, flags, mode, slotless);
  // A file unlinked (or replaced) between FileCore::Open's open(2) and its lock: open again.
  for (int retry = 0; retry < kMaxStaleRetries && !opened.ok() && opened.status().err() == ESTALE; ++retry) {
    opened = FileCore::Open(path, flags, mode, slotless);
  }
  // A reader whose open could not make, grow or open the shared state (its directory full or
  // missing, the object not its to write) reads without it, as one that may not write the file does.
  if (!opened.ok() && !want_write && SharedState::Failures() != shared_state_failures) {
    opened = FileCore::Open(path, flags, mode, FileCore::Slotless::kAlways);
  }
  TERN_ASSIGN_OR_RETURN(std::shared_ptr<FileCore> core, std::move(opened));
  if (want_write) PrepareForWrites(*core);
  {
    std::lock_guard lock(mu_);
    cores_[{core->dev(), core->ino()}].core = core;  // (a grant holds as long as the file is unchanged)
    // Drop entries whose files were all closed.
    std::erase_if(cores_, [](const auto& kv) { return kv.second.core.expired(); });
  }
  NoteOpened(core, reopen);
  return core;
}

bool Pool::IsOpenHere(dev_t dev, ino_t ino) {
  std::lock_guard lock(mu_);
  auto it = cores_.find({dev, ino});
  return it != cores_.end() && !it->second.core.expired();
}

void Pool::EnableSlotlessFirstReads() { slotless_first_reads_.store(true); }

bool Pool::FirstReadLocked(dev_t dev, ino_t ino) {
  std::pair<dev_t, ino_t> id{dev, ino};
  for (auto& remembered : read_once_) {
    if (remembered == id) {
      remembered = {};
      return false;
    }
  }
  read_once_[read_once_next_] = id;
  read_once_next_ = (read_once_next_ + 1) % kReadOnceRemembered;
  return true;
}

Result<std::shared_ptr<FileCore>> Pool::AttachedFor(const FileCore& core) {
  {
    std::lock_guard lock(mu_);
    auto it = cores_.find({core.dev(), core.ino()});
    if (it != cores_.end()) {
      if (std::shared_ptr<FileCore> found = it->second.core.lock(); found != nullptr && found->attached()) return found;
    }
  }
  // Only where an open for writing could attach: a reader without write permission stays slotless.
  if (faccessat(AT_FDCWD, core.path().c_str(), R_OK | W_OK, AT_EACCESS) != 0) {
    return Status::Error(ENOTSUP, "no attached open of a file this process may not write");
  }
  TERN_ASSIGN_OR_RETURN(std::shared_ptr<FileCore> opened, FileCore::Open(core.path(), O_RDONLY, 0));
  if (!opened->attached() || opened->dev() != core.dev() || opened->ino() != core.ino()) {
    return Status::Error(ENOTSUP, "the path no longer names the file, or it cannot be attached");
  }
  std::lock_guard lock(mu_);
  cores_[{opened->dev(), opened->ino()}].core = opened;
  return opened;
}

void Pool::EnableLinger(std::chrono::milliseconds linger_for) {
  std::lock_guard lock(mu_);
  linger_for_ = linger_for;
  // A job due for files no longer lingering ends nothing; files lingering from now schedule theirs.
  if (lingering_.empty()) linger_scheduled_ = false;
  linger_enabled_.store(true);
}

void Pool::NoteOpened(const std::shared_ptr<FileCore>& core, bool reopen) {
  if (!reopen || !linger_enabled_.load(std::memory_order_relaxed) || !core->attached()) return;
  std::shared_ptr<FileCore> pushed_out;  // closed after the lock is released
  bool schedule = false;
  std::chrono::steady_clock::time_point until;
  {
    std::lock_guard lock(mu_);
    until = std::chrono::steady_clock::now() + linger_for_;
    auto it = std::find_if(lingering_.begin(), lingering_.end(), [&](const Lingering& l) { return l.core == core; });
    if (it != lingering_.end()) {
      it->until = until;
    } else {
      if (lingering_.size() >= kMaxLingering) {
        auto oldest = std::min_element(lingering_.begin(), lingering_.end(),
                                       [](const Lingering& a, const Lingering& b) { return a.until < b.until; });
        pushed_out = std::move(oldest->core);
        lingering_.erase(oldest);
      }
      lingering_.push_back({core, until});
    }
    schedule = !linger_scheduled_;
    linger_scheduled_ = true;
  }
  // (gc_mu_ is never taken under mu_: fork's prepare handler takes them the other way round.)
  if (schedule) ScheduleAt(nullptr, Job::kEndLingering, until);
}

template <typename Pick>
std::vector<std::shared_ptr<FileCore>> Pool::TakeLingeringLocked(Pick&& pick, size_t most) {
  std::vector<std::shared_ptr<FileCore>> taken;
  std::erase_if(lingering_, [&](Lingering& l) {
    if (taken.size() >= most || !pick(l)) return false;
    taken.push_back(std::move(l.core));
    return true;
  });
  return taken;
}

void Pool::EndExpiredLingering() {
  std::vector<std::shared_ptr<FileCore>> ending;  // closed after the lock is released
  auto now = std::chrono::steady_clock::now();
  auto next = std::chrono::steady_clock::time_point::max();
  {
    std::lock_guard lock(mu_);
    ending = TakeLingeringLocked([&](const Lingering& l) {
      if (l.until <= now) return true;
      next = std::min(next, l.until);
      return false;
    });
    linger_scheduled_ = !lingering_.empty();
  }
  if (next != std::chrono::steady_clock::time_point::max()) ScheduleAt(nullptr, Job::kEndLingering, next);
}

void Pool::EndDeletedLingeringForSharedState() {
  std::vector<std::shared_ptr<FileCore>> ending;  // closed after the lock is released
  std::lock_guard lock(mu_);
  if (lingering_.empty() || SharedStateSpares::Default().counts().spares != 0) return;
  ending = TakeLingeringLocked(
      [](const Lingering& l) { return l.core.use_count() == 1 && l.core->BackingUnlinked(); }, 1);
}

void Pool::EndLinger(dev_t dev, ino_t ino) {
  std::vector<std::shared_ptr<FileCore>> ending;  // closed after the lock is released
  std::lock_guard lock(mu_);
  ending = TakeLingeringLocked([&](const Lingering& l) { return l.core->dev() == dev && l.core->ino() == ino; }, 1);
}

void Pool::EndAllLingering(DropMode mode) {
  std::vector<Lingering> ending;  // closed after the lock is released
  auto lock = LockToDrop(mu_, mode);
  if (lock.owns_lock()) ending.swap(lingering_);
}

bool Pool::EndLingeringOfDeletedFiles() {
  std::vector<std::shared_ptr<FileCore>> ending;  // closed after the lock is released
  std::lock_guard lock(mu_);
  ending = TakeLingeringLocked([](const Lingering& l) { return l.core->BackingUnlinked(); });
  return !ending.empty();
}

size_t Pool::LingeringCount() {
  std::lock_guard lock(mu_);
  return lingering_.size();
}

}  // namespace tern
