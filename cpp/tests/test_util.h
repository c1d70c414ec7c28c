// Shared pieces of the native tests: a scratch directory per test, seeded
// random bytes, and small builders for layers made with the real writers.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/status.h"

namespace obd::test {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::vector<uint8_t> random_bytes(std::mt19937_64& rng, size_t n);

// Heap allocations the calling thread has made so far (alloc_count.cpp).
uint64_t thread_allocations();

}  // namespace obd::test

// Fails the current test with the Status's message when it is not OK.
#define ASSERT_OBD_OK(expr)                                    \
  do {                                                         \
    ::obd::Status _s = (expr);                                 \
    ASSERT_TRUE(_s.is_ok()) << #expr << ": " << _s.to_string(); \
  } while (0)

// Declares `lhs` from a Result, failing the current test when it is an error.
#define ASSERT_OBD_ASSIGN(lhs, expr)                                    \
  auto OBD_CONCAT(_r, __LINE__) = (expr);                               \
  ASSERT_TRUE(OBD_CONCAT(_r, __LINE__).is_ok())                         \
      << #expr << ": " << OBD_CONCAT(_r, __LINE__).status().to_string(); \
  lhs = std::move(OBD_CONCAT(_r, __LINE__)).value()

namespace obd::test {

// Commits a read-only LSMT layer at `path` whose device bytes are `content`
// (a multiple of 512 bytes; all-zero 4 KiB blocks stay unmapped), written
// through a real writable layer and overlaybd-commit's code. `zfile` makes
// it a ZFile with that algorithm.
Status make_lower(const std::string& path, const std::vector<uint8_t>& content,
                  int zfile_algorithm = -1);

}  // namespace obd::test
