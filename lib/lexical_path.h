// Paths as text. The shim decides what lies under the root, and tools find what the shim keeps beside
// it, by the same lexical form of a path: no symlinks resolved, nothing looked up.
#pragma once

#include <string>

namespace tern {

// Lexical normalisation of an absolute path: repeated slashes, "." and ".." folded, no trailing
// slash ("/" stays "/"; ".." above the root stays at the root).
std::string NormalizePath(const std::string& abs);

}  // namespace tern
