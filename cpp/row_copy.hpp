// Row copies and small value helpers shared by the replay core's sources.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "replay_core.hpp"

namespace rlkit {

inline bool any_nonzero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != 0) return true;
  return false;
}

inline double load_real(const uint8_t* p, const FieldSpec& f) {
  if (f.bits == 64) {
    double v;
    std::memcpy(&v, p, 8);
    return v;
  }
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

inline void store_real(uint8_t* p, const FieldSpec& f, double v) {
  if (f.bits == 64) {
    std::memcpy(p, &v, 8);
  } else {
    float x = static_cast<float>(v);
    std::memcpy(p, &x, 4);
  }
}

// Copies `rows` rows of `B` bytes between strided places, with the size switch hoisted out
// of the loop so small fields become single moves.
template <size_t B>
inline void strided_rows(uint8_t* dst, size_t dstride, const uint8_t* src, size_t sstride,
                         uint64_t rows) {
  for (uint64_t k = 0; k < rows; ++k) std::memcpy(dst + k * dstride, src + k * sstride, B);
}

inline void copy_strided(uint8_t* dst, size_t dstride, const uint8_t* src, size_t sstride,
                         size_t b, uint64_t rows) {
  switch (b) {
    case 1: return strided_rows<1>(dst, dstride, src, sstride, rows);
    case 2: return strided_rows<2>(dst, dstride, src, sstride, rows);
    case 4: return strided_rows<4>(dst, dstride, src, sstride, rows);
    case 8: return strided_rows<8>(dst, dstride, src, sstride, rows);
    case 12: return strided_rows<12>(dst, dstride, src, sstride, rows);
    case 16: return strided_rows<16>(dst, dstride, src, sstride, rows);
    default:
      for (uint64_t k = 0; k < rows; ++k) std::memcpy(dst + k * dstride, src + k * sstride, b);
  }
}

// Copies that race with a writer by design: the caller validates them with the shard's
// sequence number and retries. scripts/sanitize_replay.sh suppresses ThreadSanitizer
// reports in exactly the functions that call these (write_rows and the read paths).
inline void rlkit_seqlock_copy(void* dst, const void* src, size_t n) {
  switch (n) {  // small rows: fixed-size copies the compiler turns into one move
    case 1: std::memcpy(dst, src, 1); break;
    case 4: std::memcpy(dst, src, 4); break;
    case 8: std::memcpy(dst, src, 8); break;
    case 16: std::memcpy(dst, src, 16); break;
    default: std::memcpy(dst, src, n);
  }
}

}  // namespace rlkit
