#include "lib/shared_state.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "lib/open_lock.h"
#include "lib/process_id.h"
#include "lib/test_hooks.h"
#include "pmem/log.h"

namespace tern {

const char* SharedStateDir() {
  const char* dir = getenv("TERN_SHM_DIR");
  return (dir != nullptr && dir[0] != '\0') ? dir : "/dev/shm";
}

std::string SharedState::NameFor(const struct stat& st, uint64_t nonce) {
  char name[160];
  snprintf(name, sizeof(name), "%s/.tern.%llx.%llx.%016llx", SharedStateDir(),
           static_cast<unsigned long long>(st.st_dev), static_cast<unsigned long long>(st.st_ino),
           static_cast<unsigned long long>(nonce));
  return name;
}

namespace {

std::atomic<uint64_t> g_failures{0};  // SharedState::Failures

// The shared-state directory itself failing (missing, full, not writable) fails every first open
// of a tern file, with an errno that does not name the cause (ENOENT for a path that exists): said
// once per process, at warning level.
Status DirectoryFailure(int err, const char* what) {
  g_failures.fetch_add(1);
  static std::atomic<bool> said{false};
  if (!said.exchange(true)) {
    TERN_LOG_WARN("shared state in %s: %s: %s (tern files cannot be opened or grown until it works)",
                  SharedStateDir(), what, strerror(err));
  }
  return Status::Error(err, what);
}

// An object this process may not open or replace: another user's, made when its file had another
// owner or mode, or left by another user's process that ended with the file open (in a sticky
// directory such as /dev/shm only its owner may replace it).
Status NotOurs(int err, const std::string& path) {
  g_failures.fetch_add(1);
  static std::atomic<bool> said{false};
  if (!said.exchange(true)) {
    TERN_LOG_WARN("shared state %s: %s (another user's, made when the file had another owner or mode or left "
                  "by a process that ended with it open; renewed once nobody has the file open and a sweep "
                  "ran: until then this process reads without it and cannot write)",
                  path.c_str(), strerror(err));
  }
  return Status::Error(err, "open shared state");
}

Result<void*> MapObject(int fd) {
  void* base = mmap(nullptr, SharedState::kObjectSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return Status::Error(errno, "mmap of shared state");
  return base;
}

}  // namespace

Status SharedState::TakeOwnerAndMode(const struct stat& like) {
  // Same owner and mode as the data file: whoever may open the file may share its state, nobody else.
  mode_t mode = like.st_mode & 0666;
  if (like.st_uid == uid_ && like.st_gid == gid_ && mode == mode_) return Status::Ok();  // a reuse for the same owner
  if (geteuid() == 0 && fchown(fd_, like.st_uid, like.st_gid) != 0) {
    TERN_LOG_DEBUG("shared state: fchown failed: errno %d", errno);
  }
  if (fchmod(fd_, mode) != 0) return Status::Error(errno, "set the mode of shared state");
  uid_ = like.st_uid;
  gid_ = like.st_gid;
  mode_ = mode;
  return Status::Ok();
}

Result<std::unique_ptr<SharedState>> SharedState::CreateUnpublished(const struct stat& like,
                                                                    uint64_t num_blocks) {
  int fd = open(SharedStateDir(), O_TMPFILE | O_RDWR | O_CLOEXEC, like.st_mode & 0666);
  if (fd < 0) return DirectoryFailure(errno, "create shared state");
  if (ftruncate(fd, static_cast<off_t>(kObjectSize)) != 0) {
    int err = errno;
    close(fd);
    return DirectoryFailure(err, "size shared state");
  }
  auto base = MapObject(fd);
  if (!base.ok()) {
    close(fd);
    return base.status();
  }
  auto state = std::make_unique<SharedState>(fd, *base);
  TERN_TRY(LockShared(fd));  // before it has a name: no sweep can take it for an orphan
  TERN_TRY(state->TakeOwnerAndMode(like));
  TERN_TRY(state->BackRange(0, kBlockSize));
  TERN_TRY(state->BackBlocks(0, num_blocks));
  state->InitHeader(num_blocks);
  return state;
}

uint64_t SharedState::Failures() { return g_failures.load(); }

namespace {

// Private objects whose readers closed, for the next ones: a process that reads file after file
// slotless (lib/pool.h) then maps and unmaps none. A fresh mapping costs its page tables and the
// header page's first touch (~10 µs a page here), its munmap a TLB flush; measured, that made
// such reads slower than joining each file's shared state. Lock-free, so fork never finds it held.
constexpr size_t kPrivatePoolSize = 8;
std::atomic<void*> g_private_pool[kPrivatePoolSize];

void* TakePrivateObject() {
  for (std::atomic<void*>& slot : g_private_pool) {
    if (void* base = slot.exchange(nullptr); base != nullptr) return base;
  }
  return nullptr;
}

bool GiveBackPrivateObject(void* base) {
  for (std::atomic<void*>& slot : g_private_pool) {
    void* empty = nullptr;
    if (slot.compare_exchange_strong(empty, base)) return true;
  }
  return false;
}

}  // namespace

Result<std::unique_ptr<SharedState>> SharedState::CreatePrivate(uint64_t num_blocks) {
  void* base = TakePrivateObject();
  if (base != nullptr) {
    memset(base, 0, kBlockSize);  // a slotless reader writes nothing past the header page
  } else {
    base = mmap(nullptr, kObjectSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) return Status::Error(errno, "mmap of private shared state");
  }
  auto state = std::make_unique<SharedState>(-1, base);
  state->InitHeader(num_blocks);
  return state;
}

Status SharedState::BackRange(uint64_t from, uint64_t to) {
  uint64_t first = (from + kBlockSize - 1) / kBlockSize * kBlockSize;
  uint64_t end = (to + kBlockSize - 1) / kBlockSize * kBlockSize;
  if (first >= end) return Status::Ok();
  if (fallocate(fd_, 0, static_cast<off_t>(first), static_cast<off_t>(end - first)) != 0) {
    return DirectoryFailure(errno, "allocate a page of shared state");
  }
  return Status::Ok();
}

Status SharedState::BackBlocks(uint64_t have, uint64_t want) {
  if (want <= have) return Status::Ok();
  auto bitmap_bytes = [](uint64_t blocks) { return (blocks + 63) / 64 * sizeof(uint64_t); };
  TERN_TRY(BackRange(kBitmapOffset + bitmap_bytes(have), kBitmapOffset + bitmap_bytes(want)));
  return BackRange(kOwnersOffset + have * sizeof(BlockOwner), kOwnersOffset + want * sizeof(BlockOwner));
}

Status SharedState::BackSlots(uint32_t from, uint32_t end) {
  from = std::max(from, resident_slots_);  // a reused object's: backed for its last file
  if (end <= from) return Status::Ok();
  TERN_TRY(BackRange(kSlotsOffset + uint64_t{from} * sizeof(ProcessSlot), kSlotsOffset + uint64_t{end} * sizeof(ProcessSlot)));
  constexpr uint64_t kCellBytes = uint64_t{kOpCellsPerSlot} * sizeof(OpCell);
  TERN_TRY(BackRange(kCellsOffset + from * kCellBytes, kCellsOffset + end * kCellBytes));
  resident_slots_ = end;
  return Status::Ok();
}

void SharedState::InitHeader(uint64_t num_blocks) {
  SharedHeader* h = header();
  h->magic = kSharedMagic;
  h->version = kSharedVersion;
  h->alloc_state.store(kAllocUnbuilt);
  h->num_blocks.store(num_blocks);
  h->alloc_hint.store(0);
}

Status SharedState::Publish(const std::string& path) {
  if (!spare_path_.empty()) {
    // A kept object (shared_state_spares.h): its spare name moves to the file's, replacing a
    // stale object as below; the exclusive lock that marked it kept becomes a mapper's shared one.
    if (rename(spare_path_.c_str(), path.c_str()) != 0) {
      return errno == EPERM || errno == EACCES ? NotOurs(errno, path) : Status::Error(errno, "publish shared state");
    }
    spare_path_.clear();
    return LockShared(fd_);
  }
  // O_TMPFILE objects get a name with linkat; a temporary unique name then rename() replaces a
  // stale object left by a crash atomically.
  char fdpath[64];
  snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd_);
  char tmp[200];
  static std::atomic<uint32_t> counter{0};
  snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%u", path.c_str(), static_cast<int>(ThisProcessId()),
           counter.fetch_add(1));
  if (linkat(AT_FDCWD, fdpath, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) != 0) {
    return DirectoryFailure(errno, "link shared state");
  }
  if (rename(tmp, path.c_str()) != 0) {
    int err = errno;
    unlink(tmp);
    return err == EPERM || err == EACCES ? NotOurs(err, path) : Status::Error(err, "publish shared state");
  }
  return Status::Ok();
}

bool SharedState::SameObjectAs(const SharedState& other) const {
  struct stat a, b;
  return fstat(fd_, &a) == 0 && fstat(other.fd_, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

Result<std::unique_ptr<SharedState>> SharedState::Attach(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 && (errno == EACCES || errno == EPERM)) return NotOurs(errno, path);
  if (fd < 0) return Status::Error(errno, "open shared state");
  test_hooks::after_state_attach_open.Run();
  Status locked = LockShared(fd);
  struct stat st;
  if (!locked.ok() || fstat(fd, &st) != 0) {
    close(fd);
    return locked.ok() ? Status::Error(errno, "fstat of shared state") : locked;
  }
  if (st.st_nlink == 0) {  // a sweep found its lock free before ours and removed it
    close(fd);
    return Status::Error(ENOENT, "shared state removed while attaching");
  }
  if (static_cast<uint64_t>(st.st_size) != kObjectSize) {
    close(fd);
    return Status::Error(EUCLEAN, "shared state has the wrong size");
  }
  auto base = MapObject(fd);
  if (!base.ok()) {
    close(fd);
    return base.status();
  }
  auto state = std::make_unique<SharedState>(fd, *base);
  if (state->header()->magic != kSharedMagic || state->header()->version != kSharedVersion) {
    return Status::Error(EUCLEAN, "shared state has a bad magic or version");
  }
  return state;
}

void SharedState::Remove(const std::string& path) { unlink(path.c_str()); }

namespace {
std::atomic<uint64_t> g_forks{0};
}  // namespace

SharedState::SharedState(int fd, void* base) : fd_(fd), base_(base), forks_at_map_(g_forks.load()) {}

void SharedState::NoteFork() { g_forks.fetch_add(1); }
uint64_t SharedState::ForkCount() { return g_forks.load(); }

bool SharedState::MappedAcrossFork() const { return g_forks.load() != forks_at_map_; }

Status SharedState::ResetFor(const struct stat& like, uint64_t num_blocks) {
  TERN_TRY(TakeOwnerAndMode(like));
  // What the last file used: its blocks (never shrink) and its slots (each with its op cells).
  SharedHeader* h = header();
  uint64_t used_blocks = std::min<uint64_t>(h->num_blocks.load(), kMaxBlocks);
  uint64_t used_slots = std::min<uint64_t>(h->slots_high.load(), kMaxSlots);
  auto* base = static_cast<char*>(base_);
  memset(base + kSlotsOffset, 0, used_slots * sizeof(ProcessSlot));
  memset(base + kCellsOffset, 0, used_slots * kOpCellsPerSlot * sizeof(OpCell));
  memset(base + kBitmapOffset, 0, (used_blocks + 63) / 64 * sizeof(uint64_t));
  memset(base + kOwnersOffset, 0, used_blocks * sizeof(BlockOwner));
  memset(base, 0, kBlockSize);
  resident_blocks_ = std::max(resident_blocks_, used_blocks);
  resident_slots_ = std::max(resident_slots_, static_cast<uint32_t>(used_slots));
  TERN_TRY(BackBlocks(resident_blocks_, num_blocks));
  InitHeader(num_blocks);
  return Status::Ok();
}

SharedState::~SharedState() {
  if (fd_ >= 0 || !GiveBackPrivateObject(base_)) munmap(base_, kObjectSize);
  if (fd_ >= 0) close(fd_);
  if (!spare_path_.empty()) unlink(spare_path_.c_str());  // a spare nobody took: it was ours
}

}  // namespace tern
