// Counts heap allocations per thread, replacing the global operator new for
// the whole test binary (tests that assert "no allocation" read the count).
#include <cstdlib>
#include <new>

#include "tests/test_util.h"

namespace {
thread_local uint64_t t_allocs = 0;
}

uint64_t obd::test::thread_allocations() { return t_allocs; }

// Every form, so none is left to a sanitizer's own operator new, whose
// blocks our delete (free) would then release: AddressSanitizer reports that
// pairing (std::stable_sort's nothrow new did it).
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  t_allocs++;
  return std::malloc(n ? n : 1);
}
void* operator new(size_t n) {
  if (void* p = operator new(n, std::nothrow)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new[](size_t n, const std::nothrow_t&) noexcept { return operator new(n, std::nothrow); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
