// Counts heap allocations per thread, replacing the global operator new for
// the whole test binary (tests that assert "no allocation" read the count).
#include <cstdlib>
#include <new>

#include "tests/test_util.h"

namespace {
thread_local uint64_t t_allocs = 0;
}

uint64_t obd::test::thread_allocations() { return t_allocs; }

void* operator new(size_t n) {
  t_allocs++;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
