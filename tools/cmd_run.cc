// tern run: exec a program with libtern.so preloaded and TERN_ROOT set.
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "pmem/log.h"
#include "tools/cmd_common.h"

namespace tern::tools {
namespace {

constexpr const char kRunUsage[] =
    "usage: tern run [--root DIR] [--] PROG [ARGS...]\n"
    "\n"
    "Runs PROG with libtern.so preloaded: every regular file under DIR (default $TERN_ROOT, else\n"
    "/dev/shm/tern; created if missing) is a tern file; everything else goes to the kernel. Child\n"
    "processes inherit this. The shim is found in $TERN_SHIM, next to this program's build tree\n"
    "(../shim/libtern.so) or install tree (../lib/tern/libtern.so).\n"
    "\n"
    "Exit status: PROG's own; 127 when PROG cannot be run; 1 when the shim is missing; 2 usage.\n";

std::string SelfDir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

std::string FindShim() {
  if (const char* env = getenv("TERN_SHIM"); env != nullptr && env[0] != '\0') {
    return access(env, R_OK) == 0 ? env : "";
  }
  std::string dir = SelfDir();
  for (const char* rel : {"/../shim/libtern.so", "/../lib/tern/libtern.so", "/libtern.so"}) {
    std::string candidate = dir + rel;
    char real[PATH_MAX];
    if (access(candidate.c_str(), R_OK) == 0 && realpath(candidate.c_str(), real) != nullptr) return real;
  }
  return "";
}

bool MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      std::string part = path.substr(0, i);
      if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) return false;
    }
  }
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// DESIGN §1: say once, at debug level, when the root's tmpfs has no huge pages.
void HintHugePages(const std::string& root) {
  if (CurrentLogLevel() > LogLevel::kDebug) return;
  std::ifstream mounts("/proc/self/mountinfo");
  std::string line, best_point, best_type, best_opts;
  while (std::getline(mounts, line)) {
    std::istringstream in(line);
    std::string id, parent, devno, mroot, point, opts, field;
    in >> id >> parent >> devno >> mroot >> point >> opts;
    while (in >> field && field != "-") {
    }
    std::string type, source, super_opts;
    in >> type >> source >> super_opts;
    bool covers = root == point || (root.compare(0, point.size(), point) == 0 &&
                                    (point == "/" || root[point.size()] == '/'));
    if (covers && point.size() >= best_point.size()) {
      best_point = point;
      best_type = type;
      best_opts = super_opts;
    }
  }
  if (best_type == "tmpfs" && best_opts.find("huge=") == std::string::npos) {
    TERN_LOG_DEBUG("%s is on a tmpfs without huge pages (%s); `mount -t tmpfs -o huge=always ...` makes "
                   "first touch of new blocks much cheaper (DESIGN §1)", root.c_str(), best_point.c_str());
  }
}

}  // namespace

int CmdRun(int argc, char** argv) {
  std::string root;
  int i = 0;
  for (; i < argc; ++i) {
    if (IsHelp(argv[i])) {
      fputs(kRunUsage, stdout);
      return kExitOk;
    }
    if (strcmp(argv[i], "--root") == 0) {
      if (i + 1 >= argc) {
        fputs("tern run: --root needs a directory\n", stderr);
        return kExitUsage;
      }
      root = argv[++i];
    } else if (strncmp(argv[i], "--root=", 7) == 0) {
      root = argv[i] + 7;
    } else if (strcmp(argv[i], "--") == 0) {
      ++i;
      break;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "tern run: unknown option '%s'\n\n%s", argv[i], kRunUsage);
      return kExitUsage;
    } else {
      break;
    }
  }
  if (i >= argc) {
    fputs(kRunUsage, stderr);
    return kExitUsage;
  }
  root = ResolveRoot(root);
  if (root.empty()) {
    perror("tern run: getcwd");
    return kExitFailure;
  }
  if (!MakeDirs(root)) {
    fprintf(stderr, "tern run: cannot create the root %s: %s\n", root.c_str(), strerror(errno));
    return kExitFailure;
  }
  std::string shim = FindShim();
  if (shim.empty()) {
    fputs("tern run: libtern.so not found (set TERN_SHIM to its path)\n", stderr);
    return kExitFailure;
  }
  HintHugePages(root);
  std::string preload = shim;
  if (const char* old = getenv("LD_PRELOAD"); old != nullptr && old[0] != '\0') {
    if (strstr(old, shim.c_str()) != nullptr) {
      preload = old;
    } else {
      preload += ":";
      preload += old;
    }
  }
  setenv("LD_PRELOAD", preload.c_str(), 1);
  setenv("TERN_ROOT", root.c_str(), 1);
  execvp(argv[i], argv + i);
  fprintf(stderr, "tern run: cannot run %s: %s\n", argv[i], strerror(errno));
  return 127;
}

}  // namespace tern::tools
