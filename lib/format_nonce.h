// The nonce a new or emptied tern file's meta block gets (MetaHeader::nonce): it names the file's
// shared state with the inode (shared_state.h) and tells a kept table or a resting object of an
// inode's earlier file from its current one, so two formats of one inode must never share it.
#pragma once

#include <cstdint>

namespace tern {

// A fresh nonce without a system call per file (a create paid a getrandom(2) for it): a per-process
// random seed (getrandom once; time and pid if that fails), the pid and a counter, mixed by a
// bijection, so no two calls in one process repeat, nor calls in a process and its forked children
// (until one of them has made 2^32 files).
uint64_t NewFormatNonce();

}  // namespace tern
