// The fixture of the engine's file tests (file_io_test.cc, file_log_test.cc): a file in a fresh
// directory and a model of what its content must be — every write goes to both, and the file is
// checked against the model byte for byte, before and after closing and reopening.
#pragma once

#include <fcntl.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lib/file.h"
#include "tests/test_util.h"

namespace tern::test {

class FileModelTest : public ::testing::Test {
 protected:
  // The content the file must have: every write also lands here.
  void ModelWrite(uint64_t offset, const std::vector<uint8_t>& data) {
    if (model_.size() < offset + data.size()) model_.resize(offset + data.size(), 0);
    std::copy(data.begin(), data.end(), model_.begin() + static_cast<ptrdiff_t>(offset));
  }
  void ModelTruncate(uint64_t size) { model_.resize(size, 0); }

  // Writes through the engine and into the model.
  void Write(File& f, uint64_t offset, const std::vector<uint8_t>& data) {
    auto n = f.Pwrite(data.data(), data.size(), offset);
    ASSERT_TRUE(n.ok()) << "pwrite " << data.size() << "@" << offset << ": " << test::Describe(n.status());
    ASSERT_EQ(*n, data.size());
    ModelWrite(offset, data);
  }
  void Truncate(File& f, uint64_t size) {
    TERN_ASSERT_OK(f.Truncate(size));
    ModelTruncate(size);
  }

  // The file's size and every byte equal the model.
  void ExpectModel(File& f, const char* when) {
    auto size = f.Size();
    ASSERT_TRUE(size.ok()) << when;
    ASSERT_EQ(*size, model_.size()) << when;
    auto got = test::ReadAll(f);
    ASSERT_TRUE(got.ok()) << when << ": " << test::Describe(got.status());
    int64_t d = test::FirstDifference(*got, model_);
    ASSERT_EQ(d, -1) << when << ": first wrong byte at offset " << d << " (size " << model_.size() << ")";
  }

  // Closes f, reopens the path and checks the model again.
  void ReopenAndExpect(std::unique_ptr<File>& f, const char* when, int flags = O_RDWR) {
    f.reset();
    auto r = File::Open(path_, flags);
    ASSERT_TRUE(r.ok()) << "reopen " << when << ": " << test::Describe(r.status());
    f = std::move(r).value();
    ExpectModel(*f, when);
  }

  std::unique_ptr<File> Create() {
    auto r = File::Open(path_, O_RDWR | O_CREAT, 0644);
    EXPECT_TRUE(r.ok()) << test::Describe(r.status());
    return r.ok() ? std::move(r).value() : nullptr;
  }

  test::TempDir dir_;
  std::string path_ = dir_.File("f");
  std::vector<uint8_t> model_;
};

}  // namespace tern::test
