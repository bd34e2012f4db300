// libFuzzer target: arbitrary bytes as a whole backing file, opened, read and written through the
// engine (fuzz_common.h states the contract). Seeds: fuzz/corpus/open_bytes/ — real tern files cut
// after their last used block (open grows a short file back to whole 2 MiB steps).
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = tern::fuzz::ScratchFile();
  tern::fuzz::WriteWholeFile(path, data, size);
  tern::fuzz::CheckBackingFile(path);
  return 0;
}
