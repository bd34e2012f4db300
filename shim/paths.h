// Which paths are tern files: regular files under TERN_ROOT (default /dev/shm/tern), after the path
// is made absolute (relative to the cwd, or to a dirfd for *at calls) and lexically normalised, and
// not matched by a TERN_EXCLUDE glob. Whether the object is a regular file is decided at open.
//
// Thread-safety: Options are read once (InitPaths, from the library constructor) and immutable after.
#pragma once

#include <sys/stat.h>

#include <string>
#include <vector>

#include "lib/lexical_path.h"  // NormalizePath, the lexical form every root check uses

namespace tern::shim {

struct PathOptions {
  std::string root;                  // absolute, normalised, no trailing '/'
  std::string root_real;             // realpath(root) when it differs (symlinked mounts), else empty
  std::vector<std::string> exclude;  // fnmatch patterns on the absolute path
};

// Reads TERN_ROOT and TERN_EXCLUDE. Idempotent.
void InitPaths();
const PathOptions& Paths();

// Lexically normalised absolute form of `path` ("." and ".." resolved, repeated '/' folded).
// Relative paths are taken against dirfd (AT_FDCWD: the cwd). False when dirfd or the cwd cannot be
// read (the kernel then reports the error itself).
bool AbsolutePath(int dirfd, const char* path, std::string* out);
// True when `abs` (absolute, normalised) lies strictly under the root and is not excluded.
bool UnderRoot(const std::string& abs);
// AbsolutePath + UnderRoot.
bool TernCandidate(int dirfd, const char* path, std::string* abs);
// A tern file's backing is a non-empty regular file made of whole 4 KiB blocks: a file that looks
// otherwise is not one, and needs no closer look.
bool ShapedLikeTernFile(const struct stat& st);
// Files created plain (kernel files) under the root, because what uses them cannot go through
// the shim; one that already is a tern file stays one:
//  - SQLite's WAL index, "NAME-shm": shared memory every connection maps writable (which tern
//    refuses for its files); it holds nothing SQLite cannot rebuild from the WAL;
//  - shared objects, "NAME.so" and "NAME.so.VERSION": the dynamic loader opens and maps them with
//    raw system calls, so a library a build writes under the root could not be loaded.
bool PlainByDefault(const std::string& abs);

}  // namespace tern::shim
