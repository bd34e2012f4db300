// The process environment, read and changed without getenv/setenv/unsetenv: programs may define
// their own (bash does, and its versions work on shell variables that do not exist yet while
// library constructors run). These work on `environ` itself, in place where they can, so a program
// that reads main()'s envp later sees the change too.
#pragma once

namespace tern::shim {

const char* EnvGet(const char* name);
// Replaces or adds NAME=value (the string is copied and kept for the life of the process).
void EnvSet(const char* name, const char* value);
void EnvUnset(const char* name);

}  // namespace tern::shim
