#include "shim/env.h"

#include <stdlib.h>
#include <string.h>

extern char** environ;

namespace tern::shim {
namespace {

bool Matches(const char* entry, const char* name, size_t len) {
  return strncmp(entry, name, len) == 0 && entry[len] == '=';
}

}  // namespace

const char* EnvGet(const char* name) {
  size_t len = strlen(name);
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (Matches(*e, name, len)) return *e + len + 1;
  }
  return nullptr;
}

void EnvSet(const char* name, const char* value) {
  size_t len = strlen(name);
  size_t vlen = strlen(value);
  auto* entry = static_cast<char*>(malloc(len + vlen + 2));
  if (entry == nullptr) return;
  memcpy(entry, name, len);
  entry[len] = '=';
  memcpy(entry + len + 1, value, vlen + 1);
  size_t count = 0;
  for (char** e = environ; e != nullptr && e[count] != nullptr; ++count) {
    if (Matches(e[count], name, len)) {
      e[count] = entry;  // in place: the previous string may belong to the caller; it is not freed
      return;
    }
  }
  auto** grown = static_cast<char**>(malloc((count + 2) * sizeof(char*)));
  if (grown == nullptr) {
    free(entry);
    return;
  }
  if (count > 0) memcpy(grown, environ, count * sizeof(char*));
  grown[count] = entry;
  grown[count + 1] = nullptr;
  environ = grown;
}

void EnvUnset(const char* name) {
  size_t len = strlen(name);
  for (char** e = environ; e != nullptr && *e != nullptr;) {
    if (Matches(*e, name, len)) {
      for (char** d = e; *d != nullptr; ++d) d[0] = d[1];
    } else {
      ++e;
    }
  }
}

}  // namespace tern::shim
