#include "shim/paths.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mutex>
#include <string_view>

#include "shim/common.h"
#include "shim/env.h"

namespace tern::shim {
namespace {

PathOptions* g_paths = nullptr;  // never destroyed: used until the very end of exit

bool HasPrefixDir(const std::string& abs, const std::string& root) {
  if (root.empty()) return false;
  if (root == "/") return abs.size() > 1;
  return abs.size() > root.size() && abs.compare(0, root.size(), root) == 0 &&
         abs[root.size()] == '/';
}

std::string CurrentDir() {
  char buf[PATH_MAX];
  if (getcwd(buf, sizeof(buf)) == nullptr) return {};
  return buf;
}

}  // namespace

void InitPaths() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto* p = new PathOptions();
    const char* root = EnvGet("TERN_ROOT");
    std::string r = (root != nullptr && root[0] != '\0') ? root : "/dev/shm/tern";
    if (r[0] != '/') r = CurrentDir() + "/" + r;
    p->root = NormalizePath(r);
    char real[PATH_MAX];
    if (realpath(p->root.c_str(), real) != nullptr && p->root != real) p->root_real = real;
    if (const char* ex = EnvGet("TERN_EXCLUDE"); ex != nullptr) {
      std::string all(ex);
      size_t start = 0;
      while (start <= all.size()) {
        size_t end = all.find(':', start);
        if (end == std::string::npos) end = all.size();
        if (end > start) p->exclude.push_back(all.substr(start, end - start));
        start = end + 1;
      }
    }
    g_paths = p;
  });
}

const PathOptions& Paths() {
  if (g_paths == nullptr) InitPaths();
  return *g_paths;
}

bool AbsolutePath(int dirfd, const char* path, std::string* out) {
  if (path[0] == '/') {
    *out = NormalizePath(path);
    return true;
  }
  std::string base;
  if (dirfd == AT_FDCWD) {
    base = CurrentDir();
  } else {
    char buf[PATH_MAX];
    ssize_t n = readlink(ProcFdPath(dirfd).c_str(), buf, sizeof(buf) - 1);
    if (n > 0) base.assign(buf, static_cast<size_t>(n));
  }
  if (base.empty() || base[0] != '/') return false;
  *out = NormalizePath(base + "/" + path);
  return true;
}

bool UnderRoot(const std::string& abs) {
  const PathOptions& p = Paths();
  if (!HasPrefixDir(abs, p.root) && !HasPrefixDir(abs, p.root_real)) return false;
  // The engine's shared-state objects (".tern.*") are never tern files, even when the root is the
  // shared-state directory itself.
  size_t slash = abs.rfind('/');
  if (abs.compare(slash + 1, 6, ".tern.") == 0) return false;
  for (const std::string& pattern : p.exclude) {
    if (fnmatch(pattern.c_str(), abs.c_str(), 0) == 0) return false;
  }
  return true;
}

bool PlainByDefault(const std::string& abs) {
  std::string_view name(abs);
  name.remove_prefix(abs.rfind('/') + 1);
  auto ends_with = [&](std::string_view suffix) { return name.size() > suffix.size() && name.ends_with(suffix); };
  if (ends_with("-shm") || ends_with(".so")) return true;
  size_t so = name.find(".so.");
  return so != std::string_view::npos && so > 0 && so + 4 < name.size();
}

bool TernCandidate(int dirfd, const char* path, std::string* abs) {
  if (path == nullptr || path[0] == '\0') return false;
  if (!AbsolutePath(dirfd, path, abs)) return false;
  return UnderRoot(*abs);
}

bool ShapedLikeTernFile(const struct stat& st) {
  return S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size % 4096 == 0;
}

}  // namespace tern::shim
