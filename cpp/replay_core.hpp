// The replay buffer's storage, concurrency and sampling, free of Python.
//
// Layout: one 64-byte-aligned column per large field; fields of <= 16 bytes per row share a
// packed column so one cache line serves all of a row's small fields. Row `id` (a count of
// every transition ever added) lives in slot id % capacity.
//
// Concurrency: writers reserve a range of ids under a short mutex, copy rows shard by shard
// (256 rows) inside that shard's sequence lock, then commit in id order. A sampler copies a
// row optimistically and retries if the shard's sequence changed, so a row is never torn,
// also when a writer laps the ring and overwrites rows being copied out.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "big_alloc.hpp"
#include "priority_tree.hpp"

namespace rlkit {

struct BufferError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct FieldSpec {
  std::string name;
  uint8_t code;  // DLPack dtype code: 0 int, 1 uint, 2 float, 6 bool
  uint8_t bits;
  std::vector<int64_t> shape;
  size_t bytes;  // per row
};

struct Options {
  int64_t capacity = 0;
  bool prioritized = false;
  double alpha = 0.6;
  int64_t n_step = 1;
  double gamma = 0.99;
  int64_t stride = 1;      // rows between consecutive steps of one env (num_envs)
  bool share_obs = false;  // next_obs read from the next row's obs; episode ends kept aside
  uint64_t seed = 0;
};

// xoshiro256**: small state, so it is easy to save and restore with the buffer.
struct Rng {
  uint64_t s[4];
  void seed(uint64_t x);
  uint64_t next();
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
};

struct SampleOut {
  std::vector<uint8_t*> fields;  // one [n, *shape] C-contiguous destination per field
  int64_t* ids = nullptr;
  float* weights = nullptr;   // prioritized only
  float* discount = nullptr;  // gamma ** steps taken
};

class ReplayCore {
 public:
  ReplayCore(std::vector<FieldSpec> fields, Options opt);
  ~ReplayCore();

  const std::vector<FieldSpec>& fields() const { return fields_; }
  const Options& options() const { return opt_; }
  uint64_t capacity() const { return cap_; }
  uint64_t total() const { return committed_.load(std::memory_order_acquire); }
  uint64_t size() const {
    uint64_t t = total();
    return t < cap_ ? t : cap_;
  }

  // src[f]: B contiguous rows of field f (already validated). Returns the first id.
  uint64_t add(const std::vector<const uint8_t*>& src, uint64_t rows);
  void sample(int64_t n, double beta, const SampleOut& out);
  void update_priorities(const int64_t* ids, const double* priorities, int64_t n);
  void clear();

  // State (call with no writer in flight; the structure lock makes others wait).
  void export_field(size_t f, uint8_t* dst) const;   // slots [0, size)
  void import_field(size_t f, const uint8_t* src);   // after restore_counters
  void restore_counters(uint64_t total, double max_priority);
  double max_priority() const { return max_priority_; }
  double priority_total() {
    std::lock_guard<std::mutex> lock(meta_mu_);
    return tree_ ? tree_->total() : 0.0;
  }
  void export_priorities(double* dst) const;
  void import_priorities(const double* src);
  std::vector<int64_t> side_slots() const;           // share_obs: slots with a kept next_obs
  void export_side(const std::vector<int64_t>& slots, uint8_t* pending, uint8_t* data) const;
  void import_side(const int64_t* slots, const uint8_t* pending, const uint8_t* data, size_t k);
  Rng& rng() { return rng_; }
  std::shared_mutex& structure_mutex() { return structure_mu_; }

 private:
  struct Loc {
    int col = -1;  // -1: virtual (next_obs with share_obs)
    size_t offset = 0;
  };
  struct Column {
    uint8_t* data = nullptr;
    size_t stride = 0;
    bool packed = false;
  };
  static constexpr int kShardShift = 8;
  static constexpr uint64_t kNoRow = ~uint64_t{0};  // gen_ of a slot never written
  static constexpr uint32_t kPoolChunk = 4096;

  uint8_t* at(size_t f, uint64_t slot) const {
    const Column& c = cols_[locs_[f].col];
    return c.data + slot * c.stride + locs_[f].offset;
  }
  std::atomic<uint64_t>& shard(uint64_t slot) const { return shards_[slot >> kShardShift]; }
  void write_begin(uint64_t slot) { shard(slot).fetch_add(1, std::memory_order_acq_rel); }
  void write_end(uint64_t slot) {
    shard(slot).fetch_add((uint64_t{1} << 32) - 1, std::memory_order_release);
  }
  uint8_t* pool_entry(int32_t e) const {
    return pool_[e / kPoolChunk].load(std::memory_order_acquire) +
           static_cast<size_t>(e % kPoolChunk) * fields_[obs_].bytes;
  }
  int32_t pool_alloc();
  bool row_ends(const std::vector<const uint8_t*>& src, uint64_t r) const;
  void write_rows(const std::vector<const uint8_t*>& src, uint64_t r0, uint64_t id0,
                  uint64_t count, const int32_t* side, std::vector<int32_t>& evicted);
  uint64_t read_row(uint64_t slot, const SampleOut& out, int64_t q) const;
  void copy_rows(const uint64_t* slots, int64_t n, const SampleOut& out) const;
  bool read_step(uint64_t id, double* reward, bool* ended, uint8_t* small) const;
  bool read_next_obs(uint64_t id, uint8_t* dst) const;
  void nstep(uint64_t id, const SampleOut& out, int64_t q) const;
  void choose_prioritized(int64_t n, double beta, std::vector<uint64_t>& slots, float* w);

  std::vector<FieldSpec> fields_;
  Options opt_;
  uint64_t cap_;
  std::vector<Loc> locs_;
  std::vector<Column> cols_;                   // cols_[0]: packed (id + small fields)
  std::vector<std::vector<size_t>> col_fields_;  // fields stored in each column
  int reward_ = -1, terminated_ = -1, truncated_ = -1, obs_ = -1, next_obs_ = -1;

  std::unique_ptr<std::atomic<uint64_t>[]> shards_;
  std::unique_ptr<std::atomic<uint64_t>[], BigFree> gen_;  // id held by each slot
  std::unique_ptr<std::atomic<int32_t>[]> side_;   // share_obs: (entry << 1 | pending) or -1
  std::unique_ptr<std::atomic<uint8_t*>[]> pool_;  // chunks of kept next_obs rows
  size_t pool_chunks_max_ = 0;
  int32_t pool_next_ = 0;
  std::vector<int32_t> pool_free_;

  std::unique_ptr<PriorityTree> tree_;
  double max_priority_ = 1.0;
  Rng rng_;

  std::shared_mutex structure_mu_;  // shared: add/sample/update; exclusive: clear/state
  std::mutex meta_mu_;              // reservation, commit, tree, pool
  std::mutex sample_mu_;            // one sampler at a time (the RNG)
  uint64_t reserved_ = 0;
  std::atomic<uint64_t> committed_{0};
  std::vector<double> mass_scratch_;
  std::vector<uint64_t> slot_scratch_;
  mutable std::vector<uint64_t> seq_scratch_;  // guarded by sample_mu_
  std::vector<int64_t> id_scratch_;
};

}  // namespace rlkit
