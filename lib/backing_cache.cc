#include "lib/backing_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "lib/file_core.h"
#include "lib/open_lock.h"
#include "lib/process_id.h"
#include "pmem/log.h"
#include "pmem/mapping.h"
#include "pmem/persist.h"

namespace tern {
namespace {

// This process's spare number `seq` in `dir`: the pid makes it ours; a sweep reads nothing else.
std::string SparePath(const std::string& dir, uint64_t seq) {
  char name[64];
  snprintf(name, sizeof(name), "/%d.%llu", static_cast<int>(ThisProcessId()), static_cast<unsigned long long>(seq));
  return dir + name;
}

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Removes a spare's name, unless it names another file by now.
void UnlinkSpareName(const std::string& spare_path, dev_t dev, ino_t ino) {
  if (PathNames(spare_path, false, dev, ino)) (void)unlink(spare_path.c_str());
}

}  // namespace

bool PathNames(const std::string& path, bool follow, dev_t dev, ino_t ino) {
  struct stat st;
  int rc = follow ? stat(path.c_str(), &st) : lstat(path.c_str(), &st);
  return rc == 0 && st.st_dev == dev && st.st_ino == ino;
}

BackingCache& BackingCache::Default() {
  static auto* cache = new BackingCache();  // never destroyed: files may close during exit
  return *cache;
}

void BackingCache::Enable(std::string spare_dir, mode_t umask) {
  std::lock_guard lock(mu_);
  enabled_ = true;
  spare_dir_ = std::move(spare_dir);
  swept_ = false;
  unplaced_ = 0;
  making_ = 0;  // fresh spares asked for before are not made (MakeFreshSpare)
  ++generation_;
  umask_ = umask;
}

bool BackingCache::enabled() const {
  std::lock_guard lock(mu_);
  return enabled_;
}

void BackingCache::SetUmask(mode_t umask) {
  std::lock_guard lock(mu_);
  umask_ = umask;
}

void BackingCache::TrimLocked(std::list<Entry>& list, size_t max_entries, uint64_t max_bytes,
                              std::vector<Entry>* dropped) {
  uint64_t bytes = 0;
  size_t kept = 0;
  for (auto it = list.begin(); it != list.end();) {
    bytes += it->backing->mapped_blocks() * kBlockSize;
    if (++kept <= max_entries && bytes <= max_bytes) {
      ++it;
      continue;
    }
    dropped->push_back(std::move(*it));
    it = list.erase(it);
  }
}

bool BackingCache::KeepableLocked(const Backing& backing) const {
  return enabled_ && backing.writable() && backing.mapped_blocks() * kBlockSize <= kMaxBackingBytes;
}

std::list<BackingCache::Entry>::iterator BackingCache::FindClosedLocked(dev_t dev, ino_t ino) {
  return std::find_if(closed_.begin(), closed_.end(), [&](const Entry& e) { return e.dev == dev && e.ino == ino; });
}

bool BackingCache::WouldKeep(const Backing& backing) const {
  std::lock_guard lock(mu_);
  return KeepableLocked(backing);
}

void BackingCache::Put(dev_t dev, ino_t ino, std::unique_ptr<Backing> backing, std::unique_ptr<KeptTable> table) {
  Unlock(backing->fd());  // closed for everyone else now, exactly as a close(2) would make it
  struct stat st;
  // A file already deleted (by someone else, or renamed over) is of no use, and would hold its space.
  bool linked = fstat(backing->fd(), &st) == 0 && st.st_nlink > 0;
  std::vector<Entry> dropped;
  std::vector<Entry> trimmed;  // their Backings wait in evicted_; their tables go below
  {
    std::lock_guard lock(mu_);
    if (!linked || !KeepableLocked(*backing)) {
      dropped.push_back({dev, ino, std::move(backing), {}});
    } else {
      // Two engines of one inode (a read-only one, then a writable one) close one after the other.
      if (auto it = FindClosedLocked(dev, ino); it != closed_.end()) {
        dropped.push_back(std::move(*it));
        closed_.erase(it);
      }
      closed_.push_front({dev, ino, std::move(backing), {}, st.st_ctim, std::move(table)});
      TrimLocked(closed_, kMaxClosed, kMaxClosedBytes, &trimmed);
      for (Entry& e : trimmed) evicted_.push_back(std::move(e.backing));
      has_evicted_.store(evicted_.size() >= kReleaseBatch, std::memory_order_relaxed);
    }
  }
  // Unmapped and closed (and kept tables freed) outside the lock.
}

std::unique_ptr<Backing> BackingCache::Take(dev_t dev, ino_t ino, uint64_t file_bytes, bool writable) {
  std::unique_ptr<Backing> found;
  {
    std::lock_guard lock(mu_);
    auto it = FindClosedLocked(dev, ino);
    if (it == closed_.end()) return nullptr;
    found = std::move(it->backing);
    closed_.erase(it);
    if (found->writable() == writable && found->mapped_blocks() * kBlockSize <= file_bytes) {
      ++adopted_;
      return found;
    }
  }
  return nullptr;  // unusable: unmapped and closed here
}

std::unique_ptr<Backing> BackingCache::TakeUnchanged(const struct stat& st, std::unique_ptr<KeptTable>* table,
                                                    bool* closed_here) {
  std::lock_guard lock(mu_);
  auto it = FindClosedLocked(st.st_dev, st.st_ino);
  *closed_here = it != closed_.end();
  if (it == closed_.end() || it->ctime.tv_sec != st.st_ctim.tv_sec || it->ctime.tv_nsec != st.st_ctim.tv_nsec ||
      it->backing->mapped_blocks() * kBlockSize > static_cast<uint64_t>(st.st_size)) {
    return nullptr;
  }
  std::unique_ptr<Backing> found = std::move(it->backing);
  *table = std::move(it->table);
  closed_.erase(it);
  ++adopted_;
  ++adopted_unchanged_;
  return found;
}

bool BackingCache::Retire(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 && Retire(path, st);
}

bool BackingCache::Retire(const std::string& path, const struct stat& st) {
  std::string spare_dir;
  Entry entry;
  uint64_t seq;
  {
    std::lock_guard lock(mu_);
    if (!enabled_ || path.starts_with(spare_dir_ + "/")) return false;
    spare_dir = spare_dir_;
  }
  if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != geteuid()) return false;
  {
    std::lock_guard lock(mu_);
    auto it = FindClosedLocked(st.st_dev, st.st_ino);
    if (it == closed_.end()) return false;
    entry = std::move(*it);
    closed_.erase(it);
    seq = next_spare_++;
  }
  entry.table.reset();  // a spare becomes a new file with a log of its own
  SweepOrphansOnce();
  int fd = entry.backing->fd();
  // Exclusive open lock: nobody (no other process, no other engine of this one) has it open, and
  // nobody can open it until the lock is let go.
  auto exclusive = TryLockExclusive(fd);
  if (!exclusive.ok() || !*exclusive) return false;
  struct stat dir_st;
  if ((mkdir(spare_dir.c_str(), 0700) != 0 && errno != EEXIST) || stat(spare_dir.c_str(), &dir_st) != 0 ||
      dir_st.st_dev != st.st_dev) {
    return false;  // entry destroyed: its file is about to be unlinked
  }
  entry.spare_path = SparePath(spare_dir, seq);
  if (rename(path.c_str(), entry.spare_path.c_str()) != 0) return false;
  if (!PathNames(entry.spare_path, false, st.st_dev, st.st_ino)) {
    // The name was replaced between the look and the rename: what it named is what unlink removes.
    (void)unlink(entry.spare_path.c_str());
    return true;
  }
  std::vector<Entry> dropped;
  {
    std::lock_guard lock(mu_);
    ++retired_;
    spares_.push_front(std::move(entry));
    TrimLocked(spares_, kMaxSpares, kMaxSpareBytes, &dropped);
  }
  for (const Entry& e : dropped) UnlinkSpareName(e.spare_path, e.dev, e.ino);
  return true;
}

Status BackingCache::MakeEmpty(Entry& spare, const std::string& path, mode_t mode, struct stat* made) {
  int fd = spare.backing->fd();
  struct stat dir_st, st;
  if (stat(DirOf(path).c_str(), &dir_st) != 0) return Status::Error(errno, "stat directory");
  if (dir_st.st_dev != spare.dev) return Status::Error(EXDEV, "spare on another filesystem");
  if (fstat(fd, &st) != 0) return Status::Error(errno, "fstat spare");
  // A created file's group: the directory's when it is set-group-ID, else the creator's.
  gid_t gid = (dir_st.st_mode & S_ISGID) ? dir_st.st_gid : getegid();
  if (st.st_gid != gid && fchown(fd, static_cast<uid_t>(-1), gid) != 0) return Status::Error(errno, "chown spare");
  mode_t wanted;
  {
    std::lock_guard lock(mu_);
    wanted = mode & 07777 & ~umask_;
    if ((wanted & 07000) == 0) last_created_mode_ = wanted;  // fresh spares get it (FreshSpareAt)
  }
  if ((st.st_mode & 07777) != wanted && fchmod(fd, wanted) != 0) return Status::Error(errno, "chmod spare");
  // Through the spare's mapping when block 0 is mapped (always, but for a failure to map it): two
  // system calls fewer than pwrite and fdatasync; persisted before the rename makes the file new.
  if (uint8_t* meta = spare.backing->BlockAddress(LogicalBlock(0)); meta != nullptr) {
    pmem::MetaBlock block;
    FileCore::MakeEmptyMeta(&block);
    pmem::CopyPersist(meta, &block, sizeof(block));
  } else {
    TERN_TRY(FileCore::WriteEmptyMeta(fd));
    if (fdatasync(fd) != 0) return Status::Error(errno, "sync spare");
  }
  if (futimens(fd, nullptr) != 0) return Status::Error(errno, "touch spare");
  *made = st;  // device, inode and size; the open reads the rest under its lock
  return Status::Ok();
}

std::unique_ptr<Backing> BackingCache::PlaceSpare(const std::string& path, mode_t mode, struct stat* st) {
  Entry spare;
  {
    std::lock_guard lock(mu_);
    if (!enabled_ || path.starts_with(spare_dir_ + "/")) return nullptr;
    if (spares_.empty()) {
      ++unplaced_;
      return nullptr;
    }
    spare = std::move(spares_.front());
    spares_.pop_front();
  }
  bool placed = false;
  bool keep = true;
  Status made = MakeEmpty(spare, path, mode, st);
  if (made.ok()) {
    if (renameat2(AT_FDCWD, spare.spare_path.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) {
      placed = true;
    } else if (errno == ENOENT && !PathNames(spare.spare_path, false, spare.dev, spare.ino)) {
      keep = false;  // somebody removed the spare itself
    }
  } else if (made.err() != EXDEV) {
    TERN_LOG_DEBUG("%s: spare not used: %s", path.c_str(), made.context());
  }
  if (placed) {
    // An ordinary empty tern file now, its open lock still held exclusively: the creating open
    // goes on from there (FileCore::OpenWith), and others may open it once that has downgraded it.
    std::lock_guard lock(mu_);
    ++(spare.fresh ? placed_fresh_ : placed_);
    return std::move(spare.backing);
  }
  if (keep) {
    std::lock_guard lock(mu_);
    spares_.push_front(std::move(spare));
  }
  return nullptr;
}

bool BackingCache::WantsFreshSpare() {
  std::lock_guard lock(mu_);
  size_t have = spares_.size() + making_;
  // Asked for in batches: each job wakes the background thread, which costs a creating thread
  // a few microseconds when it shares the CPUs.
  if (!enabled_ || unplaced_ < kFreshAfter || have >= kFreshLowWater) return false;
  making_ += kFreshSpares - have;
  return true;
}

void BackingCache::MakeFreshSpare() {
  while (MakeOneFreshSpare()) {
  }
}

bool BackingCache::MakeOneFreshSpare() {
  std::string dir;
  uint64_t seq, generation;
  mode_t mode;
  {
    std::lock_guard lock(mu_);
    if (making_ == 0) return false;  // all made, or asked for before Enable or DropSpares
    --making_;
    if (!enabled_ || spares_.size() >= kFreshSpares) return true;
    dir = spare_dir_;
    seq = next_spare_++;
    generation = generation_;
    making_now_ = true;
    mode = last_created_mode_;
  }
  SweepOrphansOnce();
  Entry spare = FreshSpareAt(dir, seq, mode);
  bool current;
  {
    std::lock_guard lock(mu_);
    making_now_ = false;
    current = generation == generation_;
    if (current && spare.backing != nullptr) {
      ++fresh_;
      spares_.push_back(std::move(spare));  // behind recycled ones: those hold space already
    }
  }
  idle_.notify_all();
  if (!current && spare.backing != nullptr) {  // DropSpares (or Enable) came meanwhile
    (void)unlink(spare.spare_path.c_str());
    (void)rmdir(dir.c_str());
  }
  return true;
}

BackingCache::Entry BackingCache::FreshSpareAt(const std::string& dir, uint64_t seq, mode_t mode) {
  Entry spare{0, 0, nullptr, SparePath(dir, seq)};
  spare.fresh = true;
  // The directory exists but for the first spare (and after DropSpares): made when missing.
  auto create = [&] { return open(spare.spare_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600); };
  int fd = create();
  if (fd < 0 && errno == ENOENT && (mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST)) fd = create();
  if (fd < 0) return spare;
  auto fail = [&](const char* what, int err) {
    TERN_LOG_DEBUG("%s: fresh spare not made: %s: %s", spare.spare_path.c_str(), what, strerror(err));
    (void)unlink(spare.spare_path.c_str());
    if (spare.backing == nullptr) close(fd);
    spare.backing.reset();
    return std::move(spare);
  };
  struct stat st;
  auto locked = TryLockExclusive(fd);  // held while it is a spare, as for any other
  if (!locked.ok() || !*locked || fstat(fd, &st) != 0) return fail("lock", errno);
  // The mode the next create most likely asks for, set here rather than on the creating thread
  // (the spare directory is the user's own, 0700, whatever the mode).
  if ((st.st_mode & 07777) != mode && fchmod(fd, mode) != 0) return fail("chmod", errno);
  if (int rc = pmem::GrowFile(fd, 0, kFirstBlocks * kBlockSize); rc != 0) return fail("grow", -rc);
  spare.dev = st.st_dev;
  spare.ino = st.st_ino;
  spare.backing = std::make_unique<Backing>(fd, true, static_cast<uint32_t>(st.st_ino), st.st_dev);
  LendRecycled(*spare.backing);
  if (Status mapped = spare.backing->EnsureMapped(kFirstBlocks); !mapped.ok()) return fail("map", mapped.err());
  // The first pages a new file uses (its meta block, the first blocks the allocator hands out),
  // touched, not just populated: under this VM's shadow paging MADV_POPULATE_WRITE still leaves the
  // creating thread ~45 µs of faults for two pages, a touch here leaves none. Each page costs this
  // thread ~12 µs, so only the first kFreshTouchedBytes: the meta block and the first blocks a
  // small file takes. (All 16 pages of a fresh backing: 830 files of a `tar x` 82 ms, 4 pages 77
  // ms; shim_bench create 90 vs 68 µs: the toucher's faults slow the creating thread too.)
  static_assert(kFreshTouchedBytes <= kFirstBlocks * kBlockSize, "touch only what a fresh spare has");
  pmem::TouchForWrite(spare.backing->BlockAddress(LogicalBlock(0)), kFreshTouchedBytes);
  return spare;
}

void BackingCache::SweepOrphansOnce() {
  std::string dir_path;
  {
    std::lock_guard lock(mu_);
    if (swept_) return;
    swept_ = true;
    dir_path = spare_dir_;
  }
  auto swept = SweepOrphans(dir_path);
  if (swept.ok() && *swept > 0) {
    TERN_LOG_INFO("%s: removed %llu spare files of processes that are gone", dir_path.c_str(),
                  static_cast<unsigned long long>(*swept));
  }
}

std::string BackingCache::SpareDirFor(const std::string& root, uid_t uid) {
  size_t slash = root.rfind('/');
  if (slash == std::string::npos || slash + 1 >= root.size()) return std::string();  // "/" or relative
  return root.substr(0, slash) + "/.tern-spares-" + std::to_string(uid);
}

Result<uint64_t> RemoveUnlockedFiles(const std::string& dir_path, bool (*wanted)(std::string_view name),
                                     const std::function<bool(const std::string& path, int fd, const struct stat& st)>& remove) {
  DIR* dir = opendir(dir_path.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return uint64_t{0};
    return Status::Error(errno, "open the directory to sweep");
  }
  uint64_t removed = 0;
  while (struct dirent* e = readdir(dir)) {
    if (!wanted(e->d_name)) continue;
    std::string path = dir_path + "/" + e->d_name;
    // Files of other users are theirs to sweep: opening them fails here.
    int fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) continue;
    struct stat st;
    auto free_lock = TryLockExclusive(fd);
    if (free_lock.ok() && *free_lock && fstat(fd, &st) == 0 && remove(path, fd, st)) ++removed;
    close(fd);
  }
  closedir(dir);
  return removed;
}

Result<uint64_t> UnlinkUnlockedFiles(const std::string& dir_path, bool (*wanted)(std::string_view name)) {
  return RemoveUnlockedFiles(dir_path, wanted, [](const std::string& path, int, const struct stat& st) {
    return PathNames(path, false, st.st_dev, st.st_ino) && unlink(path.c_str()) == 0;
  });
}

Result<uint64_t> BackingCache::SweepOrphans(const std::string& spare_dir) {
  return UnlinkUnlockedFiles(spare_dir, [](std::string_view name) { return name[0] != '.'; });
}

void BackingCache::DropSpares(DropMode mode) {
  if (mode == DropMode::kImmediateExit) {
    // Only the names go; nothing is allocated or freed (a signal handler may have interrupted
    // malloc), and a spare still being made is left to the orphan sweep.
    std::unique_lock lock = LockToDrop(mu_, mode);
    if (!lock.owns_lock()) return;
    ++generation_;
    making_ = 0;
    for (const Entry& e : spares_) UnlinkSpareName(e.spare_path, e.dev, e.ino);
    if (retired_ > 0 || fresh_ > 0) (void)rmdir(spare_dir_.c_str());
    return;
  }
  std::list<Entry> spares, closed;
  std::vector<std::unique_ptr<Backing>> evicted;
  std::vector<pmem::AddressRange> recycled;
  std::string dir;
  bool made_spares;
  {
    std::unique_lock lock(mu_);
    idle_.wait(lock, [&] { return !making_now_; });  // one being made would be left behind
    ++generation_;
    spares.swap(spares_);
    closed.swap(closed_);
    evicted.swap(evicted_);
    has_evicted_.store(false, std::memory_order_relaxed);
    TakeParkedLocked(&evicted);
    recycled.swap(recycled_);
    dir = spare_dir_;
    making_ = 0;
    made_spares = retired_ > 0 || fresh_ > 0;
    if (made_spares) {
      TERN_LOG_DEBUG("backing cache: %llu backings adopted again, %llu deleted files kept as spares, %llu new files "
                     "made of them, %llu made while none waited, %llu made of the %llu fresh spares made ahead",
                     static_cast<unsigned long long>(adopted_), static_cast<unsigned long long>(retired_),
                     static_cast<unsigned long long>(placed_), static_cast<unsigned long long>(unplaced_),
                     static_cast<unsigned long long>(placed_fresh_), static_cast<unsigned long long>(fresh_));
    }
  }
  for (const Entry& e : spares) UnlinkSpareName(e.spare_path, e.dev, e.ino);
  if (made_spares) (void)rmdir(dir.c_str());  // fails while other processes keep spares there
  if (mode == DropMode::kProcessExit) {
    // Deliberately never freed: the process takes the mappings and descriptors down itself.
    new std::list<Entry>(std::move(spares));
    new std::list<Entry>(std::move(closed));
    new std::vector<std::unique_ptr<Backing>>(std::move(evicted));
  } else {
    pmem::ReleaseAddressSpaces(recycled);
  }
}

bool BackingCache::ReleaseSpares() {
  std::list<Entry> spares, deleted;
  std::vector<std::unique_ptr<Backing>> parked;
  {
    std::unique_lock lock(mu_, std::try_to_lock);
    if (!lock.owns_lock()) return false;
    spares.swap(spares_);
    TakeParkedLocked(&parked);
    // A closed file another process deleted since lives on only in our descriptor and mapping.
    for (auto it = closed_.begin(); it != closed_.end();) {
      auto next = std::next(it);
      struct stat st;
      if (fstat(it->backing->fd(), &st) == 0 && st.st_nlink == 0) deleted.splice(deleted.end(), closed_, it);
      it = next;
    }
  }
  for (const Entry& e : spares) UnlinkSpareName(e.spare_path, e.dev, e.ino);
  bool released = !spares.empty() || !deleted.empty() || !parked.empty();
  RecycleParked(parked);  // their mappings go either way, and with them any deleted file's pages
  return released;  // the rest unmapped and closed as the lists go
}

void BackingCache::LockForFork() { mu_.lock(); }
void BackingCache::UnlockAfterFork() { mu_.unlock(); }

void BackingCache::ForgetInChild() {
  std::list<Entry> spares, closed;
  std::vector<std::unique_ptr<Backing>> evicted;
  {
    std::lock_guard lock(mu_);
    spares.swap(spares_);
    closed.swap(closed_);
    evicted.swap(evicted_);
    has_evicted_.store(false, std::memory_order_relaxed);
    release_asked_ = false;  // the parent's thread releases the parent's
    making_ = 0;  // the parent's background thread makes those, for the parent
    unplaced_ = 0;
    making_now_ = false;
  }
  // Destroying closes the child's descriptors: the parent's hold the open file descriptions (and
  // the spares' locks) alive.
}

BackingCache::Counts BackingCache::counts() const {
  std::lock_guard lock(mu_);
  return {closed_.size(), spares_.size(), adopted_, retired_, placed_, adopted_unchanged_, fresh_, placed_fresh_,
          evicted_.size(), parked_.size(), parked_bytes_, recycled_.size(), recycled_lent_};
}

}  // namespace tern
