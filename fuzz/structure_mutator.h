// Structure-aware mutations of a sparse tern image (sparse_image.h) for image_fuzzer.cc: each call
// changes one on-media structure the way damage or a hostile file would, at its boundaries, and
// usually re-seals its checksum so that the engine's deeper checks are exercised.
#pragma once

#include <map>
#include <random>

#include "fuzz/sparse_image.h"

namespace tern::fuzz {

// A valid, empty meta block (fixed nonce).
Block FreshMetaBlock();

// Applies one structural mutation to the image.
void MutateStructure(std::map<uint32_t, Block>& blocks, std::mt19937_64& rng);

}  // namespace tern::fuzz
