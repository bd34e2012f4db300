// tern: the command-line front end (DESIGN §8). `tern run -- PROG ARGS` runs a program on tern;
// `tern import` / `tern export` convert between plain and tern files.
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>

#include "tools/cmd_common.h"

namespace tern::tools {

bool IsHelp(const char* arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

std::string ResolveRoot(const std::string& flag) {
  std::string root = flag;
  if (root.empty()) {
    const char* env = getenv("TERN_ROOT");
    root = (env != nullptr && env[0] != '\0') ? env : "/dev/shm/tern";
  }
  if (root[0] != '/') {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == nullptr) return std::string();
    root = std::string(cwd) + "/" + root;
  }
  return root;
}

namespace {

constexpr const char kUsage[] =
    "usage: tern COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  run [--root DIR] [--] PROG [ARGS...]   run PROG with its files under DIR served by tern\n"
    "  import FILE                            convert a plain file into a tern file, in place\n"
    "  export FILE OUT                        copy a tern file's content into the plain file OUT\n"
    "  info FILE...                           describe tern files (layout, log, blocks, damage)\n"
    "  fsck [--repair] FILE|DIR...            check tern files; repair what can be repaired\n"
    "  gc FILE...                             compact tern files' logs now\n"
    "  gc --spares [--root DIR]               remove the spares that killed processes left\n"
    "  stat FILE...                           live counters of tern files\n"
    "\n"
    "`tern COMMAND --help` describes each command. Exit status: 0 success, 1 failure, 2 usage error.\n"
    "Environment: TERN_ROOT (default /dev/shm/tern), TERN_EXCLUDE (glob list, ':'-separated),\n"
    "TERN_LOG=debug|info|warn|error|off, TERN_LOG_FILE.\n";

// Every command but run reads backing files directly; with libtern.so preloaded into this process
// the shim would serve those opens as tern files. Re-run without it. The shim puts itself back
// into a program that inherits tern fds (`tern stat f > out` with `out` a tern file: only the
// shim can write it), so the image run here may have it again: for that one, TERN_EXCLUDE leaves
// every path to the kernel, and the shim serves only the fds it inherited. It must not re-run
// itself again: that would never end.
void DropPreloadedShim(char** argv) {
  const char* preload = getenv("LD_PRELOAD");
  if (preload == nullptr || strstr(preload, "libtern") == nullptr) return;
  constexpr const char kRerunVar[] = "TERN_TOOL_RERUN";
  if (getenv(kRerunVar) != nullptr) return;
  setenv(kRerunVar, "1", 1);
  setenv("TERN_EXCLUDE", "*", 1);
  std::string kept;
  std::string all(preload);
  size_t start = 0;
  while (start <= all.size()) {
    size_t end = all.find_first_of(": ", start);
    if (end == std::string::npos) end = all.size();
    std::string item = all.substr(start, end - start);
    if (!item.empty() && item.find("libtern") == std::string::npos) kept += (kept.empty() ? "" : ":") + item;
    start = end + 1;
  }
  // Set even when empty: the shim puts itself back into a child whose environment has no
  // LD_PRELOAD at all (entry_exec.cc), not into one that chose another.
  setenv("LD_PRELOAD", kept.c_str(), 1);
  execv("/proc/self/exe", argv);
  perror("tern: re-exec without the shim");
}

}  // namespace
}  // namespace tern::tools

int main(int argc, char** argv) {
  using namespace tern::tools;
  if (argc < 2) {
    fputs(kUsage, stderr);
    return kExitUsage;
  }
  const char* cmd = argv[1];
  if (IsHelp(cmd)) {
    fputs(kUsage, stdout);
    return kExitOk;
  }
  if (strcmp(cmd, "run") == 0) return CmdRun(argc - 2, argv + 2);
  DropPreloadedShim(argv);
  if (strcmp(cmd, "import") == 0) return CmdImport(argc - 2, argv + 2);
  if (strcmp(cmd, "export") == 0) return CmdExport(argc - 2, argv + 2);
  if (strcmp(cmd, "info") == 0) return RunInfo(argc - 1, argv + 1);
  if (strcmp(cmd, "fsck") == 0) return RunFsck(argc - 1, argv + 1);
  if (strcmp(cmd, "gc") == 0) return CmdGc(argc - 2, argv + 2);
  if (strcmp(cmd, "stat") == 0) return CmdStat(argc - 2, argv + 2);
  fprintf(stderr, "tern: unknown command '%s'\n\n%s", cmd, kUsage);
  return kExitUsage;
}
