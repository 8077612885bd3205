// Allocation of large arrays (columns, trees, per-slot metadata).
//
// Random rows of a buffer of hundreds of MB miss the TLB on nearly every access with 4 KiB
// pages; large arrays are therefore 2 MiB aligned and marked for transparent huge pages
// (as numpy does for its own large arrays). Memory is committed lazily, page by page.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>

namespace rlkit {

inline void* big_alloc(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  if (bytes < 2 * kHuge) {
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  size_t size = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = std::aligned_alloc(kHuge, size);
  if (p == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  madvise(p, size, MADV_HUGEPAGE);  // a hint: ignored where THP is off
#endif
  return p;
}

struct BigFree {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace rlkit
