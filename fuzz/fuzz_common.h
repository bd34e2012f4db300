// What every tern fuzz target checks about one backing file: opening it through the engine either
// succeeds or fails with EUCLEAN (a damaged tern file) or kNotTernFile (not one at all) — never
// another error, a crash, a hang or a sanitizer report — and a file that opens behaves: its size,
// stat and reads work, and a write reads back exactly, also after a reopen (which replays again).
// Any breach aborts, which libFuzzer reports with the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tern::fuzz {

// Points TERN_SHM_DIR at a private directory and silences engine logging. Idempotent.
// Returns the path of a scratch backing file private to this process.
const std::string& ScratchFile();

// Opens `path` as a tern file and checks the contract above; aborts on a breach.
void CheckBackingFile(const std::string& path);

// Writes `len` bytes to `path` as its whole content (replacing it).
void WriteWholeFile(const std::string& path, const uint8_t* data, size_t len);

}  // namespace tern::fuzz
