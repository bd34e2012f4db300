// Unmodified programs under `tern run`, each compared with the same run on the kernel: same exit
// status, same output, and the files left in the tern root are valid tern files with the bytes the
// kernel run left in its plain directory (DESIGN §9, issue 3).
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "lib/file.h"
#include "tests/shim/shim_test_util.h"

namespace tern::shim_test {
namespace {

class ShimPrograms : public ::testing::Test {
 protected:
  void SetUp() override {
    WritePlain(s_.input_dir() + "/in.txt", TextLines(20000, 1));
    WritePlain(s_.input_dir() + "/in.bin", Bytes(300000, 2));
    WritePlain(s_.input_dir() + "/small.txt", "alpha\nbeta\ngamma\n");
  }

  // Runs `script` with bash in both directories; expects the same status and stdout (and stderr
  // when `same_stderr`), then the same trees. Returns the tern run.
  RunResult ExpectSame(const std::string& script, bool same_stderr = false,
                       const std::set<std::string>& plain_files = {}) {
    RunResult plain = s_.Bash(script, false);
    RunResult tern = s_.Bash(script, true);
    EXPECT_EQ(plain.status, tern.status) << "kernel stderr:\n" << plain.err << "\ntern stderr:\n" << tern.err;
    EXPECT_EQ(plain.out, tern.out) << "tern stderr:\n" << tern.err;
    if (same_stderr) {
      EXPECT_EQ(plain.err, tern.err);
    }
    ExpectSameTrees(s_, plain_files);
    return tern;
  }

  Scratch s_;
};

TEST_F(ShimPrograms, Cat) {
  RunResult r = ExpectSame(
      "cat $INPUT/in.txt > out.txt && cat out.txt out.txt > twice.txt && cat < twice.txt | wc -c && "
      "cat $INPUT/small.txt >> out.txt && tail -n 2 out.txt && cat missing.txt; echo status $?");
  EXPECT_NE(r.out.find("status 1"), std::string::npos);
}

TEST_F(ShimPrograms, Cp) {
  ExpectSame(
      "cp $INPUT/in.bin a.bin && cp a.bin b.bin && cp $INPUT/in.txt t.txt && cp -p t.txt p.txt && "
      "mkdir d && cp a.bin t.txt d/ && cp -r d e && cmp a.bin e/a.bin && cmp b.bin $INPUT/in.bin && echo same && "
      "cp a.bin /dev/null && cp b.bin $INPUT/../copied-out.bin && cmp $INPUT/in.bin $INPUT/../copied-out.bin && echo out");
}

TEST_F(ShimPrograms, Dd) {
  ExpectSame(
      "dd if=$INPUT/in.bin of=d.bin bs=4096 conv=fsync status=none && "
      "dd if=d.bin of=d2.bin bs=1000 skip=3 count=5 status=none && "
      "dd if=$INPUT/in.txt of=d.bin bs=512 seek=7 count=3 conv=notrunc status=none && "
      "dd if=/dev/zero of=z.bin bs=4096 count=10 status=none && dd if=d.bin bs=7 count=3 status=none | od -c | head -n 2");
}

TEST_F(ShimPrograms, HeadTailWcSort) {
  ExpectSame(
      "cp $INPUT/in.txt f && head -n 5 f && tail -c 100 f && tail -n 3 f && wc f && wc -c < f && "
      "sort -r f -o s && sort -n -k2 s | head -n 3 && sort -o f f && head -n 2 f && "
      "stat -c '%s %F %n' f s && uniq -c f | tail -n 1");
}

TEST_F(ShimPrograms, TruncateMvRm) {
  ExpectSame(
      "cp $INPUT/in.txt f && truncate -s 5000 f && wc -c f && truncate -s 10 f && cat f; echo && "
      "truncate -s +3000 f && wc -c f && truncate -s 9000 new && stat -c %s new && "
      "echo x > a && mv a b && ls && mkdir d && echo y > d/z && mv d e && cat e/z && mv b e/ && ls e && "
      "rm e/b && rm -r e && ls && touch t && ls -s t | cut -c1-0 && echo done");
}

TEST_F(ShimPrograms, ReadOnlyCreatesMakeTernFiles) {
  // flock(1) and daemons' lock files open O_RDONLY|O_CREAT: the file is created (an empty tern
  // file, no warning), reads as empty, refuses writes through that fd, and O_EXCL sees it.
  ExpectSame(
      "flock lock -c 'echo held' && flock -s lock cat lock && wc -c lock && python3 -c '\n"
      "import os\n"
      "fd = os.open(\"ro\", os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)\n"
      "print(os.read(fd, 10), os.fstat(fd).st_size, oct(os.fstat(fd).st_mode & 0o777))\n"
      "try:\n  os.write(fd, b\"x\")\nexcept OSError as e:\n  print(\"write:\", e.errno)\n"
      "os.close(fd)\n"
      "try:\n  os.open(\"ro\", os.O_RDONLY | os.O_CREAT | os.O_EXCL)\nexcept OSError as e:\n  print(\"again:\", e.errno)\n"
      "' && echo appended >> lock && cat lock");
}

TEST_F(ShimPrograms, InPlaceEditorsKeepTernFiles) {
  // sed -i writes a temporary file (mkstemp) in the same directory and renames it over the original.
  ExpectSame(
      "seq 1 2000 > f && sed -i 's/^1/one/' f && sed -n '1p;1000p;$p' f && "
      "perl -pi -e 's/^2/two/' f 2>/dev/null || sed -i 's/^2/two/' f; grep -c two f; wc -c f");
}

TEST_F(ShimPrograms, Tar) {
  ExpectSame(
      "mkdir src && cp $INPUT/in.txt $INPUT/in.bin $INPUT/small.txt src/ && echo nested > src/n && "
      "touch -d @1000000000 src/* src && tar cf t.tar --sort=name --mtime=@1000000000 src && tar tf t.tar | sort && mkdir x && tar xf t.tar -C x && cmp x/src/in.bin $INPUT/in.bin && "
      "tar czf t.tgz --sort=name --mtime=@1000000000 src && mkdir y && tar xzf t.tgz -C y && diff -r y/src src && echo extracted");
}

TEST_F(ShimPrograms, BashRedirections) {
  ExpectSame(
      "echo a > f; echo b >> f; printf 'c %d\\n' 3 >> f; ls missing 2> err; echo $?; cat f; "
      "{ echo x; echo y; } > g; while read l; do echo \"got $l\"; done < f; "
      "exec 3> h; echo three >&3; echo four >&3; exec 3>&-; cat h; "
      "echo z 2>&1 >> f; cat f; read first < g; echo \"first=$first\"; "
      "echo one > o; echo two 1<> o; cat o; set -o noclobber; echo no 2>/dev/null > o; echo \"noclobber $?\"; "
      "echo err-line >&2 2>>e2; ( echo sub ) >> g; cat g");
}

TEST_F(ShimPrograms, HereStringsAndPipelines) {
  ExpectSame(
      "cat <<< 'here string' > hs; tr a-z A-Z <<< abc > up; cat > hd <<EOF\nline1\nline2\nEOF\n"
      "seq 1 1000 | sort -r | head -n 3 > p; cat p | tee t1 t2 > /dev/null; seq 5 | tee -a t1 | wc -l; "
      "cat hs up hd p t1 t2; sort < p | uniq > u; cat u | wc -l");
}

TEST_F(ShimPrograms, ExternalCommandsShareTheRedirectedFd) {
  // Every /bin/echo is a new process that inherits the shell's tern fd; the offset is shared.
  ExpectSame(
      "{ echo 1; /bin/echo 2; echo 3; /bin/echo 4; printf '5\\n'; } > f; cat f; "
      "( exec > g; echo a; /bin/echo b; sh -c 'echo c; /bin/echo d'; echo e ); cat g; "
      "/bin/echo x >> f; env -i /bin/echo clean-env >> f; sh -c 'cat f > h; /bin/echo appended >> h'; cat h; "
      "python3 -c 'import sys; sys.stdout.write(\"py\\n\")' >> h 2>/dev/null || echo py >> h; tail -n 1 h");
}

TEST_F(ShimPrograms, ProgramsStoredAsTernFilesRun) {
  // The kernel's exec cannot read a tern file's backing bytes: binaries and scripts the program
  // wrote under the root must still run, by path, through sh, PATH, subprocess and posix_spawn,
  // with the kernel's argument conventions for `#!` lines (one optional argument, nesting) and its
  // errors for a file without the execute bit.
  ExpectSame(
      "cp /bin/true t && ./t && echo ran-true; cp /bin/echo e && ./e hello; "
      "printf '#!/bin/sh\\necho script \"$0\" \"$@\"\\n' > s.sh && chmod +x s.sh && ./s.sh a 'b c'; "
      "printf '#!/bin/sh -e\\necho with-arg $0 $1\\n' > s2 && chmod +x s2 && ./s2 x; "
      "printf '#!./s.sh\\n' > s3 && chmod +x s3 && ./s3 nested; "
      "cp /bin/sh mysh && printf '#!./mysh\\necho tern-interpreter $0 $1\\n' > s4 && chmod +x s4 && ./s4 y; "
      "sh -c './e via-sh'; PATH=$PWD:$PATH e via-path; "
      "python3 -c 'import subprocess; print(subprocess.run([\"./e\", \"sub\"], capture_output=True, text=True).stdout.strip())'; "
      "python3 -c 'import os; os.posix_spawn(\"./e\", [\"e\", \"spawned\"], os.environ); os.wait()'; "
      "chmod -x s.sh; ./s.sh 2>/dev/null; echo noexec $?; ./missing 2>/dev/null; echo missing $?");
}

TEST_F(ShimPrograms, SharedLibrariesBuiltUnderTheRootLoad) {
  // The dynamic loader reads libraries with raw system calls, so a library a build writes under
  // the root is created plain; the program linked against it is a tern file and runs.
  if (!HaveProgram("cc")) GTEST_SKIP() << "cc is not installed";
  ExpectSame(
      "printf 'int f(void){return 7;}\\n' > f.c && cc -shared -fPIC -o libf.so f.c && "
      "printf 'int f(void);\\n#include <stdio.h>\\nint main(void){printf(\"%d\\\\n\", f());return 0;}\\n' > m.c && "
      "cc -o m m.c -L. -lf && LD_LIBRARY_PATH=. ./m && "
      "python3 -c 'import ctypes; print(ctypes.CDLL(\"./libf.so\").f())'",
      /*same_stderr=*/true, /*plain_files=*/{"libf.so"});
}

TEST_F(ShimPrograms, MakeAndGccBuildUnderTheRoot) {
  // make reads the makefile and stats targets, gcc and as write objects, ar an archive, ld the
  // executables (run from the root afterwards); a rebuild after one source changed redoes part.
  if (!HaveProgram("make") || !HaveProgram("gcc") || !HaveProgram("ar")) GTEST_SKIP() << "make, gcc or ar is not installed";
  // (make test runs this under make: the inner make would print its directory, which differs.)
  ExpectSame(R"(
unset MAKEFLAGS MFLAGS MAKELEVEL
cat > a.c <<'EOF'
#include <stdio.h>
int f(int);
int main(void) { printf("%d\n", f(20)); return 0; }
EOF
echo 'int f(int x) { return 2 * x + 1; }' > b.c
printf 'prog: a.o libb.a\n\tgcc -o $@ a.o -L. -lb\n%%.o: %%.c\n\tgcc -O2 -c $< -o $@\nlibb.a: b.o\n\tar rcsD $@ $^\n' > Makefile
make && ./prog && make -q prog; echo "up to date: $?"
sleep 1; echo 'int f(int x) { return 3 * x; }' > b.c
make && ./prog && make -q prog; echo "rebuilt: $?"
gcc -O2 -o direct a.c b.c && ./direct && gcc -E a.c | grep -c printf
)",
             /*same_stderr=*/true);
}

TEST_F(ShimPrograms, Git) {
  // git: loose objects written through temporary files and renamed, the index and refs through
  // lock files, packs written and read through mmap by gc and repack, fsck, a merge, a local
  // clone (hard links). Dates are fixed and packing is single-threaded, so both runs write the same
  // objects; the index records inode numbers and the clone's config and reflogs the source's path,
  // so they are compared through git, then removed (the URL set relative).
  if (!HaveProgram("git")) GTEST_SKIP() << "git is not installed";
  ExpectSame(
      "export HOME=$PWD GIT_AUTHOR_DATE=2026-01-01T00:00:00Z GIT_COMMITTER_DATE=2026-01-01T00:00:00Z; "
      "git config --global user.email t@t && git config --global user.name t && "
      "git config --global init.defaultBranch main && git config --global pack.threads 1 && "
      "git init -q repo && cd repo && "
      "for i in $(seq 12); do seq $i 300 > f$((i % 5)).txt; git add -A; git commit -q -m c$i; done; "
      "git log --oneline | wc -l; git gc -q --aggressive && git fsck --full --no-progress && "
      "git count-objects -v | grep -E '^(count|in-pack|packs):'; "
      "git checkout -q -b side HEAD~4 && echo side > s.txt && git add s.txt && git commit -q -m side && "
      "git checkout -q main && git merge -q --no-edit side && git log --oneline -3 && "
      "git status --short && git diff HEAD~3 --stat | tail -1 && git repack -adq && git fsck --no-progress && "
      "git cat-file -p HEAD:f2.txt | md5sum && git clone -q . ../clone && cd ../clone && "
      "git log --oneline | wc -l && git fsck --no-progress && md5sum f3.txt && "
      "git ls-files -s | md5sum && git remote set-url origin ../repo && cd .. && "
      "rm -rf repo/.git/index clone/.git/index clone/.git/logs",
      /*same_stderr=*/true);
}

TEST_F(ShimPrograms, TailFollowsAppends) {
  // `tail -f` sleeps on inotify: each change through the engine must reach it as IN_MODIFY,
  // including the last of a burst of appends (announced when the rate limit's window closes).
  if (!HaveProgram("timeout")) GTEST_SKIP() << "timeout is not installed";
  ExpectSame(
      "echo first > log; timeout 20 tail -f log > seen & "
      "until grep -q first seen 2>/dev/null; do sleep 0.05; done; "
      "for i in 1 2 3; do echo line$i >> log; done; printf 'a\\nb\\n' >> log; "
      "for i in $(seq 1 200); do [ \"$(wc -l < seen)\" -ge 6 ] && break; sleep 0.05; done; "
      "kill %1; wait; cat seen");
}

TEST_F(ShimPrograms, SymlinksUnderTheRoot) {
  // A link under the root to a file outside it is the kernel's, quietly (a venv's bin/python); a
  // link to a tern file reads and appends through the shim; a dangling one creates its target.
  ExpectSame(
      "ln -s $INPUT/small.txt outside && cat outside && wc -c < outside; "
      "echo data > real && ln -s real inside && cat inside && echo more >> inside && cat real; "
      "ln -s target dangling && echo created > dangling && cat target",
      /*same_stderr=*/true);
}

TEST_F(ShimPrograms, Sqlite3) {
  if (!HaveProgram("sqlite3")) GTEST_SKIP() << "sqlite3 is not installed";
  std::string sql = "create table t(id integer primary key, name text, v real);\n";
  for (int txn = 0; txn < 10; ++txn) {
    sql += "begin;\n";
    for (int i = 0; i < 1000; ++i) {
      int id = txn * 1000 + i;
      sql += "insert into t(name, v) values('name-" + std::to_string(id) + "', " + std::to_string(id * 0.5) + ");\n";
    }
    sql += "commit;\n";
  }
  sql += "create index tv on t(v);\nupdate t set name = upper(name) where id % 7 = 0;\n"
         "delete from t where id % 13 = 0;\n";
  WritePlain(s_.input_dir() + "/load.sql", sql);
  RunResult r = ExpectSame(
      "sqlite3 db < $INPUT/load.sql && "
      "sqlite3 db 'pragma integrity_check; select count(*), sum(v), max(name) from t;' && "
      "sqlite3 db 'vacuum; pragma integrity_check; select count(*) from t where name like \"NAME%\";' && ls");
  EXPECT_NE(r.out.find("ok\n9231|"), std::string::npos) << r.out;
}

TEST_F(ShimPrograms, Sqlite3WalMode) {
  // WAL mode maps NAME-shm shared and writable in every connection: it stays a plain file (the
  // database and its WAL are tern files), so a writer and concurrent readers in other processes work.
  if (!HaveProgram("sqlite3")) GTEST_SKIP() << "sqlite3 is not installed";
  RunResult r = ExpectSame(
      "sqlite3 w.db 'pragma journal_mode=wal; create table t(a integer);'; "
      "( for i in $(seq 1 300); do echo \"insert into t values($i);\"; done | sqlite3 -cmd '.timeout 10000' w.db ) & "
      "for i in 1 2 3 4 5 6; do sqlite3 -cmd '.timeout 10000' w.db 'select count(*) >= 0 from t;'; done; wait; "
      "sqlite3 w.db 'pragma integrity_check; pragma journal_mode; select count(*), sum(a) from t;' && ls");
  EXPECT_EQ(r.out, "wal\n1\n1\n1\n1\n1\n1\nok\nwal\n300|45150\nw.db\n");
}

TEST_F(ShimPrograms, Python) {
  if (!HaveProgram("python3")) GTEST_SKIP() << "python3 is not installed";
  WritePlain(s_.input_dir() + "/io.py", R"PY(
import os, mmap
with open('text.txt', 'w') as f:
    for i in range(2000):
        print('row', i, file=f)
with open('text.txt', 'a') as f:
    f.write('tail\n')
with open('text.txt') as f:
    lines = f.readlines()
print(len(lines), lines[0].strip(), lines[-1].strip())
with open('bin.dat', 'wb') as f:
    f.write(bytes(range(256)) * 100)
    f.seek(1000)
    f.write(b'MARK')
    f.truncate(20000)
with open('bin.dat', 'r+b') as f:
    f.seek(-10, os.SEEK_END)
    print(f.tell(), f.read(4).hex())
    f.seek(0)
    print(f.read(8).hex(), f.read(1000)[-4:].hex())
fd = os.open('bin.dat', os.O_RDWR)
os.pwrite(fd, b'PWRITE', 5000)
print(os.pread(fd, 10, 4998).hex(), os.fstat(fd).st_size, os.path.getsize('bin.dat'))
os.ftruncate(fd, 6000)
os.close(fd)
with open('bin.dat', 'rb') as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    print(len(m), m[5000:5006])
    m.close()
os.replace('text.txt', 'renamed.txt')
print(sorted(os.listdir('.')))
)PY");
  ExpectSame("python3 $INPUT/io.py");
}

// One process writes files, reads them back, deletes some and creates others: the new files take
// over the deleted ones' backing files (lib/backing_cache.h). They must read exactly as new files
// do on the kernel — the old bytes (all non-zero) never show in a hole or a grown end — with the
// mode the umask gives, for this process and the next; and no spare is left in the root.
TEST_F(ShimPrograms, DeletedFilesLendTheirBackingToNewFiles) {
  if (!HaveProgram("python3")) GTEST_SKIP() << "python3 is not installed";
  WritePlain(s_.input_dir() + "/recycle.py", R"PY(
import os
for i in range(12):
    with open(f'f{i}', 'wb') as f:
        f.write(bytes([65 + i]) * (50000 + 4000 * i))
for i in range(12):
    with open(f'f{i}', 'rb') as f:
        assert f.read() == bytes([65 + i]) * (50000 + 4000 * i)
for i in range(8):
    os.unlink(f'f{i}')
os.umask(0o027)
for i in range(8):
    with open(f'g{i}', 'wb') as f:
        f.write(b'new')
        f.seek(30000 + 1000 * i)
        f.write(b'end')
    os.truncate(f'g{i}', 70000 + i)
for i in range(8):
    with open(f'g{i}', 'rb') as f:
        d = f.read()
    print(len(d), d[:3], d[30000 + 1000 * i:30003 + 1000 * i], d.count(0), oct(os.stat(f'g{i}').st_mode & 0o777))
print(sorted(os.listdir('.')))
)PY");
  RunResult tern = ExpectSame("TERN_LOG=debug python3 $INPUT/recycle.py && cat g3 g5 | md5sum && ls -A");
  EXPECT_NE(tern.err.find(" 8 new files made of them"), std::string::npos)
      << "every new file took a deleted one's backing:\n" << tern.err;
  struct stat st;
  std::string spares = s_.tern_dir().substr(0, s_.tern_dir().rfind('/')) + "/.tern-spares-" + std::to_string(geteuid());
  EXPECT_NE(stat(spares.c_str(), &st), 0) << "no spare directory is left beside the root";
}

TEST_F(ShimPrograms, LevelDb) {
#ifndef LEVELDB_PROBE_BIN
  GTEST_SKIP() << "LevelDB (libleveldb-dev) was not found at configure time";
#else
  // LevelDB's own LOG file carries timestamps and its compaction timing varies, so the trees are not
  // compared byte for byte: the data read back must match, and every file must be a tern file.
  std::string run = std::string(LEVELDB_PROBE_BIN) + " db 200000";
  RunResult plain = s_.Bash(run, false);
  RunResult tern = s_.Bash(run, true);
  EXPECT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(tern.status, 0) << tern.err;
  EXPECT_EQ(plain.out, tern.out);
  EXPECT_NE(tern.out.find("found 198000 missing 0 wrong 0 iterated 198001"), std::string::npos) << tern.out;
  ExpectAllTernFiles(s_.tern_dir() + "/db");
#endif
}

// A program's first read-only open of a file reads it slotless (lib/pool.h): no shared-state
// object is published for it, and a mapping of it joins the file (an attached open pins the
// mapped blocks). With TERN_SLOTLESS_READS=0 the read joins at once, as before.
TEST_F(ShimPrograms, AFirstReadJoinsNoSharedStateUntilItMaps) {
  const std::string script =
      "import mmap, os\n"
      "st = os.stat('made')\n"
      "prefix = '.tern.%x.%x.' % (st.st_dev, st.st_ino)\n"
      "shm = os.environ.get('TERN_SHM_DIR', '/dev/shm')\n"
      "def published(): return sum(n.startswith(prefix) for n in os.listdir(shm))\n"
      "with open('made', 'rb') as f:\n"
      "    data = f.read()\n"
      "    read_alone = published()\n"
      "    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)\n"
      "    print(read_alone, published(), m[:] == data, len(data))\n"
      "    m.close()\n";
  for (bool tern : {false, true}) {
    RunResult made = s_.Bash("seq 1 20000 > made", tern);
    ASSERT_EQ(made.status, 0) << made.err;
  }
  RunResult plain = s_.Run({"python3", "-c", script}, false);
  ASSERT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(plain.out, "0 0 True 108894\n");
  RunResult slotless = s_.Run({"python3", "-c", script}, true);
  EXPECT_EQ(slotless.status, 0) << slotless.err;
  EXPECT_EQ(slotless.out, "0 1 True 108894\n") << slotless.err;
  RunResult joining = s_.Run({"python3", "-c", script}, true, {"TERN_SLOTLESS_READS=0"});
  EXPECT_EQ(joining.status, 0) << joining.err;
  EXPECT_EQ(joining.out, "1 1 True 108894\n") << joining.err;
}

// A shared mapping of a descriptor open for writing is refused, writable (its stores would bypass
// the engine) or read-only (its owner reads through it what it writes with write(), and tern's
// mappings show the file as at mmap time), with ENODEV and a line each. SQLite with mmap_size then
// reads with read(): a reader process sees each commit of a writer process (with the mapping it
// kept showing the file it had mapped).
TEST_F(ShimPrograms, SharedMmapOfAWritableDescriptorIsRefused) {
  EXPECT_EQ(RunProbe(s_, "mmap-shared-writable", false).out,
            "mmap shared writable: ok 0\nmmap shared read-only of a read-write fd: ok 0\n");
  RunResult tern = RunProbe(s_, "mmap-shared-writable", true);
  EXPECT_EQ(tern.out, "mmap shared writable: -1 ENODEV\nmmap shared read-only of a read-write fd: -1 ENODEV\n");
  EXPECT_NE(tern.err.find("shared writable mmap"), std::string::npos) << tern.err;
  EXPECT_NE(tern.err.find("shared mmap of a tern file open for writing"), std::string::npos) << tern.err;
  if (!HaveProgram("python3")) GTEST_SKIP() << "python3 is not installed";
  WritePlain(s_.input_dir() + "/mmap_reader.py", R"PY(
import sqlite3, subprocess, sys
c = sqlite3.connect('m.db')
c.execute('PRAGMA mmap_size=268435456')
c.execute('create table t(a integer primary key, b text)')
c.executemany('insert into t values(?, ?)', [(i, 'x' * 50) for i in range(5000)])
c.commit()
print(c.execute('select count(*), sum(length(b)) from t').fetchone())
for rnd in range(3):
    subprocess.run([sys.executable, '-c', f"""
import sqlite3
d = sqlite3.connect('m.db')
d.execute('PRAGMA mmap_size=268435456')
d.execute("update t set b = 'y' || b where a % 2 = {rnd % 2}")
d.execute("insert into t(b) select 'new' from t limit 100")
d.commit()
"""], check=True)
    print(c.execute('select count(*), sum(length(b)), max(a) from t').fetchone())
print(c.execute('pragma integrity_check').fetchone())
)PY");
  RunResult r = ExpectSame("python3 \"$INPUT/mmap_reader.py\" 2>&1 | grep -v 'shared mmap of a tern file'");
  EXPECT_EQ(r.out, "(5000, 250000)\n(5100, 252800, 5099)\n(5200, 255650, 5199)\n(5300, 258550, 5299)\n('ok',)\n");
}

TEST_F(ShimPrograms, ForeignFilesUnderTheRootStayPlain) {
  std::string content = TextLines(100, 7);  // not a whole number of blocks: clearly not tern
  WritePlain(s_.plain_dir() + "/foreign.txt", content);
  WritePlain(s_.tern_dir() + "/foreign.txt", content);
  RunResult r = ExpectSame("cat foreign.txt | wc -l; echo more >> foreign.txt; tail -n 1 foreign.txt; wc -c foreign.txt",
                           false, {"foreign.txt"});
  EXPECT_NE(r.err.find("not a tern file"), std::string::npos) << r.err;
}

// Blocks in use as `tern stat` reports them (`blocks  N in use of M`), or -1.
long BlocksInUse(const std::string& stat_out) {
  size_t at = stat_out.find("\n  blocks");
  return at == std::string::npos ? -1 : strtol(stat_out.c_str() + at + 9, nullptr, 10);
}

// A shell loop whose every `sh` appends one line and exits. Each line is a record (the size is not
// block-aligned); with a record arena per process each line took a 4 KiB block of its own until a
// compaction. The room left in the last arena is handed over (lib/file_core_arena.cc): by the
// allocator's build when no process has the file open between the appends, by the closer when one
// holds it open. The bytes are the kernel's either way.
TEST_F(ShimPrograms, ProcessesAppendingALineEachShareARecordArena) {
  ExpectSame("for i in $(seq 60); do sh -c \"echo line $i >> log\"; done; wc -l < log");
  RunResult alone = s_.Run({TERN_BIN, "stat", s_.tern_dir() + "/log"}, false);
  ASSERT_EQ(alone.status, 0) << alone.err;
  // The meta block, the last data block and one arena (60 records of 40 bytes).
  EXPECT_LE(BlocksInUse(alone.out), 3) << alone.out;
  EXPECT_GE(BlocksInUse(alone.out), 2) << alone.out;

  // Held open by the shell meanwhile. `tern stat`, run by that shell, inherits the held fd (a tern
  // file) and writes its report into a tern file: it must run its engine beside the shim, not re-run
  // itself without it forever (the shim puts itself back for inherited tern fds).
  RunResult held = s_.Bash("exec 3>>log; for i in $(seq 61 120); do sh -c \"echo line $i >> log\"; done; " +
                               std::string(TERN_BIN) + " stat log > stat.txt; echo $?; wc -l < log; cat stat.txt",
                           true);
  ASSERT_EQ(held.status, 0) << held.err;
  EXPECT_TRUE(held.out.starts_with("0\n120\nlog\n")) << held.out;
  // 120 records fill two arenas.
  EXPECT_LE(BlocksInUse(held.out), 4) << held.out;
  // Attached: the holding shell and the tool's shim (for the inherited fd), not the 60 `sh` that
  // exited without closing it.
  size_t attached = held.out.find("attached");
  ASSERT_NE(attached, std::string::npos) << held.out;
  size_t pids = 0;
  for (size_t at = held.out.find("pid ", attached); at != std::string::npos; at = held.out.find("pid ", at + 1)) ++pids;
  EXPECT_EQ(pids, 2u) << held.out;
  std::string lines;
  for (int i = 1; i <= 120; ++i) lines += "line " + std::to_string(i) + "\n";
  uint64_t size = 0;
  auto got = ReadTern(s_.tern_dir() + "/log", &size);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, lines);
}

TEST_F(ShimPrograms, ExcludedPathsStayPlain) {
  RunResult r = s_.Bash("mkdir -p k && echo kernel > k/f && echo tern > t", true, {"TERN_EXCLUDE=*/k/*"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(ReadPlain(s_.tern_dir() + "/k/f"), "kernel\n");
  auto t = File::Open(s_.tern_dir() + "/t", O_RDONLY);
  EXPECT_TRUE(t.ok());
}

TEST_F(ShimPrograms, ImportAndExport) {
  std::string content = TextLines(3000, 9);
  WritePlain(s_.tern_dir() + "/plain.txt", content);
  RunResult imp = s_.Run({TERN_BIN, "import", s_.tern_dir() + "/plain.txt"}, false);
  EXPECT_EQ(imp.status, 0) << imp.err;
  auto f = File::Open(s_.tern_dir() + "/plain.txt", O_RDONLY);
  ASSERT_TRUE(f.ok());
  RunResult cat = s_.Bash("cat plain.txt", true);
  EXPECT_EQ(cat.out, content);
  RunResult again = s_.Run({TERN_BIN, "import", s_.tern_dir() + "/plain.txt"}, false);
  EXPECT_EQ(again.status, 0);
  EXPECT_NE(again.out.find("already a tern file"), std::string::npos);
  RunResult exp = s_.Run({TERN_BIN, "export", s_.tern_dir() + "/plain.txt", s_.base() + "/exported"}, false);
  EXPECT_EQ(exp.status, 0) << exp.err;
  EXPECT_EQ(ReadPlain(s_.base() + "/exported"), content);
  RunResult bad = s_.Run({TERN_BIN, "export", s_.input_dir() + "/small.txt", s_.base() + "/x"}, false);
  EXPECT_EQ(bad.status, 1);
  EXPECT_EQ(s_.Run({TERN_BIN, "export"}, false).status, 2);
  EXPECT_EQ(s_.Run({TERN_BIN, "frobnicate"}, false).status, 2);
  EXPECT_EQ(s_.Run({TERN_BIN, "run", "--root", s_.tern_dir(), "--", "/nonexistent/prog"}, false).status, 127);
}

// A tern file holds two or three of tern's descriptors besides the program's (backing file, shared
// state, an O_PATH one once it is opened again): the shim raises the soft RLIMIT_NOFILE to make room for them above every number the program
// could have had, so a program under the usual soft limit of 1,024 opens as many files as on the
// kernel (it stopped at 338). The program, and what it spawns or execs, sees the limit the shell
// set (getrlimit, `ulimit -n`), as on the kernel.
TEST_F(ShimPrograms, ProgramsOpenAsManyFilesAsTheirLimitAllows) {
  if (!HaveProgram("python3")) GTEST_SKIP() << "python3 is not installed";
  struct rlimit rl;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_max < 4 * 1024 + 256) GTEST_SKIP() << "the hard limit on open files (" << rl.rlim_max << ") leaves no room";
  RunResult r = ExpectSame(
      "ulimit -Sn 1024 && python3 -c \"\n"
      "import os\n"
      "fs = [open('f%d' % i, 'w') for i in range(1000)]\n"
      "for i, f in enumerate(fs): f.write(str(i))\n"
      "for f in fs: f.close()\n"
      "print(sum(len(open('f%d' % i).read()) for i in range(1000)))\n"
      "import resource\n"
      "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
      "os.waitpid(os.posix_spawn('/bin/sh', ['sh', '-c', 'ulimit -Sn'], os.environ), 0)\n"
      "os.execve('/bin/sh', ['sh', '-c', 'ulimit -Sn'], {'PATH': '/usr/bin:/bin'})\n\"");
  EXPECT_EQ(r.out, "2890\n1024\n1024\n1024\n") << r.err;
}

// Writing a copy and renaming it over the file (editors, config writers, git) while another
// process opens the file: the kernel resolves the path once, so every open gets the old file or the
// new one. Under tern an open whose file was replaced between the shim's look and the engine's
// open failed with EAGAIN (4 % of the reads here); it now looks again.
TEST_F(ShimPrograms, OpensOfAFileBeingRenamedOverNeverFail) {
  if (!HaveProgram("python3")) GTEST_SKIP() << "python3 is not installed";
  WritePlain(s_.input_dir() + "/rename_over.py", R"PY(
import errno, os, subprocess, sys, time
with open('cfg', 'w') as f: f.write('v0\n')
reader = subprocess.Popen([sys.executable, '-c', """
import errno, time
stop, reads, errors = time.time() + 2, 0, {}
while time.time() < stop:
    try:
        with open('cfg') as f: assert f.read().startswith('v')
        reads += 1
    except OSError as e:
        errors[errno.errorcode[e.errno]] = errors.get(errno.errorcode[e.errno], 0) + 1
print(reads > 1000, errors)
"""])
i = 0
while reader.poll() is None:
    i += 1
    with open('cfg.tmp', 'w') as f: f.write('v%d\n' % i)
    os.rename('cfg.tmp', 'cfg')
)PY");
  RunResult r = s_.Bash("python3 \"$INPUT/rename_over.py\"", true);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "True {}\n") << r.err;
}

// A tern file renamed or linked out of the root on the same filesystem would read as its backing
// file's format there (64 KiB starting "NRFILES1" for a 6-byte file): rename and link refuse with
// EXDEV, as across filesystems, and mv copies through the shim and removes the original, also for
// a directory. Renames within the root stay renames.
TEST_F(ShimPrograms, MovingTernFilesOutOfTheRootCopiesThem) {
  const std::string out = s_.base() + "/outside";  // beside the root: the same filesystem
  ASSERT_EQ(mkdir(out.c_str(), 0755), 0);
  RunResult r = s_.Bash("echo hello > f && mkdir d && echo inner > d/g && echo linked > l && "
                        "mv f " + out + "/f && mv d " + out + "/d && { ln l " + out + "/l 2>/dev/null; echo \"ln $?\"; } && "
                        "mv l l2 && cat l2 && ls",
                        true);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "ln 1\nlinked\nl2\n") << r.err;
  // (Compared, not printed: a backing file moved out would be 64 KiB of its format.)
  std::string f = ReadPlain(out + "/f"), g = ReadPlain(out + "/d/g");
  EXPECT_TRUE(f == "hello\n") << "outside/f holds " << f.size() << " bytes";
  EXPECT_TRUE(g == "inner\n") << "outside/d/g holds " << g.size() << " bytes";
  EXPECT_TRUE(File::Open(s_.tern_dir() + "/l2", O_RDONLY).ok()) << "renamed within the root: still a tern file";
}

// /dev/stdin, /dev/fd/N and /proc/self/fd/N open what the fd names: for a tern fd (an O_PATH
// descriptor of the backing file) the kernel would open the backing file, and `cat /dev/stdin <
// f` showed 64 KiB of its format. The shim opens the tern file again (after a rename too), in
// open and in fopen (paste, awk), as a new description at offset 0 (`> /dev/fd/4` truncates), and
// `stat -L` of such a path gives the file's size.
TEST_F(ShimPrograms, DevStdinAndDevFdOfATernFileShowTheFile) {
  RunResult r = ExpectSame(
      "echo hello > f; cat /dev/stdin < f; exec 3<f; cat /dev/fd/3; cat /proc/self/fd/3; "
      "paste /dev/fd/3 <(echo x); awk '{print \"awk:\" $0}' /dev/stdin < f; "
      "exec 4>>f; echo more > /dev/fd/4; cat f; mv f g; cat /dev/fd/3; sort /dev/stdin < g; "
      "stat -L -c %s /dev/stdin < g; stat -L -c %s /dev/fd/3");
  EXPECT_EQ(r.out, "hello\nhello\nhello\nhello\tx\nawk:hello\nmore\nmore\nmore\n5\n5\n");
}

}  // namespace
}  // namespace tern::shim_test
