// The `tern` command's subcommands (DESIGN §8). Each takes the arguments after its name and returns
// the process exit status: 0 success, 1 failure, 2 usage error (`run` returns only on failure).
#pragma once

#include <string>

namespace tern::tools {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

int CmdRun(int argc, char** argv);
int CmdImport(int argc, char** argv);
int CmdExport(int argc, char** argv);
int CmdGc(int argc, char** argv);
int CmdStat(int argc, char** argv);
// These two take argv[0] = the command's own name (cmd_info.cc, cmd_fsck.cc).
int RunInfo(int argc, char** argv);
int RunFsck(int argc, char** argv);

// True when argv[i] is -h or --help.
bool IsHelp(const char* arg);

// The tern root a command works on: `flag` (its --root), else $TERN_ROOT, else /dev/shm/tern, made
// absolute against the cwd as the shim does with TERN_ROOT. Empty when the cwd cannot be read.
std::string ResolveRoot(const std::string& flag);

}  // namespace tern::tools
