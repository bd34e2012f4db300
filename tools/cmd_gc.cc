// tern gc FILE: compacts a file's log now; tern gc --spares: removes the spares of processes that
// are gone; tern stat FILE: live counters of a file.
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <string>

#include "lib/backing_cache.h"
#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/lexical_path.h"
#include "lib/shared_state.h"
#include "lib/shared_state_spares.h"
#include "tools/cmd_common.h"

namespace tern::tools {
namespace {

constexpr const char kGcUsage[] =
    "usage: tern gc FILE...\n"
    "       tern gc --spares [--root DIR]\n"
    "\n"
    "Compacts each tern file's commit log into a checkpoint now (tern also does this by itself, in\n"
    "the background of a writing process, once a log passes 64 log blocks), and frees the log blocks\n"
    "it retires once no reader can be in them; then frees every block the log no longer references\n"
    "(what killed processes left, old records). Readers and writers keep going meanwhile.\n"
    "\n"
    "--spares: a process under tern keeps files it deletes as spares for its next new files, in\n"
    ".tern-spares-UID beside the root (DIR, else $TERN_ROOT, else /dev/shm/tern), and removes them\n"
    "when it exits; a killed process cannot. This removes the spares of your processes that are\n"
    "gone (the next process that deletes a file under the root also does, once), the shared-state\n"
    "objects such processes kept for reuse in $TERN_SHM_DIR (default /dev/shm), and there the\n"
    "shared state of files whose last open was in a killed process (processes under tern also\n"
    "remove those, at most once a minute).\n"
    "Exit status: 0 success, 1 failure (not a tern file, damaged, or being compacted), 2 usage.\n";

constexpr const char kStatUsage[] =
    "usage: tern stat FILE...\n"
    "\n"
    "Prints live counters of each tern file, shared by every process that has it open: commits,\n"
    "commit conflicts (OCC retries), partial-block recopies, read retries, compactions, log length,\n"
    "blocks, reclaimed blocks of dead processes, and the processes attached (this one included).\n"
    "Exit status: 0 success, 1 failure, 2 usage.\n";

int OpenFailure(const char* cmd, const char* path, const Status& st) {
  if (st.err() == kNotTernFile) {
    fprintf(stderr, "tern %s: %s is not a tern file\n", cmd, path);
  } else {
    fprintf(stderr, "tern %s: %s: %s%s%s\n", cmd, path, strerror(st.err()), st.context()[0] ? ": " : "",
            st.context());
  }
  return kExitFailure;
}

// Parses the usual shape (--help, or one or more paths); returns -1 to go on.
int CheckArgs(int argc, char** argv, const char* usage) {
  if (argc >= 1 && IsHelp(argv[0])) {
    fputs(usage, stdout);
    return kExitOk;
  }
  if (argc < 1) {
    fputs(usage, stderr);
    return kExitUsage;
  }
  return -1;
}

int SweepSpares(int argc, char** argv) {
  std::string root;
  for (int i = 0; i < argc; ++i) {
    if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
      root = argv[++i];
    } else if (strncmp(argv[i], "--root=", 7) == 0) {
      root = argv[i] + 7;
    } else {
      fputs(kGcUsage, stderr);
      return kExitUsage;
    }
  }
  root = ResolveRoot(root);
  if (root.empty()) {
    perror("tern gc: getcwd");
    return kExitFailure;
  }
  // One sweep's line: "DIR: N <what> removed"; false on failure.
  auto report = [](const std::string& dir, const Result<uint64_t>& swept, const char* what) {
    if (!swept.ok()) {
      fprintf(stderr, "tern gc: %s: %s: %s\n", dir.c_str(), swept.status().context(), strerror(swept.status().err()));
      return false;
    }
    printf("%s: %llu %s removed\n", dir.c_str(), static_cast<unsigned long long>(*swept), what);
    return true;
  };
  // The shim's own lexical form of the root (lib/lexical_path.h), so that this is the directory it uses.
  std::string dir = BackingCache::SpareDirFor(NormalizePath(root), geteuid());
  if (!report(dir, BackingCache::SweepOrphans(dir), "spare files of processes that are gone")) return kExitFailure;
  std::string shm_dir = SharedStateDir();
  if (!report(shm_dir, SharedStateSpares::SweepOrphans(shm_dir), "spare shared-state objects of processes that are gone")) return kExitFailure;
  if (!report(shm_dir, SharedState::SweepOrphans(shm_dir), "shared-state objects of files whose processes are gone")) return kExitFailure;
  return kExitOk;
}

}  // namespace

int CmdGc(int argc, char** argv) {
  if (argc >= 1 && strcmp(argv[0], "--spares") == 0) return SweepSpares(argc - 1, argv + 1);
  if (int rc = CheckArgs(argc, argv, kGcUsage); rc >= 0) return rc;
  int status = kExitOk;
  for (int i = 0; i < argc; ++i) {
    auto file = File::Open(argv[i], O_RDWR);
    if (!file.ok()) {
      status = OpenFailure("gc", argv[i], file.status());
      continue;
    }
    auto stats = (*file)->core().Compact();
    if (!stats.ok()) {
      fprintf(stderr, "tern gc: %s: %s\n", argv[i], stats.status().context());
      status = kExitFailure;
      continue;
    }
    if (stats->checkpoint_runs == 0) {
      printf("%s: log too short to compact (%llu entries); %llu unreferenced blocks freed%s\n", argv[i],
             static_cast<unsigned long long>(stats->entries_before),
             static_cast<unsigned long long>(stats->blocks_freed),
             stats->drained ? "" : " (a reader was still busy: nothing freed this time)");
      continue;
    }
    printf("%s: %llu log entries -> checkpoint of %u runs; %llu entries and %llu log blocks remain; "
           "%llu blocks freed%s\n",
           argv[i], static_cast<unsigned long long>(stats->entries_before), stats->checkpoint_runs,
           static_cast<unsigned long long>(stats->entries_after),
           static_cast<unsigned long long>(stats->log_blocks_after),
           static_cast<unsigned long long>(stats->blocks_freed),
           stats->drained ? "" : " (a reader was still busy: the old log goes at the next compaction)");
  }
  return status;
}

int CmdStat(int argc, char** argv) {
  if (int rc = CheckArgs(argc, argv, kStatUsage); rc >= 0) return rc;
  int status = kExitOk;
  for (int i = 0; i < argc; ++i) {
    auto file = File::Open(argv[i], O_RDONLY);
    if (!file.ok()) {
      status = OpenFailure("stat", argv[i], file.status());
      continue;
    }
    auto size = (*file)->Size();
    FileCore& core = (*file)->core();
    FileCore::Stats s = core.GetStats();
    auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
    printf("%s\n", argv[i]);
    printf("  size           %llu bytes\n", u(size.ok() ? *size : 0));
    if (!core.writable()) {
      // Read slotless (lib/file_core_readonly.cc): the counts live in a shared state not joined.
      printf("  shared state   not joined (this process may not write the file, or its shared state is not\n"
             "                 to be had): commits, blocks and processes are not known here\n");
      continue;
    }
    printf("  commits        %llu  (conflicts %llu, partial-block recopies %llu, read retries %llu)\n",
           u(s.counters.commits), u(s.counters.conflicts), u(s.counters.recopies), u(s.counters.read_retries));
    printf("  log            %llu entries to replay; %llu compactions, %llu blocks freed by them\n",
           u(s.log_entries), u(s.gc_runs), u(s.gc_freed_blocks));
    printf("  blocks         %llu in use of %llu (%llu free)\n", u(s.blocks_in_use), u(s.blocks_total),
           u(s.blocks_total - s.blocks_in_use));
    printf("  dead processes %llu reclaimed, %llu blocks taken back\n", u(s.reclaimed_slots), u(s.reclaimed_blocks));
    printf("  attached       ");
    for (const ProcessInfo& p : core.AttachedProcesses()) printf("pid %u (slot %u)  ", p.pid, p.slot);
    printf("\n");
  }
  return status;
}

}  // namespace tern::tools
