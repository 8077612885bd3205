// Sampling: choosing rows (uniform or by priority), copying them out under the shards'
// sequence locks, and n-step returns.
#include <algorithm>
#include <cmath>
#include <thread>

#include "replay_core.hpp"
#include "row_copy.hpp"

namespace rlkit {

// Copies every stored field of one slot into row q of the outputs; returns the row's id.
uint64_t ReplayCore::read_row(uint64_t slot, const SampleOut& out, int64_t q) const {
  for (;;) {
    uint64_t v = shard(slot).load(std::memory_order_acquire);
    if (v & 0xffffffffu) {
      std::this_thread::yield();
      continue;
    }
    uint64_t id = gen_[slot].load(std::memory_order_relaxed);
    for (size_t f = 0; f < fields_.size(); ++f) {
      if (locs_[f].col < 0) continue;
      size_t b = fields_[f].bytes;
      rlkit_seqlock_copy(out.fields[f] + q * b, at(f, slot), b);
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (shard(slot).load(std::memory_order_relaxed) != v) continue;
    if (opt_.share_obs && !read_next_obs(id, out.fields[next_obs_] + q * fields_[obs_].bytes))
      continue;  // the slot was overwritten between the two reads: read the new row
    return id;
  }
}

// share_obs: a row's next_obs is its kept copy, or else the obs of row id + stride.
bool ReplayCore::read_next_obs(uint64_t id, uint8_t* dst) const {
  const uint64_t slot = id % cap_;
  if (!opt_.share_obs) {
    for (;;) {
      uint64_t v = shard(slot).load(std::memory_order_acquire);
      if (v & 0xffffffffu) {
        std::this_thread::yield();
        continue;
      }
      bool same = gen_[slot].load(std::memory_order_relaxed) == id;
      rlkit_seqlock_copy(dst, at(next_obs_, slot), fields_[next_obs_].bytes);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (shard(slot).load(std::memory_order_relaxed) == v) return same;
    }
  }
  const uint64_t succ = (id + static_cast<uint64_t>(opt_.stride)) % cap_;
  for (;;) {
    uint64_t v = shard(slot).load(std::memory_order_acquire);
    uint64_t w = shard(succ).load(std::memory_order_acquire);
    if ((v | w) & 0xffffffffu) {
      std::this_thread::yield();
      continue;
    }
    bool same = gen_[slot].load(std::memory_order_relaxed) == id;
    int32_t e = side_[slot].load(std::memory_order_relaxed);
    const uint8_t* from = e >= 0 ? pool_entry(e >> 1) : at(obs_, succ);
    rlkit_seqlock_copy(dst, from, fields_[obs_].bytes);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (shard(slot).load(std::memory_order_relaxed) == v &&
        shard(succ).load(std::memory_order_relaxed) == w)
      return same;
  }
}

// Reads the reward and episode-end flags of row `id`; false if its slot now holds another.
bool ReplayCore::read_step(uint64_t id, double* reward, bool* ended, uint8_t* small) const {
  const uint64_t slot = id % cap_;
  const size_t rb = fields_[reward_].bytes;
  for (;;) {
    uint64_t v = shard(slot).load(std::memory_order_acquire);
    if (v & 0xffffffffu) {
      std::this_thread::yield();
      continue;
    }
    bool same = gen_[slot].load(std::memory_order_relaxed) == id;
    size_t off = 0;
    for (int f : {reward_, terminated_, truncated_}) {
      if (f < 0) continue;
      rlkit_seqlock_copy(small + off, at(f, slot), fields_[f].bytes);
      off += fields_[f].bytes;
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (shard(slot).load(std::memory_order_relaxed) != v) continue;
    if (!same) return false;
    *reward = load_real(small, fields_[reward_]);
    *ended = any_nonzero(small + rb, off - rb);
    return true;
  }
}

// n-step: sums discounted rewards forward from `id` until n steps, an episode end, or the
// newest row; the last row reached supplies next_obs and the end flags.
void ReplayCore::nstep(uint64_t id, const SampleOut& out, int64_t q) const {
  uint8_t small[64];
  const uint64_t newest = total();
  const uint64_t s = static_cast<uint64_t>(opt_.stride);
  double ret = 0.0, disc = 1.0, r = 0.0;
  bool ended = false;
  uint64_t last = id;
  for (int64_t k = 0; k < opt_.n_step; ++k) {
    uint64_t j = id + static_cast<uint64_t>(k) * s;
    if (k > 0 && j >= newest) break;
    if (!read_step(j, &r, &ended, small)) {
      if (k == 0) {  // the row was overwritten after it was copied: keep its 1-step values
        if (out.discount) out.discount[q] = static_cast<float>(opt_.gamma);
        return;
      }
      break;
    }
    ret += disc * r;
    disc *= opt_.gamma;
    last = j;
    if (ended) break;
  }
  if (last != id) {
    const int ends[2] = {terminated_, truncated_};
    size_t off = fields_[reward_].bytes;
    for (int f : ends) {
      if (f < 0) continue;
      std::memcpy(out.fields[f] + q * fields_[f].bytes, small + off, fields_[f].bytes);
      off += fields_[f].bytes;
    }
    read_next_obs(last, out.fields[next_obs_] + q * fields_[next_obs_].bytes);
  }
  store_real(out.fields[reward_] + q * fields_[reward_].bytes, fields_[reward_], ret);
  if (out.discount) out.discount[q] = static_cast<float>(disc);
}

void ReplayCore::choose_prioritized(int64_t n, double beta, std::vector<uint64_t>& slots,
                                    float* w) {
  std::lock_guard<std::mutex> lock(meta_mu_);
  const double total = tree_->total();
  if (!(total > 0.0))
    throw BufferError("every stored priority is zero: nothing can be sampled; "
                      "update_priorities with positive values");
  std::vector<double> u(static_cast<size_t>(n));
  const double step = total / static_cast<double>(n);
  for (int64_t q = 0; q < n; ++q)  // stratified: one draw per equal slice of the mass
    u[q] = std::min((static_cast<double>(q) + rng_.uniform()) * step, std::nextafter(total, 0.0));
  std::vector<int64_t> leaf(static_cast<size_t>(n));
  tree_->find(u.data(), static_cast<size_t>(n), leaf.data(), mass_scratch_);
  const double pmin = tree_->min_positive();
  for (int64_t q = 0; q < n; ++q) {
    slots[q] = static_cast<uint64_t>(leaf[q]);
    if (w) {
      // w = (N P(i))^-beta / max_j (N P(j))^-beta = (p_i / p_min)^-beta, exactly.
      double ratio = tree_->get(slots[q]) / pmin;
      w[q] = static_cast<float>(beta == 0.0 ? 1.0 : std::pow(ratio, -beta));
    }
  }
}

void ReplayCore::sample(int64_t n, double beta, const SampleOut& caller_out) {
  std::shared_lock<std::shared_mutex> structure(structure_mu_);
  std::lock_guard<std::mutex> sampler(sample_mu_);
  const uint64_t newest = total();
  const uint64_t stored = std::min(newest, cap_);
  if (stored == 0) throw BufferError("cannot sample from an empty buffer: add transitions first");
  if (n <= 0) throw BufferError("sample size must be positive, got " + std::to_string(n));
  if (static_cast<uint64_t>(n) > stored)
    throw BufferError("cannot sample " + std::to_string(n) + " rows: only " +
                      std::to_string(stored) + " are stored");
  SampleOut out = caller_out;
  if (out.ids == nullptr) {
    id_scratch_.resize(static_cast<size_t>(n));
    out.ids = id_scratch_.data();
  }
  std::vector<uint64_t>& slots = slot_scratch_;
  slots.resize(static_cast<size_t>(n));
  if (tree_) {
    choose_prioritized(n, beta, slots, out.weights);
  } else {
    const uint64_t lo = newest - stored;
    for (int64_t q = 0; q < n; ++q) slots[q] = (lo + rng_.below(stored)) % cap_;
  }
  copy_rows(slots.data(), n, out);
  for (int64_t q = 0; q < n; ++q) {
    if (opt_.n_step > 1) {
      nstep(static_cast<uint64_t>(out.ids[q]), out, q);
    } else if (out.discount) {
      out.discount[q] = static_cast<float>(opt_.gamma);
    }
  }
}

// Batched sequence-lock read: note every row's shard sequence, copy field by field (so the
// random-access misses of many rows overlap), then re-read the sequences and copy again,
// one row at a time, only the rows a writer touched meanwhile.
void ReplayCore::copy_rows(const uint64_t* slots, int64_t n, const SampleOut& out) const {
  std::vector<uint64_t>& seq = seq_scratch_;
  seq.resize(static_cast<size_t>(n));
  for (int64_t q = 0; q < n; ++q) seq[q] = shard(slots[q]).load(std::memory_order_acquire);
  constexpr int64_t kAhead = 8;
  for (size_t ci = 0; ci < cols_.size(); ++ci) {
    const Column& c = cols_[ci];
    const std::vector<size_t>& fs = col_fields_[ci];
    for (int64_t q = 0; q < n; ++q) {
      if (q + kAhead < n) {  // a row may straddle cache lines: fetch its first and last
        const uint8_t* ahead = c.data + slots[q + kAhead] * c.stride;
        __builtin_prefetch(ahead);
        __builtin_prefetch(ahead + c.stride - 1);
      }
      const uint8_t* row = c.data + slots[q] * c.stride;
      for (size_t f : fs) {
        const size_t b = fields_[f].bytes;
        rlkit_seqlock_copy(out.fields[f] + q * b, row + locs_[f].offset, b);
      }
      if (ci == 0) rlkit_seqlock_copy(&out.ids[q], row, sizeof(int64_t));
    }
  }
  std::atomic_thread_fence(std::memory_order_acquire);
  for (int64_t q = 0; q < n; ++q) {
    bool torn = (seq[q] & 0xffffffffu) || shard(slots[q]).load(std::memory_order_relaxed) != seq[q];
    if (opt_.share_obs && !torn) {
      const size_t b = fields_[obs_].bytes;
      torn = !read_next_obs(static_cast<uint64_t>(out.ids[q]), out.fields[next_obs_] + q * b);
    }
    if (torn) out.ids[q] = static_cast<int64_t>(read_row(slots[q], out, q));
  }
}


}  // namespace rlkit
