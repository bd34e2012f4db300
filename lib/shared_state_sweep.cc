// Removing the shared-state objects that no process maps (SharedState::SweepOrphans).
//
// A process killed while it was a file's last opener leaves the object published under the file's
// name. The next first open of the file replaces it, but a file that is never opened again (deleted
// through the kernel, or simply left) would keep it, with its resident pages, forever.
//
// Liveness: every mapper holds the object's lock shared (shared_state.h), so a sweeper that takes
// it exclusively knows nobody maps the object it opened. Two races remain, and both are closed here
// or in Attach:
//  - an opener that opened the object but has not locked it yet: Attach checks, once locked, that
//    the object still has a name (st_nlink), and starts over when a sweep unlinked it;
//  - a first opener that publishes a fresh object by renaming it over the stale one between the
//    sweeper's lock and its unlink: the sweeper never unlinks by the published name. It renames the
//    name aside (atomically taking whichever object is there), unlinks it only if it is the object
//    it locked, and otherwise renames it back. Renaming back fails only if yet another object was
//    published since, which needs the file's open lock exclusively, i.e. every mapper of the one set
//    aside gone: then it is an orphan too and is unlinked.
// An opener that finds the name missing during that window retries (file_core_open.cc).
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <string_view>

#include "lib/backing_cache.h"
#include "lib/open_lock.h"
#include "lib/process_id.h"
#include "lib/shared_state.h"
#include "lib/test_hooks.h"
#include "pmem/log.h"

namespace tern {
namespace {

bool SameInode(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

// Unlinks the object at `path`, which this process has open and locked exclusively (`locked` is
// its fstat). Returns true if that object was unlinked.
bool RemoveLockedObject(const std::string& dir, const std::string& path, const struct stat& locked, bool published_name) {
  if (!published_name) return unlink(path.c_str()) == 0;  // a unique name nobody publishes to
  test_hooks::after_state_sweep_lock.Run();
  static std::atomic<uint32_t> counter{0};
  char name[96];
  snprintf(name, sizeof(name), "/%s%d.%u", SharedState::kAsidePrefix, static_cast<int>(ThisProcessId()),
           counter.fetch_add(1));
  std::string aside = dir + name;
  if (rename(path.c_str(), aside.c_str()) != 0) return false;
  struct stat moved;
  if (stat(aside.c_str(), &moved) == 0 && SameInode(moved, locked)) return unlink(aside.c_str()) == 0;
  // A first opener published a fresh object after our open: it goes back, unless a newer one took
  // the name, in which case the one set aside has no mappers left (see above).
  if (renameat2(AT_FDCWD, aside.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
    (void)unlink(aside.c_str());
  }
  return false;
}

// An object a large file's last close left at rest (file_core_rest.cc) less than kRestSeconds ago.
bool RecentlyAtRest(int fd, const struct stat& st) {
  RestStamp stamp;
  if (pread(fd, &stamp, sizeof(stamp), offsetof(SharedHeader, rest)) != static_cast<ssize_t>(sizeof(stamp))) return false;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return stamp.state == kAtRest && now.tv_sec - st.st_mtim.tv_sec < SharedState::kRestSeconds;
}

}  // namespace

Result<uint64_t> SharedState::SweepOrphans(const std::string& dir) {
  auto ours = [](std::string_view name) { return name.starts_with(kPublishedPrefix) || name.starts_with(kAsidePrefix); };
  return RemoveUnlockedFiles(dir, ours, [&dir](const std::string& path, int fd, const struct stat& st) {
    if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != kObjectSize) return false;  // not an object
    std::string_view name = std::string_view(path).substr(dir.size() + 1);
    // A publisher's temporary name (".tern.….tmp.PID.N") is unique, as an aside name is.
    bool published = name.starts_with(kPublishedPrefix) && name.find(".tmp.") == std::string_view::npos;
    if (published && RecentlyAtRest(fd, st)) return false;
    return RemoveLockedObject(dir, path, st, published);
  });
}

bool SharedState::SweepOrphansIfDue(const std::string& dir, int interval_s) {
  std::string marker = dir + "/" + kSweepMarkerPrefix + std::to_string(geteuid());
  struct stat st;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  if (stat(marker.c_str(), &st) == 0 && now.tv_sec - st.st_mtim.tv_sec < interval_s &&
      st.st_mtim.tv_sec <= now.tv_sec) {
    return false;
  }
  // The marker's time moves first, so processes starting together do not all sweep.
  int fd = open(marker.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return false;  // nowhere to note it: sweeping every time would cost too much
  (void)futimens(fd, nullptr);
  close(fd);
  auto swept = SweepOrphans(dir);
  if (!swept.ok()) {
    TERN_LOG_DEBUG("%s: shared-state sweep: %s", dir.c_str(), swept.status().context());
  } else if (*swept > 0) {
    TERN_LOG_INFO("%s: removed %llu shared-state objects of files whose processes are gone", dir.c_str(),
                  static_cast<unsigned long long>(*swept));
  }
  return true;
}

}  // namespace tern
