#include "bench/bench_util.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace tern::bench {
namespace {

int MkdirP(const std::string& dir) {
  std::string cur;
  std::stringstream ss(dir);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    cur += "/" + part;
    if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return errno;
  }
  return 0;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof(esc), "\\u%04x", c);
      out += esc;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void FillPrefill(uint8_t* dst, uint64_t first_block, uint64_t nblocks) {
  for (uint64_t b = 0; b < nblocks; ++b)
    for (uint64_t i = 0; i < kBlock; ++i) dst[b * kBlock + i] = PrefillByte(first_block + b, i);
}

}  // namespace

AlignedBuf::AlignedBuf(size_t n, uint8_t fill) {
  p_ = static_cast<uint8_t*>(std::aligned_alloc(kBlock, (n + kBlock - 1) / kBlock * kBlock));
  if (p_ == nullptr) DieErrno("aligned_alloc", ENOMEM);
  std::memset(p_, fill, n);
}

void Die(const std::string& what, const tern::Status& s) {
  std::fprintf(stderr, "%s: %s (%s)\n", what.c_str(), s.context(), std::strerror(s.err()));
  std::exit(1);
}

void DieErrno(const std::string& what, int err) {
  std::fprintf(stderr, "%s: %s\n", what.c_str(), std::strerror(err));
  std::exit(1);
}

std::string TakeOption(int* argc, char** argv, const std::string& name, const std::string& fallback) {
  const std::string prefix = "--" + name + "=";
  std::string value = fallback;
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    std::string a = argv[i];
    if (a.rfind(prefix, 0) == 0) {
      value = a.substr(prefix.size());
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  argv[out] = nullptr;
  return value;
}

std::string TakeDirOption(int* argc, char** argv) {
  const char* env = std::getenv("TERN_BENCH_DIR");
  std::string dir = TakeOption(argc, argv, "dir", env && *env ? env : "/dev/shm/tern-bench");
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (int err = MkdirP(dir)) DieErrno("create " + dir, err);
  return dir;
}

std::string FsDescription(const std::string& dir) {
  // The longest mount point that is a prefix of dir.
  std::ifstream in("/proc/self/mounts");
  std::string dev, mnt, type, opts, best;
  size_t best_len = 0;
  while (in >> dev >> mnt >> type >> opts) {
    std::string rest;
    std::getline(in, rest);
    bool prefix = dir.rfind(mnt, 0) == 0 && (dir.size() == mnt.size() || mnt == "/" || dir[mnt.size()] == '/');
    if (prefix && mnt.size() >= best_len) {
      best_len = mnt.size();
      best = mnt + " " + type + " " + opts;
    }
  }
  return best;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string UniquePath(const std::string& dir, const std::string& tag) {
  return dir + "/" + tag + "." + std::to_string(getpid());
}

void LimitFileSize(uint64_t bytes) {
  std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim{};
  if (getrlimit(RLIMIT_FSIZE, &lim) != 0) DieErrno("getrlimit", errno);
  lim.rlim_cur = lim.rlim_max == RLIM_INFINITY ? bytes : std::min<rlim_t>(bytes, lim.rlim_max);
  if (setrlimit(RLIMIT_FSIZE, &lim) != 0) DieErrno("setrlimit", errno);
}

std::unique_ptr<tern::File> CreatePrefilledTern(const std::string& path, uint64_t bytes) {
  unlink(path.c_str());
  auto opened = tern::File::Open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (!opened.ok()) Die("tern open " + path, opened.status());
  std::unique_ptr<tern::File> f = std::move(opened).value();
  AlignedBuf chunk(kMiB, 0);
  for (uint64_t off = 0; off < bytes; off += kMiB) {
    uint64_t n = std::min(kMiB, bytes - off);
    FillPrefill(chunk.data(), off / kBlock, n / kBlock);
    auto w = f->Pwrite(chunk.data(), n, off);
    if (!w.ok()) Die("tern prefill " + path, w.status());
  }
  tern::Status s = f->Fsync();
  if (!s.ok()) Die("tern fsync " + path, s);
  return f;
}

int CreatePrefilledKernel(const std::string& path, uint64_t bytes) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) DieErrno("open " + path, errno);
  AlignedBuf chunk(kMiB, 0);
  for (uint64_t off = 0; off < bytes; off += kMiB) {
    uint64_t n = std::min(kMiB, bytes - off);
    FillPrefill(chunk.data(), off / kBlock, n / kBlock);
    if (pwrite(fd, chunk.data(), n, static_cast<off_t>(off)) != static_cast<ssize_t>(n)) {
      DieErrno("prefill " + path, errno ? errno : EIO);
    }
  }
  if (fsync(fd) != 0) DieErrno("fsync " + path, errno);
  return fd;
}

bool IsPrefillBlock(const uint8_t* buf, uint64_t block) {
  for (uint64_t i = 0; i < kBlock; ++i)
    if (buf[i] != PrefillByte(block, i)) return false;
  return true;
}

Percentiles Summarize(std::vector<uint64_t>* samples) {
  Percentiles p;
  if (samples->empty()) return p;
  std::sort(samples->begin(), samples->end());
  const auto& s = *samples;
  auto rank = [&](double q) {
    auto i = static_cast<size_t>(std::ceil(q * static_cast<double>(s.size())));
    return static_cast<double>(s[std::clamp<size_t>(i, 1, s.size()) - 1]);
  };
  p.count = s.size();
  p.min = static_cast<double>(s.front());
  p.max = static_cast<double>(s.back());
  p.p50 = rank(0.50);
  p.p90 = rank(0.90);
  p.p99 = rank(0.99);
  p.p999 = rank(0.999);
  double sum = 0;
  for (uint64_t v : s) sum += static_cast<double>(v);
  p.mean = sum / static_cast<double>(s.size());
  return p;
}

JsonReport::Record& JsonReport::Record::Str(const std::string& key, const std::string& value) {
  fields_.push_back(JsonString(key) + ": " + JsonString(value));
  return *this;
}

JsonReport::Record& JsonReport::Record::Num(const std::string& key, double value) {
  char num[64];
  std::snprintf(num, sizeof(num), "%.17g", std::isfinite(value) ? value : 0.0);
  fields_.push_back(JsonString(key) + ": " + num);
  return *this;
}

JsonReport::Record& JsonReport::Record::Lat(const std::string& prefix, const Percentiles& p) {
  Num(prefix + "_count", static_cast<double>(p.count));
  Num(prefix + "_min_ns", p.min);
  Num(prefix + "_p50_ns", p.p50);
  Num(prefix + "_p90_ns", p.p90);
  Num(prefix + "_p99_ns", p.p99);
  Num(prefix + "_p999_ns", p.p999);
  Num(prefix + "_max_ns", p.max);
  return Num(prefix + "_mean_ns", p.mean);
}

void JsonReport::Write(const std::string& path) const {
  auto object = [](const Record& r) {
    std::string s = "{";
    for (size_t i = 0; i < r.fields_.size(); ++i) s += (i ? ", " : "") + r.fields_[i];
    return s + "}";
  };
  std::string out = "{\"context\": " + object(context_) + ",\n\"records\": [\n";
  for (size_t i = 0; i < records_.size(); ++i) out += (i ? ",\n" : "") + object(records_[i]);
  out += "\n]}\n";
  FILE* f = path == "-" ? stdout : std::fopen(path.c_str(), "w");
  if (f == nullptr) DieErrno("write " + path, errno);
  std::fputs(out.c_str(), f);
  if (f != stdout) std::fclose(f);
}

}  // namespace tern::bench
