#include "tests/crash/crash_checker.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <unordered_set>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/log_block_format.h"
#include "lib/meta_block_format.h"
#include "tests/crash/timeline.h"

namespace tern::crash {
namespace {

std::string Errno(Status s) {
  return "errno " + std::to_string(s.err()) + " (" + strerror(s.err()) + "): " + s.context();
}

bool WriteImage(const std::string& path, const std::vector<uint8_t>& bytes) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = ftruncate(fd, static_cast<off_t>(bytes.size())) == 0 &&
            pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size());
  close(fd);
  return ok;
}

Result<std::vector<uint8_t>> ReadContent(File& f) {
  TERN_ASSIGN_OR_RETURN(uint64_t size, f.Size());
  std::vector<uint8_t> out(size);
  uint64_t done = 0;
  while (done < size) {
    TERN_ASSIGN_OR_RETURN(size_t n, f.Pread(out.data() + done, size - done, done));
    if (n == 0) return Status::Error(EIO, "short read below the size");
    done += n;
  }
  return out;
}

uint64_t Word(const std::vector<uint8_t>& b, uint64_t off, uint64_t len) {
  uint64_t v = 0;
  if (off + len <= b.size()) memcpy(&v, b.data() + off, len);
  return v;
}

// True when the image's log has a non-zero slot after its first free slot, in the same log block
// or in a later block still linked: the case the recovery rule's scrub exists for.
bool HasEntriesPastGap(const std::vector<uint8_t>& img) {
  bool seen_free = false;
  uint64_t block = 0;
  uint64_t slots_at = offsetof(pmem::MetaBlock, slots), nslots = pmem::kMetaSlots;
  uint64_t link_at = offsetof(pmem::MetaHeader, log_head);
  for (uint32_t seq = 1; seq < 1000; ++seq) {
    for (uint64_t i = 0; i < nslots; ++i) {
      uint64_t v = Word(img, block * kBlockSize + slots_at + i * 8, 8);
      if (v == 0) seen_free = true;
      if (v != 0 && seen_free) return true;
    }
    uint64_t next = Word(img, block * kBlockSize + link_at, 4);
    if (next == 0 || (next + 1) * kBlockSize > img.size()) return false;
    block = next;
    slots_at = 0;
    nslots = pmem::kLogSlots;
    link_at = offsetof(pmem::LogBlock, trailer) + offsetof(pmem::LogBlockTrailer, next);
  }
  return false;
}

class Judge {
 public:
  Judge(const Workload& w, const Recording& r, Timeline& t, const std::string& image_path,
        const CheckOptions& o, CheckReport* report)
      : w_(w), r_(r), t_(t), image_path_(image_path), o_(o), report_(report), rng_(o.seed) {}

  void AtCrashPoint(const CrashPoint& p, const SamplingPolicy& policy) {
    ++report_->crash_points;
    for (const CrashImage& image : CrashImages(*p.media, policy, rng_)) {
      ++report_->images;
      if (!seen_.insert(image.hash).second) continue;
      ++report_->distinct;
      Check(p, image);
    }
  }

 private:
  void Violation(const CrashPoint& p, const CrashImage& image, const std::string& what) {
    ++report_->violations;
    if (report_->examples.size() >= o_.max_examples) return;
    std::string lines;
    for (size_t i = 0; i < image.overrides.size() && i < 12; ++i) {
      lines += (i ? "," : "") + std::to_string(image.overrides[i].line * kLine);
    }
    if (image.overrides.size() > 12) lines += ",...";
    std::string msg = w_.name + ": power cut before event " + std::to_string(p.event_index) + "/" +
                      std::to_string(r_.events.size()) + "; fsync-acknowledged commits " +
                      std::to_string(p.min_prefix) + ", commits made " + std::to_string(p.max_prefix) +
                      "; image = durable + " + std::to_string(image.overrides.size()) +
                      " in-flight lines (file offsets " + lines + "): " + what;
    if (const char* dir = getenv("TERN_CRASH_SAVE_DIR")) {
      std::string path = std::string(dir) + "/" + w_.name + "." + std::to_string(report_->violations) + ".image";
      if (WriteImage(path, image_bytes_)) msg += " [image saved to " + path + "]";
    }
    report_->examples.push_back(msg);
  }

  // Which prefix of the log the recovered content is; -1 if none allowed.
  int64_t MatchPrefix(const CrashPoint& p, const std::vector<uint8_t>& content) const {
    uint64_t h = FileModel::HashBytes(content.data(), content.size());
    for (uint64_t j = p.max_prefix + 1; j-- > p.min_prefix;) {
      // 64-bit content hashes: comparing the bytes too would replay the model once per image.
      if (t_.prefix_hashes()[j] == h) return static_cast<int64_t>(j);
    }
    return -1;
  }

  std::string Explain(const CrashPoint& p, const std::vector<uint8_t>& content) const {
    // Against the largest allowed prefix: where does it differ, and is it an older prefix?
    for (uint64_t j = p.max_prefix + 1; j-- > 0;) {
      if (t_.ModelAt(j).content() == content) {
        return "content is the log prefix of " + std::to_string(j) + " commits, but fsync acknowledged " +
               std::to_string(p.min_prefix) + " (lost: " + t_.OpAt(j).Describe() + ")";
      }
    }
    FileModel m = t_.ModelAt(p.max_prefix);
    const std::vector<uint8_t>& want = m.content();
    size_t n = std::min(want.size(), content.size());
    size_t d = 0;
    while (d < n && want[d] == content[d]) ++d;
    std::string last = p.max_prefix > 0 ? t_.OpAt(p.max_prefix - 1).Describe() : "none";
    return "content matches no allowed log prefix (size " + std::to_string(content.size()) +
           "; after all " + std::to_string(p.max_prefix) + " commits it would be " + std::to_string(want.size()) +
           ", first difference at byte " + std::to_string(d) + "; last commit " + last + ")";
  }

  void Check(const CrashPoint& p, const CrashImage& image) {
    Materialize(*p.media, image, &image_bytes_);
    image_bytes_.resize(r_.final_file_size, 0);
    if (!WriteImage(image_path_, image_bytes_)) {
      report_->error = "cannot write " + image_path_;
      return;
    }
    bool gap = HasEntriesPastGap(image_bytes_);
    if (gap) ++report_->gap_images;
    bool post_write = gap || (o_.post_write_every > 0 && report_->distinct % o_.post_write_every == 0);

    std::vector<uint8_t> content;
    {
      auto f = File::Open(image_path_, O_RDWR);
      if (!f.ok()) return Violation(p, image, "recovery refused the image: " + Errno(f.status()));
      auto got = ReadContent(**f);
      if (!got.ok()) return Violation(p, image, "reading after recovery failed: " + Errno(got.status()));
      content = std::move(*got);
      if (MatchPrefix(p, content) < 0) {
        // Explaining replays the model: only for the violations described in full.
        bool described = report_->examples.size() < o_.max_examples;
        return Violation(p, image, described ? Explain(p, content) : "");
      }
      FileCore& core = (*f)->core();
      auto reachable = core.BlocksReachable();
      if (!reachable.ok() || *reachable != core.BlocksInUse()) {
        return Violation(p, image, "free state rebuilt wrong: " + std::to_string(core.BlocksInUse()) +
                                       " blocks in use, " +
                                       (reachable.ok() ? std::to_string(*reachable) : Errno(reachable.status())) +
                                       " reachable");
      }
      if (!post_write) return;
      ++report_->post_writes;
      // First a hole past the end: whatever an append in flight at the crash left past the end of
      // the last block must read as zeros (the tail rule).
      uint64_t grown = content.size() + 700;
      if (!(*f)->Truncate(grown).ok()) return Violation(p, image, "growing after recovery failed");
      content.resize(grown, 0);
      // Starts inside the last block and ends unaligned: an in-place tail, a new block, an
      // extended record.
      std::vector<uint8_t> extra(5000);
      for (size_t i = 0; i < extra.size(); ++i) extra[i] = OpByte(~report_->distinct, content.size() + i);
      auto n = (*f)->Pwrite(extra.data(), extra.size(), content.size());
      if (!n.ok() || !(*f)->Fsync().ok()) return Violation(p, image, "write after recovery failed");
      content.insert(content.end(), extra.begin(), extra.end());
    }
    auto f = File::Open(image_path_, O_RDWR);
    if (!f.ok()) return Violation(p, image, "reopen after a write after recovery: " + Errno(f.status()));
    auto got = ReadContent(**f);
    if (!got.ok() || *got != content) {
      return Violation(p, image, "a write after recovery did not survive a reopen intact "
                                 "(a stale entry past the tail came back?)");
    }
    FileCore& core = (*f)->core();
    auto reachable = core.BlocksReachable();
    if (!reachable.ok() || *reachable != core.BlocksInUse()) {
      return Violation(p, image, "free state wrong after a write after recovery");
    }
  }

  const Workload& w_;
  const Recording& r_;
  Timeline& t_;
  std::string image_path_;
  const CheckOptions& o_;
  CheckReport* report_;
  std::mt19937_64 rng_;
  std::unordered_set<uint64_t> seen_;
  std::vector<uint8_t> image_bytes_;
};

}  // namespace

std::string CheckReport::Summary(const std::string& name) const {
  return name + ": " + std::to_string(commits) + " commits, " + std::to_string(crash_points) +
         " crash points, " + std::to_string(images) + " images generated, " + std::to_string(distinct) +
         " distinct checked (" + std::to_string(gap_images) + " with entries past a gap, " +
         std::to_string(post_writes) + " with a write after recovery), " + std::to_string(violations) +
         " violations";
}

uint64_t ScaleFromEnv() {
  const char* s = getenv("TERN_CRASH_SCALE");
  uint64_t v = s == nullptr ? 1 : strtoull(s, nullptr, 10);
  return v == 0 ? 1 : v;
}

uint64_t SeedFromEnv(uint64_t fallback) {
  const char* s = getenv("TERN_CRASH_SEED");
  return s == nullptr ? fallback : strtoull(s, nullptr, 10);
}

CheckReport CheckWorkload(const Workload& w, const std::string& dir, const CheckOptions& options) {
  CheckReport report;
  Recording rec;
  report.error = Record(dir + "/" + w.name + ".tern", w, &rec);
  if (!report.error.empty()) return report;
  Timeline timeline(rec, w);
  // First walk: count the crash points, so the image budget can be spread evenly.
  uint64_t points = 0;
  report.error = timeline.Walk([&](const CrashPoint&) { ++points; });
  if (!report.error.empty()) return report;
  report.commits = timeline.commits();
  uint64_t per_point = std::max<uint64_t>(options.min_per_point, options.target_images / std::max<uint64_t>(points, 1));
  SamplingPolicy policy;
  policy.exhaustive_limit = per_point;
  policy.samples = static_cast<uint32_t>(per_point > 2 ? per_point - 2 : 1);
  Judge judge(w, rec, timeline, dir + "/" + w.name + ".image", options, &report);
  std::string err = timeline.Walk([&](const CrashPoint& p) {
    if (report.error.empty()) judge.AtCrashPoint(p, policy);
  });
  if (report.error.empty()) report.error = err;
  return report;
}

}  // namespace tern::crash
