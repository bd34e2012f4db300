// The CPU's features as glibc read them when the process started: CPU_FEATURE_ACTIVE(CLWB) and
// the like. Never the CPUID instruction itself, nor __builtin_cpu_supports (whose libgcc
// constructor runs a dozen of them at load): on a VM each CPUID traps to the hypervisor, ~8 µs here.
#pragma once

// glibc's header spells its functions' return type _Bool, which clang rejects in C++ (gcc takes it).
#define _Bool bool
#include <sys/platform/x86.h>
#undef _Bool
