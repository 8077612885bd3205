// Flat 8-ary sum tree and min tree over leaf priorities (already raised to alpha).
//
// Each level is its own 64-byte-aligned run of doubles, so the 8 children of a node are one
// cache line. A parent is always recomputed from its children (never updated by a delta), so
// the fp64 sums cannot drift however long the run. Empty and zero leaves hold 0 in the sum
// tree and +inf in the min tree: they are never sampled and never set the max weight.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <vector>

#include "big_alloc.hpp"

namespace rlkit {

class PriorityTree {
 public:
  static constexpr int kArity = 8;
  static constexpr int kShift = 3;

  explicit PriorityTree(size_t n) : n_(n) {
    size_t width = 1;
    depth_ = 0;
    while (width < n) {
      width *= kArity;
      ++depth_;
    }
    size_t offset = 0;
    size_t nodes = 1;
    for (int level = 0; level <= depth_; ++level) {
      offsets_.push_back(offset);
      offset += (nodes + 7) / 8 * 8;  // keep every level 64-byte aligned
      nodes *= kArity;
    }
    size_ = offset;
    sum_ = alloc(size_);
    min_ = alloc(size_);
    clear();
  }

  size_t size() const { return n_; }
  double total() const { return sum_[0]; }
  double min_positive() const { return min_[0]; }
  double get(size_t i) const { return sum_[offsets_[depth_] + i]; }

  void clear() {
    std::fill(sum_.get(), sum_.get() + size_, 0.0);
    std::fill(min_.get(), min_.get() + size_, kInf);
  }

  // Sets leaf i to v (v >= 0, finite) and recomputes its ancestors from their children.
  void set(size_t i, double v) {
    sum_[offsets_[depth_] + i] = v;
    min_[offsets_[depth_] + i] = v > 0.0 ? v : kInf;
    size_t j = i;
    for (int level = depth_ - 1; level >= 0; --level) {
      j >>= kShift;
      recompute(level, j);
    }
  }

  // Sets many leaves, then recomputes their ancestors level by level: the recomputations of
  // one level are independent, so their cache misses overlap. Repeated parents are simply
  // recomputed twice (idempotent).
  void set_many(const uint64_t* idx, const double* v, size_t n) {
    double* ls = sum_.get() + offsets_[depth_];
    double* lm = min_.get() + offsets_[depth_];
    for (size_t i = 0; i < n; ++i) {
      ls[idx[i]] = v[i];
      lm[idx[i]] = v[i] > 0.0 ? v[i] : kInf;
    }
    for (int level = depth_ - 1; level >= 0; --level) {
      const int shift = kShift * (depth_ - level);
      const double* cs0 = sum_.get() + offsets_[level + 1];
      const double* cm0 = min_.get() + offsets_[level + 1];
      for (size_t i = 0; i < n; ++i) {
        if (i + 4 < n) {
          __builtin_prefetch(cs0 + (idx[i + 4] >> shift) * kArity);
          __builtin_prefetch(cm0 + (idx[i + 4] >> shift) * kArity);
        }
        recompute(level, idx[i] >> shift);
      }
    }
  }

  // Batched, level-by-level descent: for each target mass u[q] in [0, total) finds the leaf
  // whose cumulative range holds it. Working on all queries per level lets their cache
  // misses overlap. A zero-mass child is never chosen, whatever the rounding.
  void find(const double* u, size_t n, int64_t* out, std::vector<double>& mass) const {
    mass.assign(u, u + n);
    std::fill(out, out + n, 0);
    for (int level = 0; level < depth_; ++level) {
      const double* children = sum_.get() + offsets_[level + 1];
      const double* next = level + 2 <= depth_ ? sum_.get() + offsets_[level + 2] : nullptr;
      for (size_t q = 0; q < n; ++q) {
        const double* cs = children + static_cast<size_t>(out[q]) * kArity;
        double m = mass[q];
        int chosen = -1;
        int last_positive = -1;
        for (int c = 0; c < kArity; ++c) {
          if (cs[c] > 0.0) last_positive = c;
          if (m < cs[c]) {
            chosen = c;
            break;
          }
          m -= cs[c];
        }
        if (chosen < 0) {  // rounding pushed m past the end: take the last non-empty child
          chosen = last_positive < 0 ? 0 : last_positive;
          m = 0.0;
        }
        mass[q] = m;
        out[q] = out[q] * kArity + chosen;
        if (next != nullptr) __builtin_prefetch(next + static_cast<size_t>(out[q]) * kArity);
      }
    }
  }

 private:
  static constexpr double kInf = std::numeric_limits<double>::infinity();

  // Node j of `level` becomes the sum and the positive minimum of its kArity children.
  void recompute(int level, size_t j) {
    const double* cs = sum_.get() + offsets_[level + 1] + j * kArity;
    const double* cm = min_.get() + offsets_[level + 1] + j * kArity;
    double s = 0.0;
    double m = kInf;
    for (int c = 0; c < kArity; ++c) {
      s += cs[c];
      m = std::min(m, cm[c]);
    }
    sum_[offsets_[level] + j] = s;
    min_[offsets_[level] + j] = m;
  }
  using Buffer = std::unique_ptr<double[], BigFree>;
  static Buffer alloc(size_t count) {
    return Buffer(static_cast<double*>(big_alloc(count * sizeof(double))));
  }

  size_t n_;
  int depth_ = 0;
  size_t size_ = 0;
  std::vector<size_t> offsets_;
  Buffer sum_;
  Buffer min_;
};

}  // namespace rlkit
