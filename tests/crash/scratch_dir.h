// A private scratch directory for crash and fault tests: /dev/shm/tern-crash-XXXXXX (under
// $TERN_TEST_DIR if set), with TERN_SHM_DIR pointed at a subdirectory of it so that the shared-state
// objects of the files a test opens are its own. Everything is removed on destruction.
// REQUIRES: constructed and destroyed while no other thread reads the environment.
#pragma once

#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

namespace tern::crash {

class ScratchDir {
 public:
  ScratchDir() {
    const char* base = getenv("TERN_TEST_DIR");
    std::string tmpl = std::string(base != nullptr && base[0] != '\0' ? base : "/dev/shm") + "/tern-crash-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) != nullptr) path_ = buf.data();
    std::string shm = path_ + "/.shm";
    mkdir(shm.c_str(), 0700);
    setenv("TERN_SHM_DIR", shm.c_str(), 1);
  }
  ~ScratchDir() {
    unsetenv("TERN_SHM_DIR");
    if (!path_.empty()) {
      nftw(path_.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return remove(p); }, 16,
           FTW_DEPTH | FTW_PHYS);
    }
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace tern::crash
