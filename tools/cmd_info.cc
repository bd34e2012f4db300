// `tern info FILE...`: what a tern file holds — layout, log length and chain, entry histogram,
// block counts — read without the engine (lib/info.h), so it also describes files the engine
// refuses. Exit 0 when every file was described, 1 when one could not be (not a tern file,
// unreadable), 2 on a usage error.
#include <cstdio>
#include <cstring>
#include <string>

#include "lib/info.h"

namespace tern::tools {
namespace {

constexpr const char* kUsage =
    "usage: tern info FILE...\n"
    "Describes tern files without opening them through the engine: layout, log length and log\n"
    "blocks, commit entries by kind and size, blocks in use by kind, damage if any.\n";

}  // namespace

int RunInfo(int argc, char** argv) {
  int files = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(kUsage, stdout);
      return 0;
    }
    if (argv[i][0] == '-' && strcmp(argv[i], "--") != 0) {
      fprintf(stderr, "tern info: unknown option %s\n%s", argv[i], kUsage);
      return 2;
    }
    if (strcmp(argv[i], "--") != 0) ++files;
  }
  if (files == 0) {
    fputs(kUsage, stderr);
    return 2;
  }
  int rc = 0;
  bool first = true;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--") == 0) continue;
    auto info = InspectFile(argv[i]);
    if (!info.ok()) {
      fprintf(stderr, "tern info: %s: %s\n", argv[i],
              info.status().err() == kNotTernFile ? "not a tern file" : strerror(info.status().err()));
      rc = 1;
      continue;
    }
    if (!first) fputs("\n", stdout);
    first = false;
    fputs(FormatInfo(*info).c_str(), stdout);
  }
  return rc;
}

}  // namespace tern::tools
