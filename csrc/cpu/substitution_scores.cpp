// CPU twin of substitution_scores: one parallel pass over the B*L positions (each candidate's dot
// product streamed over D, fp32 accumulate, best slot on the fly), then one over the B sequences
// (top-k with std::partial_sort). Nothing of size [B, L, K, D] is ever built.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "../ops.h"

namespace rift_fast {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr uint32_t kNegInfKey = 0x007fffffu;  // score_key(-inf): never selected

// Order-preserving key of a score: any NaN ranks above +inf, -0 equals +0 (as torch.sort).
inline uint32_t score_key(float score) {
  uint32_t bits;
  std::memcpy(&bits, &score, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0xffffffffu;
  if (bits == 0x80000000u) bits = 0;
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// sum_d (cand[d] - orig[d]) * grad[d] with 16 independent fp32 accumulators, which -O3 vectorises.
template <typename scalar_t>
inline float diff_dot(const scalar_t* cand, const float* orig, const float* grad, int64_t dim) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= dim; d += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += (static_cast<float>(cand[d + j]) - orig[d + j]) * grad[d + j];
  }
  float sum = 0.f;
  for (; d < dim; ++d) sum += (static_cast<float>(cand[d]) - orig[d]) * grad[d];
  for (int j = 0; j < kLanes; ++j) sum += acc[j];
  return sum;
}

template <typename scalar_t, typename index_t>
void score_positions(const int64_t* ids, const index_t* table, const scalar_t* embeddings, const scalar_t* grad,
                     const bool* mask, float* scores, float* best_score, int64_t* best_slot, int64_t positions,
                     int64_t num_slots, int64_t dim) {
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / (num_slots * dim + 1));
  at::parallel_for(0, positions, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> grad_row(dim), orig_row(dim);
    for (int64_t p = begin; p < end; ++p) {
      float* row = scores + p * num_slots;
      best_score[p] = kNegInf;
      best_slot[p] = -1;
      if (mask != nullptr && !mask[p]) {
        std::fill(row, row + num_slots, kNegInf);
        continue;
      }
      const scalar_t* g = grad + p * dim;
      const scalar_t* orig = embeddings + ids[p] * dim;
      for (int64_t d = 0; d < dim; ++d) {
        grad_row[d] = static_cast<float>(g[d]);
        orig_row[d] = static_cast<float>(orig[d]);
      }
      uint32_t best_key = kNegInfKey;
      for (int64_t k = 0; k < num_slots; ++k) {
        const int64_t cand = static_cast<int64_t>(table[ids[p] * num_slots + k]);
        row[k] = cand < 0 ? kNegInf : diff_dot(embeddings + cand * dim, orig_row.data(), grad_row.data(), dim);
        const uint32_t key = score_key(row[k]);
        if (key > best_key) {  // strict: the lowest slot wins ties
          best_key = key;
          best_slot[p] = k;
          best_score[p] = row[k];
        }
      }
    }
  });
}

// Per sequence, the topk entries of scores[b] (flattened L*K) with the highest key, ties by lowest
// flat index (= lowest position, then lowest slot); -inf entries are skipped, the rest padded.
void select_top(const float* scores, float* top_score, int64_t* top_position, int64_t* top_slot, int64_t batch,
                int64_t items, int64_t num_slots, int64_t topk) {
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<std::pair<uint32_t, int64_t>> valid;
    for (int64_t b = begin; b < end; ++b) {
      const float* s = scores + b * items;
      valid.clear();
      for (int64_t i = 0; i < items; ++i) {
        const uint32_t key = score_key(s[i]);
        if (key > kNegInfKey) valid.emplace_back(key, i);
      }
      const int64_t take = std::min<int64_t>(topk, static_cast<int64_t>(valid.size()));
      std::partial_sort(valid.begin(), valid.begin() + take, valid.end(), [](const auto& x, const auto& y) {
        return x.first > y.first || (x.first == y.first && x.second < y.second);
      });
      for (int64_t t = 0; t < topk; ++t) {
        const int64_t out = b * topk + t;
        const int64_t i = t < take ? valid[t].second : -1;
        top_score[out] = t < take ? s[i] : kNegInf;
        top_position[out] = t < take ? i / num_slots : -1;
        top_slot[out] = t < take ? i % num_slots : -1;
      }
    }
  });
}

}  // namespace

SubstitutionScoresResult substitution_scores_cpu(const at::Tensor& token_ids, const at::Tensor& neighbour_table,
                                                 const at::Tensor& embeddings, const at::Tensor& grad,
                                                 const std::optional<at::Tensor>& attack_mask, int64_t topk) {
  auto buffers = prepare_substitution_scores(token_ids, neighbour_table, embeddings, grad, attack_mask, topk);
  const auto& [ids, table, emb, g, mask, scores, best_score, best_slot, top_score, top_position, top_slot] = buffers;
  const int64_t batch = ids.size(0), length = ids.size(1), num_slots = table.size(1), dim = emb.size(1);
  if (ids.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, emb.scalar_type(), "substitution_scores_cpu", [&] {
      using value_t = scalar_t;
      AT_DISPATCH_INDEX_TYPES(table.scalar_type(), "substitution_scores_cpu", [&] {
        score_positions<value_t, index_t>(ids.data_ptr<int64_t>(), table.data_ptr<index_t>(), emb.data_ptr<value_t>(),
                                          g.data_ptr<value_t>(), mask ? mask->data_ptr<bool>() : nullptr,
                                          scores.data_ptr<float>(), best_score.data_ptr<float>(),
                                          best_slot.data_ptr<int64_t>(), ids.numel(), num_slots, dim);
      });
    });
  }
  if (top_score.numel() > 0) {
    select_top(scores.data_ptr<float>(), top_score.data_ptr<float>(), top_position.data_ptr<int64_t>(),
               top_slot.data_ptr<int64_t>(), batch, length * num_slots, num_slots, topk);
  }
  return buffers.result();
}

}  // namespace rift_fast
