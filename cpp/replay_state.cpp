// Exporting and restoring a buffer's contents (state_dict / load_state_dict).
#include <cmath>
#include <cstring>

#include "replay_core.hpp"

namespace rlkit {

void ReplayCore::export_field(size_t f, uint8_t* dst) const {
  const uint64_t n = size();
  const size_t b = fields_[f].bytes;
  if (locs_[f].col >= 0) {
    for (uint64_t s = 0; s < n; ++s) std::memcpy(dst + s * b, at(f, s), b);
  } else {
    for (uint64_t s = 0; s < n; ++s) read_next_obs(gen_[s].load(), dst + s * b);
  }
}

void ReplayCore::restore_counters(uint64_t total, double max_priority) {
  reserved_ = total;
  committed_.store(total);
  max_priority_ = max_priority;
  const uint64_t n = std::min(total, cap_);
  for (uint64_t s = 0; s < n; ++s) {
    const uint64_t id = total <= cap_ ? s : total - cap_ + (s + cap_ - total % cap_) % cap_;
    gen_[s].store(id);
    std::memcpy(cols_[0].data + s * cols_[0].stride, &id, sizeof id);
  }
  if (tree_) tree_->clear();
  if (opt_.share_obs) {
    for (uint64_t i = 0; i < cap_; ++i) side_[i].store(-1);
    pool_free_.clear();
    pool_next_ = 0;
  }
}

void ReplayCore::import_field(size_t f, const uint8_t* src) {
  if (locs_[f].col < 0) return;
  const uint64_t n = size();
  const size_t b = fields_[f].bytes;
  for (uint64_t s = 0; s < n; ++s) std::memcpy(at(f, s), src + s * b, b);
}

void ReplayCore::export_priorities(double* dst) const {
  for (uint64_t s = 0; s < size(); ++s) dst[s] = tree_->get(s);
}

void ReplayCore::import_priorities(const double* src) {
  for (uint64_t s = 0; s < size(); ++s) {
    if (!std::isfinite(src[s]) || src[s] < 0.0)
      throw BufferError("stored priorities must be finite and >= 0");
    tree_->set(s, src[s]);
  }
}

std::vector<int64_t> ReplayCore::side_slots() const {
  std::vector<int64_t> out;
  for (uint64_t s = 0; s < size(); ++s)
    if (side_[s].load() >= 0) out.push_back(static_cast<int64_t>(s));
  return out;
}

void ReplayCore::export_side(const std::vector<int64_t>& slots, uint8_t* pending,
                             uint8_t* data) const {
  const size_t b = fields_[obs_].bytes;
  for (size_t i = 0; i < slots.size(); ++i) {
    int32_t e = side_[slots[i]].load();
    pending[i] = static_cast<uint8_t>(e & 1);
    std::memcpy(data + i * b, pool_entry(e >> 1), b);
  }
}

void ReplayCore::import_side(const int64_t* slots, const uint8_t* pending, const uint8_t* data,
                             size_t k) {
  const size_t b = fields_[obs_].bytes;
  for (size_t i = 0; i < k; ++i) {
    if (slots[i] < 0 || static_cast<uint64_t>(slots[i]) >= size())
      throw BufferError("kept next_obs slot out of range in the loaded state");
    int32_t e = pool_alloc();
    std::memcpy(pool_entry(e), data + i * b, b);
    side_[slots[i]].store((e << 1) | (pending[i] ? 1 : 0));
  }
}


}  // namespace rlkit
