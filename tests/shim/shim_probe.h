// shim_probe's shared helpers and the scenarios that live in shim_probe_procs.cc. Every scenario
// prints what its calls returned and returns the probe's exit status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace shim_probe {

std::string ErrName(int e);
// "ok N" or "-1 ENAME".
std::string Res(long r);
// Prints "what: ok N" or "what: -1 ENAME".
void Say(const std::string& what, long r);
uint64_t Fnv(const void* p, size_t n);
// The whole file, or "<ENAME>" when it cannot be opened.
std::string ReadWhole(const char* path);

int Fork();
int Exec(const char* self);
int ExecChild(int fd);
int Append2(int n);
int Threads();
int ForkWhileWriting();
int Spawn();
int Splice();
int OPath();
int SystemPopen();
int Times();
int MmapPins();  // shim_probe_mmap.cc
int Aio();       // shim_probe_aio.cc
int Signals();   // shim_probe_signals.cc
int Cancel();    // shim_probe_cancel.cc
int Reopen();    // shim_probe_reopen.cc
int RawFd();     // shim_probe_reopen.cc
int StatMake();  // shim_probe_stat.cc
int StatCheck();
int StatRace();

}  // namespace shim_probe
