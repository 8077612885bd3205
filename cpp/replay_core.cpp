#include "replay_core.hpp"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "row_copy.hpp"

namespace rlkit {

namespace {

uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

void Rng::seed(uint64_t x) {
  for (auto& w : s) w = splitmix(x);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

ReplayCore::ReplayCore(std::vector<FieldSpec> fields, Options opt)
    : fields_(std::move(fields)), opt_(opt), cap_(static_cast<uint64_t>(opt.capacity)) {
  if (opt.capacity <= 0) throw BufferError("capacity must be a positive number of rows");
  for (size_t f = 0; f < fields_.size(); ++f) {
    const std::string& n = fields_[f].name;
    int i = static_cast<int>(f);
    if (n == "reward") reward_ = i;
    if (n == "terminated" || (n == "done" && terminated_ < 0)) terminated_ = i;
    if (n == "truncated") truncated_ = i;
    if (n == "obs") obs_ = i;
    if (n == "next_obs") next_obs_ = i;
  }
  if (opt_.share_obs && (obs_ < 0 || next_obs_ < 0))
    throw BufferError("share_obs needs fields named 'obs' and 'next_obs'");

  // Columns: the packed column first (each row's id, then the small fields), then one
  // column per large field. Keeping the id beside the small fields saves a cache miss per
  // sampled row.
  locs_.resize(fields_.size());
  cols_.push_back({nullptr, sizeof(uint64_t), true});
  for (size_t f = 0; f < fields_.size(); ++f) {
    if (opt_.share_obs && static_cast<int>(f) == next_obs_) continue;  // virtual
    if (fields_[f].bytes <= 16) {
      locs_[f] = {0, cols_[0].stride};
      cols_[0].stride += fields_[f].bytes;
    } else {
      locs_[f] = {static_cast<int>(cols_.size()), 0};
      cols_.push_back({nullptr, fields_[f].bytes, false});
    }
  }
  col_fields_.resize(cols_.size());
  for (size_t f = 0; f < fields_.size(); ++f)
    if (locs_[f].col >= 0) col_fields_[locs_[f].col].push_back(f);
  for (auto& c : cols_) {
    if (c.stride != 0 && cap_ > (SIZE_MAX - 127) / c.stride)
      throw BufferError("capacity " + std::to_string(cap_) + " x " + std::to_string(c.stride) +
                        " bytes per row overflows: lower the buffer's capacity");
    size_t bytes = (cap_ * c.stride + 63) / 64 * 64;
    try {
      c.data = static_cast<uint8_t*>(big_alloc(bytes));
    } catch (const std::bad_alloc&) {
      throw BufferError("out of memory for " + std::to_string(bytes) +
                        " bytes: lower the buffer's capacity");
    }
  }
  uint64_t nshards = (cap_ >> kShardShift) + 1;
  shards_.reset(new std::atomic<uint64_t>[nshards]);
  for (uint64_t i = 0; i < nshards; ++i) shards_[i].store(0);
  gen_.reset(new (big_alloc(cap_ * sizeof(std::atomic<uint64_t>))) std::atomic<uint64_t>[cap_]);
  for (uint64_t i = 0; i < cap_; ++i) gen_[i].store(kNoRow, std::memory_order_relaxed);
  if (opt_.share_obs) {
    side_.reset(new std::atomic<int32_t>[cap_]);
    for (uint64_t i = 0; i < cap_; ++i) side_[i].store(-1);
    pool_chunks_max_ = (4 * cap_ + 4 * static_cast<uint64_t>(opt_.stride)) / kPoolChunk + 16;
    pool_.reset(new std::atomic<uint8_t*>[pool_chunks_max_]);
    for (size_t i = 0; i < pool_chunks_max_; ++i) pool_[i].store(nullptr);
  }
  if (opt_.prioritized) tree_ = std::make_unique<PriorityTree>(cap_);
  rng_.seed(opt_.seed);
}

ReplayCore::~ReplayCore() {
  for (auto& c : cols_) std::free(c.data);
  for (size_t i = 0; i < pool_chunks_max_; ++i) delete[] pool_[i].load();
}

int32_t ReplayCore::pool_alloc() {
  if (!pool_free_.empty()) {
    int32_t e = pool_free_.back();
    pool_free_.pop_back();
    return e;
  }
  int32_t e = pool_next_++;
  size_t chunk = static_cast<size_t>(e) / kPoolChunk;
  if (chunk >= pool_chunks_max_) throw BufferError("kept next_obs store is full");
  if (pool_[chunk].load() == nullptr)
    pool_[chunk].store(new uint8_t[kPoolChunk * fields_[obs_].bytes], std::memory_order_release);
  return e;
}

bool ReplayCore::row_ends(const std::vector<const uint8_t*>& src, uint64_t r) const {
  for (int f : {terminated_, truncated_})
    if (f >= 0 && any_nonzero(src[f] + r * fields_[f].bytes, fields_[f].bytes)) return true;
  return false;
}

void ReplayCore::write_rows(const std::vector<const uint8_t*>& src, uint64_t r0, uint64_t id0,
                            uint64_t count, const int32_t* side,
                            std::vector<int32_t>& evicted) {
  uint64_t done = 0;
  while (done < count) {
    uint64_t slot = (id0 + done) % cap_;
    uint64_t shard_end = std::min(((slot >> kShardShift) + 1) << kShardShift, cap_);
    uint64_t run = std::min(count - done, shard_end - slot);
    uint64_t r = r0 + done;
    write_begin(slot);
    for (size_t f = 0; f < fields_.size(); ++f) {
      if (locs_[f].col < 0) continue;
      size_t b = fields_[f].bytes;
      if (cols_[locs_[f].col].packed) {
        copy_strided(at(f, slot), cols_[locs_[f].col].stride, src[f] + r * b, b, b, run);
      } else {
        rlkit_seqlock_copy(at(f, slot), src[f] + r * b, run * b);
      }
    }
    for (uint64_t k = 0; k < run; ++k) {
      const uint64_t id = id0 + done + k;
      gen_[slot + k].store(id, std::memory_order_relaxed);
      rlkit_seqlock_copy(cols_[0].data + (slot + k) * cols_[0].stride, &id, sizeof id);
    }
    if (opt_.share_obs) {
      size_t b = fields_[obs_].bytes;
      for (uint64_t k = 0; k < run; ++k) {
        int32_t e = side[done + k];
        int32_t old = side_[slot + k].exchange(e, std::memory_order_relaxed);
        if (old >= 0) evicted.push_back(old >> 1);
        if (e >= 0) rlkit_seqlock_copy(pool_entry(e >> 1), src[next_obs_] + (r + k) * b, b);
      }
    }
    write_end(slot);
    done += run;
  }
}

uint64_t ReplayCore::add(const std::vector<const uint8_t*>& src, uint64_t rows) {
  std::shared_lock<std::shared_mutex> structure(structure_mu_);
  if (rows == 0) return total();
  const uint64_t stored = std::min(rows, cap_);
  const uint64_t skip = rows - stored;  // a batch larger than the ring keeps its last rows
  const uint64_t s = static_cast<uint64_t>(opt_.stride);
  std::vector<int32_t> side;
  std::vector<uint8_t> need;
  if (opt_.share_obs) {
    side.assign(stored, -1);
    need.assign(stored, 0);
    for (uint64_t k = 0; k < stored; ++k) {
      uint64_t r = skip + k;
      if (row_ends(src, r)) need[k] = 1;                   // terminal: kept for good
      else if (r + s >= rows) need[k] = 2;                 // successor not here yet: pending
    }
  }
  uint64_t first;
  {
    std::lock_guard<std::mutex> lock(meta_mu_);
    for (uint64_t k = 0; k < side.size(); ++k)
      if (need[k]) side[k] = (pool_alloc() << 1) | (need[k] == 2 ? 1 : 0);
    first = reserved_;
    reserved_ += rows;
  }
  std::vector<int32_t> evicted;
  write_rows(src, skip, first + skip, stored, side.data(), evicted);

  // Commit in id order, so `total` only ever covers fully written rows.
  for (int spins = 0; committed_.load(std::memory_order_acquire) != first; ++spins)
    if (spins > 64) std::this_thread::yield();
  std::lock_guard<std::mutex> lock(meta_mu_);
  if (tree_) {
    double p = opt_.alpha == 1.0 ? max_priority_ : std::pow(max_priority_, opt_.alpha);
    for (uint64_t k = 0; k < stored; ++k) tree_->set((first + skip + k) % cap_, p);
  }
  if (opt_.share_obs) {
    for (int32_t e : evicted) pool_free_.push_back(e);
    // Predecessors whose successor row (their next_obs) has now landed drop their copy.
    uint64_t lo = first >= s ? first - s : 0;
    uint64_t hi = std::min(first, first + rows >= s ? first + rows - s : 0);
    for (uint64_t p = lo; p < hi; ++p) {
      uint64_t slot = p % cap_;
      if (gen_[slot].load(std::memory_order_relaxed) != p) continue;
      int32_t e = side_[slot].load(std::memory_order_relaxed);
      if (e < 0 || !(e & 1)) continue;
      write_begin(slot);
      side_[slot].store(-1, std::memory_order_relaxed);
      write_end(slot);
      pool_free_.push_back(e >> 1);
    }
  }
  committed_.store(first + rows, std::memory_order_release);
  return first;
}

void ReplayCore::update_priorities(const int64_t* ids, const double* priorities, int64_t n) {
  if (!tree_) throw BufferError("update_priorities needs a PrioritizedReplayBuffer");
  std::shared_lock<std::shared_mutex> structure(structure_mu_);
  for (int64_t i = 0; i < n; ++i) {
    double p = priorities[i];
    if (!std::isfinite(p) || p < 0.0)
      throw BufferError("priority at position " + std::to_string(i) + " is " +
                        std::to_string(p) + ": priorities must be finite and >= 0");
  }
  std::vector<uint64_t> slots(static_cast<size_t>(n));
  std::vector<double> leaf(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    slots[i] = static_cast<uint64_t>(ids[i]) % cap_;
    leaf[i] = opt_.alpha == 1.0 ? priorities[i] : std::pow(priorities[i], opt_.alpha);
  }
  std::lock_guard<std::mutex> lock(meta_mu_);
  // Any index handed out so far is valid (a sample may return a row whose writer has not
  // committed yet); rows overwritten since they were sampled are skipped.
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || static_cast<uint64_t>(ids[i]) >= reserved_)
      throw BufferError("index " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                        " is out of range: pass the 'indices' returned by sample (0 <= index < " +
                        std::to_string(reserved_) + ")");
  size_t kept = 0;
  double pmax = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    if (gen_[slots[i]].load(std::memory_order_relaxed) != static_cast<uint64_t>(ids[i])) continue;
    slots[kept] = slots[i];
    leaf[kept++] = leaf[i];
    pmax = std::max(pmax, priorities[i]);
  }
  tree_->set_many(slots.data(), leaf.data(), kept);
  if (pmax > max_priority_) max_priority_ = pmax;
}

void ReplayCore::clear() {
  std::unique_lock<std::shared_mutex> structure(structure_mu_);
  std::lock_guard<std::mutex> lock(meta_mu_);
  reserved_ = 0;
  committed_.store(0);
  max_priority_ = 1.0;
  for (uint64_t i = 0; i < cap_; ++i) gen_[i].store(kNoRow, std::memory_order_relaxed);
  if (tree_) tree_->clear();
  if (opt_.share_obs) {
    for (uint64_t i = 0; i < cap_; ++i) side_[i].store(-1);
    pool_free_.clear();
    pool_next_ = 0;
  }
}

}  // namespace rlkit
