// `tern fsck [--repair] PATH...`: checks tern files (a PATH that is a directory is walked, without
// following symlinks; files that are not tern files are skipped) over lib/fsck.h, which reads them
// without the engine. --repair cuts each damaged log at its first invalid entry and prints every
// entry it dropped; it refuses a file that is open elsewhere.
//
// Exit status: 0 every tern file is clean (with --repair: clean after the repair); 1 problems found
// (with --repair: problems remain), or a file could not be checked; 2 usage error.
#include <ftw.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "lib/fsck.h"

namespace tern::tools {
namespace {

constexpr const char* kUsage =
    "usage: tern fsck [--repair] [--quiet] PATH...\n"
    "Checks tern files; a directory is checked recursively (other files are skipped).\n"
    "  --repair  cut each damaged log at its first invalid entry, zero stray bytes past the end,\n"
    "            drop stale shared state; prints exactly what was dropped. Files open elsewhere\n"
    "            are not touched.\n"
    "  --quiet   print only files with problems\n"
    "Exit: 0 clean, 1 problems (after --repair: problems remain) or unreadable, 2 usage.\n";

struct Totals {
  int checked = 0, clean = 0, damaged = 0, skipped = 0, failed = 0, repaired = 0;
};

struct Options {
  bool repair = false;
  bool quiet = false;
};

const char* Why(Status s) { return s.context()[0] != '\0' ? s.context() : strerror(s.err()); }

void CheckOne(const std::string& path, const Options& o, Totals* t, bool named) {
  auto r = CheckFile(path);
  if (!r.ok()) {
    if (r.status().err() == kNotTernFile) {
      ++t->skipped;
      if (named) fprintf(stderr, "tern fsck: %s: not a tern file\n", path.c_str());
      if (named) ++t->failed;
      return;
    }
    fprintf(stderr, "tern fsck: %s: %s\n", path.c_str(), strerror(r.status().err()));
    ++t->failed;
    return;
  }
  ++t->checked;
  if (r->clean()) {
    ++t->clean;
    if (!o.quiet) fputs(FormatFsck(*r).c_str(), stdout);
    return;
  }
  fputs(FormatFsck(*r).c_str(), stdout);
  if (!o.repair) {
    ++t->damaged;
    return;
  }
  auto fixed = RepairFile(path);
  if (!fixed.ok()) {
    printf("  NOT repaired: %s\n", Why(fixed.status()));
    ++t->damaged;
    return;
  }
  for (const std::string& a : fixed->actions) printf("  repair: %s\n", a.c_str());
  if (fixed->after.clean()) {
    ++t->repaired;
    printf("  now clean (%llu log entries, size %llu)\n", static_cast<unsigned long long>(fixed->after.info.tail),
           static_cast<unsigned long long>(fixed->after.info.size));
  } else {
    ++t->damaged;
    for (const FsckProblem& p : fixed->after.problems) printf("  remains: %s\n", p.what.c_str());
  }
}

// nftw has no user pointer: the walk's state lives here for the duration of one walk.
const Options* g_walk_options = nullptr;
Totals* g_walk_totals = nullptr;

int Visit(const char* path, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_F && S_ISREG(st->st_mode)) CheckOne(path, *g_walk_options, g_walk_totals, false);
  if (type == FTW_DNR || type == FTW_NS) {
    fprintf(stderr, "tern fsck: %s: cannot read\n", path);
    ++g_walk_totals->failed;
  }
  return 0;
}

}  // namespace

int RunFsck(int argc, char** argv) {
  Options o;
  std::vector<std::string> paths;
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (!options_done && a == "--") {
      options_done = true;
    } else if (!options_done && (a == "--help" || a == "-h")) {
      fputs(kUsage, stdout);
      return 0;
    } else if (!options_done && a == "--repair") {
      o.repair = true;
    } else if (!options_done && (a == "--quiet" || a == "-q")) {
      o.quiet = true;
    } else if (!options_done && !a.empty() && a[0] == '-') {
      fprintf(stderr, "tern fsck: unknown option %s\n%s", a.c_str(), kUsage);
      return 2;
    } else {
      paths.push_back(a);
    }
  }
  if (paths.empty()) {
    fputs(kUsage, stderr);
    return 2;
  }
  Totals t;
  bool walked = false;
  for (const std::string& p : paths) {
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) {
      fprintf(stderr, "tern fsck: %s: %s\n", p.c_str(), strerror(errno));
      ++t.failed;
    } else if (S_ISDIR(st.st_mode)) {
      walked = true;
      g_walk_options = &o;
      g_walk_totals = &t;
      nftw(p.c_str(), Visit, 32, FTW_PHYS);
    } else {
      CheckOne(p, o, &t, true);
    }
  }
  if (walked || paths.size() > 1) {
    printf("%d tern files checked: %d clean, %d repaired, %d with problems; %d other files skipped%s\n", t.checked,
           t.clean, t.repaired, t.damaged, t.skipped, t.failed > 0 ? "; some paths could not be checked" : "");
  }
  return t.damaged > 0 || t.failed > 0 ? 1 : 0;
}

}  // namespace tern::tools
