#include "tests/shim/shim_test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "lib/file.h"

extern char** environ;

namespace tern::shim_test {
namespace {

void RemoveTree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (DIR* d = opendir(path.c_str())) {
      while (struct dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") RemoveTree(path + "/" + name);
      }
      closedir(d);
    }
    rmdir(path.c_str());
  } else {
    unlink(path.c_str());
  }
}

// Relative paths of every entry under root, with their lstat.
void Walk(const std::string& root, const std::string& rel, std::vector<std::pair<std::string, struct stat>>* out) {
  DIR* d = opendir((root + "/" + rel).c_str());
  if (d == nullptr) return;
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  for (const std::string& name : names) {
    std::string r = rel.empty() ? name : rel + "/" + name;
    struct stat st;
    if (lstat((root + "/" + r).c_str(), &st) != 0) continue;
    out->emplace_back(r, st);
    if (S_ISDIR(st.st_mode)) Walk(root, r, out);
  }
}


}  // namespace

Result<std::string> ReadTern(const std::string& path, uint64_t* size) {
  TERN_ASSIGN_OR_RETURN(std::unique_ptr<File> f, File::Open(path, O_RDONLY));
  TERN_ASSIGN_OR_RETURN(*size, f->Size());
  std::string out(*size, '\0');
  uint64_t done = 0;
  while (done < *size) {
    TERN_ASSIGN_OR_RETURN(size_t n, f->Pread(out.data() + done, *size - done, done));
    if (n == 0) break;
    done += n;
  }
  out.resize(done);
  return out;
}

Scratch::Scratch() {
  char tmpl[] = "/dev/shm/tern-shimtest-XXXXXX";
  char* dir = mkdtemp(tmpl);
  if (dir == nullptr) {
    ADD_FAILURE() << "mkdtemp: " << strerror(errno);
    return;
  }
  base_ = dir;
  chmod(base_.c_str(), 0755);
  for (const char* sub : {"/tern", "/plain", "/input"}) mkdir((base_ + sub).c_str(), 0755);
}

Scratch::~Scratch() {
  if (!base_.empty() && getenv("TERN_KEEP_SCRATCH") == nullptr) RemoveTree(base_);
}

RunResult Scratch::Run(const std::vector<std::string>& argv, bool tern, const std::vector<std::string>& extra_env) const {
  std::vector<std::string> args = {"timeout", "-k", "10", "600"};
  if (tern) {
    for (const char* a : {TERN_BIN, "run", "--root"}) args.push_back(a);
    args.push_back(tern_dir());
    args.push_back("--");
  }
  args.insert(args.end(), argv.begin(), argv.end());
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (strncmp(*e, "LD_PRELOAD=", 11) == 0 || strncmp(*e, "TERN_ROOT=", 10) == 0 ||
        strncmp(*e, "TERN_SHIM_", 10) == 0 || strncmp(*e, "INPUT=", 6) == 0) {
      continue;
    }
    env.push_back(*e);
  }
  env.push_back("INPUT=" + input_dir());
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  std::string out_path = base_ + "/stdout." + (tern ? "tern" : "plain");
  std::string err_path = base_ + "/stderr." + (tern ? "tern" : "plain");
  std::string dir = tern ? tern_dir() : plain_dir();
  pid_t pid = fork();
  if (pid == 0) {
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = open("/dev/null", O_RDONLY);
    if (out < 0 || err < 0 || in < 0 || chdir(dir.c_str()) != 0) _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    std::vector<char*> cargs, cenv;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    execvpe(cargs[0], cargs.data(), cenv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  RunResult r;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadPlain(out_path);
  r.err = ReadPlain(err_path);
  unlink(out_path.c_str());
  unlink(err_path.c_str());
  return r;
}

void WritePlain(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadPlain(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string TextLines(int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += "line " + std::to_string(rng() % 100000) + " of " + std::to_string(i) + "\n";
  }
  return out;
}

std::string Bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

void ExpectSameTrees(const Scratch& s, const std::set<std::string>& plain_files) {
  std::vector<std::pair<std::string, struct stat>> plain, tern;
  Walk(s.plain_dir(), "", &plain);
  Walk(s.tern_dir(), "", &tern);
  std::set<std::string> plain_names, tern_names;
  for (auto& [rel, st] : plain) plain_names.insert(rel);
  for (auto& [rel, st] : tern) tern_names.insert(rel);
  EXPECT_EQ(plain_names, tern_names) << "the runs left different directory entries";
  for (auto& [rel, pst] : plain) {
    std::string tpath = s.tern_dir() + "/" + rel;
    struct stat tst;
    if (lstat(tpath.c_str(), &tst) != 0) continue;
    EXPECT_EQ(pst.st_mode & S_IFMT, tst.st_mode & S_IFMT) << rel;
    if (!S_ISREG(pst.st_mode) || !S_ISREG(tst.st_mode)) continue;
    std::string want = ReadPlain(s.plain_dir() + "/" + rel);
    if (plain_files.count(rel) != 0) {
      EXPECT_EQ(ReadPlain(tpath), want) << rel << " (expected to stay a plain file)";
      continue;
    }
    uint64_t size = 0;
    auto got = ReadTern(tpath, &size);
    if (!got.ok()) {
      ADD_FAILURE() << rel << ": not a valid tern file: errno " << got.status().err() << " ("
                    << got.status().context() << ")";
      continue;
    }
    EXPECT_EQ(size, want.size()) << rel << ": logical size";
    EXPECT_TRUE(*got == want) << rel << ": content differs (tern " << got->size() << " bytes, kernel "
                              << want.size() << " bytes)";
    EXPECT_EQ(pst.st_mode & 07777, tst.st_mode & 07777) << rel << ": mode";
  }
}

void ExpectAllTernFiles(const std::string& dir) {
  std::vector<std::pair<std::string, struct stat>> entries;
  Walk(dir, "", &entries);
  EXPECT_FALSE(entries.empty()) << dir;
  for (auto& [rel, st] : entries) {
    if (!S_ISREG(st.st_mode)) continue;
    uint64_t size = 0;
    auto got = ReadTern(dir + "/" + rel, &size);
    EXPECT_TRUE(got.ok()) << rel << ": not a valid tern file: errno " << got.status().err();
  }
}

RunResult RunProbe(const Scratch& s, const std::string& args, bool tern) {
  return s.Bash(std::string(SHIM_PROBE_BIN) + " " + args, tern);
}

bool HaveProgram(const std::string& prog) {
  std::string cmd = "command -v " + prog + " > /dev/null 2>&1";
  return system(cmd.c_str()) == 0;
}

}  // namespace tern::shim_test
