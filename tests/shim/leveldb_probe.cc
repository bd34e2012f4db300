// leveldb_probe DIR N: writes N keys into a LevelDB database at DIR (batches, some overwrites and
// deletes), compacts, closes, reopens, reads every key back and iterates; prints a summary that
// depends only on the data. LevelDB reads its tables through mmap, logs through fdopen, and locks
// its LOCK file with fcntl — the shim test runs it on the kernel and under `tern run`.
#include <stdio.h>
#include <stdlib.h>

#include <memory>
#include <string>

#include <leveldb/db.h>
#include <leveldb/write_batch.h>

namespace {

std::string Key(int i) {
  char buf[32];
  snprintf(buf, sizeof(buf), "key%09d", i);
  return buf;
}

std::string Value(int i, int round) {
  std::string v = "value-" + std::to_string(i) + "-" + std::to_string(round) + "-";
  while (v.size() < 100) v += static_cast<char>('a' + (i * 7 + static_cast<int>(v.size())) % 26);
  return v;
}

int Fail(const leveldb::Status& s, const char* what) {
  fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: leveldb_probe DIR N\n");
    return 2;
  }
  std::string dir = argv[1];
  int n = atoi(argv[2]);
  leveldb::Options options;
  options.create_if_missing = true;
  {
    leveldb::DB* raw = nullptr;
    leveldb::Status s = leveldb::DB::Open(options, dir, &raw);
    if (!s.ok()) return Fail(s, "open");
    std::unique_ptr<leveldb::DB> db(raw);
    for (int start = 0; start < n; start += 1000) {
      leveldb::WriteBatch batch;
      for (int i = start; i < start + 1000 && i < n; ++i) batch.Put(Key(i), Value(i, 0));
      s = db->Write(leveldb::WriteOptions(), &batch);
      if (!s.ok()) return Fail(s, "write");
    }
    for (int i = 0; i < n; i += 10) db->Put(leveldb::WriteOptions(), Key(i), Value(i, 1));
    for (int i = 5; i < n; i += 100) db->Delete(leveldb::WriteOptions(), Key(i));
    leveldb::WriteOptions sync;
    sync.sync = true;
    s = db->Put(sync, "last", "synced");
    if (!s.ok()) return Fail(s, "sync put");
    db->CompactRange(nullptr, nullptr);
  }
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(options, dir, &raw);
  if (!s.ok()) return Fail(s, "reopen");
  std::unique_ptr<leveldb::DB> db(raw);
  long found = 0, missing = 0, wrong = 0;
  for (int i = 0; i < n; ++i) {
    std::string v;
    s = db->Get(leveldb::ReadOptions(), Key(i), &v);
    bool deleted = i % 100 == 5;
    if (s.IsNotFound()) {
      if (!deleted) ++missing;
      continue;
    }
    if (!s.ok()) return Fail(s, "get");
    if (deleted || v != Value(i, i % 10 == 0 ? 1 : 0)) ++wrong;
    ++found;
  }
  long iterated = 0;
  unsigned long long sum = 0;
  std::unique_ptr<leveldb::Iterator> it(db->NewIterator(leveldb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ++iterated;
    for (char c : it->value().ToString()) sum = sum * 131 + static_cast<unsigned char>(c);
  }
  if (!it->status().ok()) return Fail(it->status(), "iterate");
  std::string last;
  db->Get(leveldb::ReadOptions(), "last", &last);
  printf("found %ld missing %ld wrong %ld iterated %ld checksum %llu last %s\n", found, missing, wrong, iterated,
         sum, last.c_str());
  return missing == 0 && wrong == 0 ? 0 : 1;
}
