#include "lib/shared_state_spares.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "lib/backing_cache.h"
#include "lib/open_lock.h"
#include "lib/process_id.h"
#include "pmem/log.h"

namespace tern {

SharedStateSpares& SharedStateSpares::Default() {
  static auto* spares = new SharedStateSpares();  // never destroyed: used until the process ends
  return *spares;
}

void SharedStateSpares::Enable() {
  std::lock_guard lock(mu_);
  enabled_ = true;
}

bool SharedStateSpares::Keep(std::unique_ptr<SharedState>& state, const std::string& published) {
  size_t slash = published.rfind('/');
  if (state == nullptr || slash == std::string::npos || state->MappedAcrossFork() ||
      state->header()->num_blocks.load() > kMaxBlocks) {
    return false;
  }
  std::string dir = published.substr(0, slash);
  uint64_t seq;
  {
    std::lock_guard lock(mu_);
    if (!enabled_ || spares_.size() >= kMaxSpares) return false;
    seq = next_++;
  }
  SweepOrphansOnce(dir);
  // Held while kept: a sweeper that finds the lock free knows the keeper is gone.
  auto locked = TryLockExclusive(state->fd());
  if (!locked.ok() || !*locked) return false;
  char name[96];
  snprintf(name, sizeof(name), "/%s%d.%llu", kPrefix, static_cast<int>(ThisProcessId()),
           static_cast<unsigned long long>(seq));
  std::string spare_path = dir + name;
  if (rename(published.c_str(), spare_path.c_str()) != 0) {
    Unlock(state->fd());
    return false;
  }
  state->SetSparePath(std::move(spare_path));
  std::lock_guard lock(mu_);
  ++kept_;
  spares_.push_back({std::move(dir), std::move(state)});
  return true;
}

std::unique_ptr<SharedState> SharedStateSpares::Take(const std::string& dir, const struct stat& like,
                                                     uint64_t num_blocks) {
  std::unique_ptr<SharedState> state;
  {
    std::lock_guard lock(mu_);
    for (auto it = spares_.rbegin(); it != spares_.rend(); ++it) {
      if (it->dir != dir) continue;
      state = std::move(it->state);
      spares_.erase(std::next(it).base());
      break;
    }
    if (state == nullptr) return nullptr;
  }
  Status reset = state->ResetFor(like, num_blocks);
  if (!reset.ok()) {
    TERN_LOG_DEBUG("shared state spare: %s", reset.context());
    return nullptr;  // unlinked and unmapped here
  }
  std::lock_guard lock(mu_);
  ++reused_;
  return state;
}

void SharedStateSpares::DropAll(DropMode mode) {
  if (mode == DropMode::kImmediateExit) {  // only the names go, as in BackingCache::DropSpares
    std::unique_lock lock = LockToDrop(mu_, mode);
    if (!lock.owns_lock()) return;
    for (const Spare& s : spares_) (void)unlink(s.state->spare_path().c_str());
    return;
  }
  std::vector<Spare> spares;
  {
    std::lock_guard lock(mu_);
    spares.swap(spares_);
    if (kept_ > 0) {
      TERN_LOG_DEBUG("shared-state spares: %llu kept at a last close, %llu reused by a first open",
                     static_cast<unsigned long long>(kept_), static_cast<unsigned long long>(reused_));
    }
  }
  // Each SharedState unlinks its spare name as it goes.
  if (mode == DropMode::kProcessExit) {
    for (Spare& s : spares) {
      (void)unlink(s.state->spare_path().c_str());
      (void)s.state.release();  // deliberately never freed: the process unmaps it at exit
    }
  }
}

bool SharedStateSpares::ReleaseSpares() {
  std::vector<Spare> spares;
  {
    std::unique_lock lock(mu_, std::try_to_lock);
    if (!lock.owns_lock()) return false;
    spares.swap(spares_);
  }
  return !spares.empty();  // each SharedState unlinks its spare name as it goes
}

void SharedStateSpares::SweepOrphansOnce(const std::string& dir) {
  {
    std::lock_guard lock(mu_);
    if (std::find(swept_dirs_.begin(), swept_dirs_.end(), dir) != swept_dirs_.end()) return;
    swept_dirs_.push_back(dir);
  }
  // What killed processes left here — the objects they kept as spares, and those they published as
  // a file's last opener — is looked for by one process a minute, not by every one: the directory
  // holds an object per file open anywhere, and a short command would read it all.
  if (!SharedState::SweepOrphansIfDue(dir)) return;
  auto swept = SweepOrphans(dir);
  if (swept.ok() && *swept > 0) {
    TERN_LOG_INFO("%s: removed %llu spare shared-state objects of processes that are gone", dir.c_str(),
                  static_cast<unsigned long long>(*swept));
  }
}

Result<uint64_t> SharedStateSpares::SweepOrphans(const std::string& dir) {
  return UnlinkUnlockedFiles(dir, [](std::string_view name) { return name.starts_with(kPrefix); });
}

void SharedStateSpares::LockForFork() { mu_.lock(); }
void SharedStateSpares::UnlockAfterFork() { mu_.unlock(); }

void SharedStateSpares::ForgetInChild() {
  std::vector<Spare> spares;
  {
    std::lock_guard lock(mu_);
    spares.swap(spares_);
    kept_ = reused_ = 0;  // the parent's
  }
  for (Spare& s : spares) s.state->Disown();  // the names and their locks are the parent's
}

SharedStateSpares::Counts SharedStateSpares::counts() const {
  std::lock_guard lock(mu_);
  return {spares_.size(), kept_, reused_};
}

}  // namespace tern
