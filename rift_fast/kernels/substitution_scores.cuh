// CUDA kernels of substitution_scores, free of torch and CUDA library headers so that CuPy
// RawModule (NVRTC) compiles this file as it is and the torch launcher can include it.
// bfloat16/float16 values are read as raw 16-bit words and widened to fp32 here.
#pragma once

namespace rift_fast_substitution {

constexpr unsigned int kNegInfKey = 0x007fffffu;  // score_key(-inf): never selected

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

// Order-preserving key of a score: any NaN ranks above +inf, -0 equals +0 (as torch.sort).
__device__ __forceinline__ unsigned int score_key(float score) {
  unsigned int bits = __float_as_uint(score);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0xffffffffu;
  if (bits == 0x80000000u) bits = 0;
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

struct alignas(16) Chunk {  // one 16-byte load (NVRTC needs no vector-type header for it)
  unsigned int word[4];
};

struct F32 {
  using raw = float;
  __device__ __forceinline__ static float widen(float v) { return v; }
};
struct BF16 {
  using raw = unsigned short;
  __device__ __forceinline__ static float widen(unsigned short v) { return __uint_as_float((unsigned int)v << 16); }
};
struct F16 {
  using raw = unsigned short;
  __device__ __forceinline__ static float widen(unsigned short v) {
    float out;
    asm("cvt.f32.f16 %0, %1;" : "=f"(out) : "h"(v));
    return out;
  }
};

// One warp per candidate (position p, slot k): scores[p, k] = sum_d (E[cand] - E[orig])[d] * grad[p, d]
// streamed over D (16-byte loads when `vectorised`: D a multiple of 16 / sizeof(raw) and every base
// pointer 16-byte aligned), fp32 accumulate, warp shuffle reduction. -inf for -1 slots and masked
// positions (mask may be null).
template <typename T, typename index_t>
__device__ __forceinline__ void score_candidates(const long long* __restrict__ ids, const index_t* __restrict__ table,
                                                 const typename T::raw* __restrict__ embeddings,
                                                 const typename T::raw* __restrict__ grad,
                                                 const bool* __restrict__ mask, float* __restrict__ scores,
                                                 long long positions, long long num_slots, long long dim,
                                                 long long vectorised) {
  using raw = typename T::raw;
  const long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (warp >= positions * num_slots) return;  // warp-uniform
  const long long p = warp / num_slots;
  const long long orig = ids[p];
  const long long cand = (mask == nullptr || mask[p]) ? (long long)table[orig * num_slots + warp - p * num_slots] : -1;
  if (cand < 0) {  // warp-uniform
    if (lane == 0) scores[warp] = neg_inf();
    return;
  }
  const raw* c = embeddings + cand * dim;
  const raw* o = embeddings + orig * dim;
  const raw* g = grad + p * dim;
  float acc = 0.f;
  if (vectorised) {
    constexpr int width = 16 / sizeof(raw);
    for (long long d = (long long)lane * width; d < dim; d += 32 * width) {
      const Chunk cv = *reinterpret_cast<const Chunk*>(c + d);
      const Chunk ov = *reinterpret_cast<const Chunk*>(o + d);
      const Chunk gv = *reinterpret_cast<const Chunk*>(g + d);
      const raw* cr = reinterpret_cast<const raw*>(&cv);
      const raw* orr = reinterpret_cast<const raw*>(&ov);
      const raw* gr = reinterpret_cast<const raw*>(&gv);
#pragma unroll
      for (int j = 0; j < width; ++j) acc += (T::widen(cr[j]) - T::widen(orr[j])) * T::widen(gr[j]);
    }
  } else {
    for (long long d = lane; d < dim; d += 32) acc += (T::widen(c[d]) - T::widen(o[d])) * T::widen(g[d]);
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
  if (lane == 0) scores[warp] = acc;
}

}  // namespace rift_fast_substitution

#define RIFT_FAST_SUBSTITUTION_SCORES_KERNEL(NAME, TYPE, INDEX_T)                                                 \
  extern "C" __global__ void NAME(const long long* __restrict__ ids, const INDEX_T* __restrict__ table,           \
                                  const rift_fast_substitution::TYPE::raw* __restrict__ embeddings,               \
                                  const rift_fast_substitution::TYPE::raw* __restrict__ grad,                     \
                                  const bool* __restrict__ mask, float* __restrict__ scores, long long positions, \
                                  long long num_slots, long long dim, long long vectorised) {                     \
    rift_fast_substitution::score_candidates<rift_fast_substitution::TYPE, INDEX_T>(                              \
        ids, table, embeddings, grad, mask, scores, positions, num_slots, dim, vectorised);                       \
  }

// substitution_scores_<f32|bf16|f16>_<i32|i64>: embedding dtype, neighbour table dtype.
RIFT_FAST_SUBSTITUTION_SCORES_KERNEL(substitution_scores_f32_i32, F32, int)
RIFT_FAST_SUBSTITUTION_SCORES_KERNEL(substitution_scores_f32_i64, F32, long long)
RIFT_FAST_SUBSTITUTION_SCORES_KERNEL(substitution_scores_bf16_i32, BF16, int)
RIFT_FAST_SUBSTITUTION_SCORES_KERNEL(substitution_scores_bf16_i64, BF16, long long)
RIFT_FAST_SUBSTITUTION_SCORES_KERNEL(substitution_scores_f16_i32, F16, int)
RIFT_FAST_SUBSTITUTION_SCORES_KERNEL(substitution_scores_f16_i64, F16, long long)

// One thread per position: best_score / best_slot over the K scores of the position (highest key,
// lowest slot on ties; -inf and -1 when every slot is -inf).
extern "C" __global__ void substitution_best_slot(const float* __restrict__ scores, float* __restrict__ best_score,
                                                  long long* __restrict__ best_slot, long long positions,
                                                  long long num_slots) {
  const long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= positions) return;
  const float* row = scores + p * num_slots;
  unsigned int best_key = rift_fast_substitution::kNegInfKey;
  long long best = -1;
  for (long long k = 0; k < num_slots; ++k) {
    const unsigned int key = rift_fast_substitution::score_key(row[k]);
    if (key > best_key) {
      best_key = key;
      best = k;
    }
  }
  best_score[p] = best < 0 ? rift_fast_substitution::neg_inf() : row[best];
  best_slot[p] = best;
}

// One block of exactly 256 threads per sequence b: the topk entries of scores[b] (items = L*K, flattened)
// with the highest key, ties by lowest flat index (lowest position, then slot); -inf entries are
// skipped and the rest padded with -inf / -1. A 4-pass radix select (8 bits a pass) finds the
// topk-th key T; entries above T and the first ones equal to T (in index order, by a block scan)
// are compacted into scratch[b, :topk]; each is then written at its rank among the selected,
// O(selected^2 / 256) comparisons.
extern "C" __global__ void substitution_top_k(const float* __restrict__ scores, float* __restrict__ top_score,
                                              long long* __restrict__ top_position, long long* __restrict__ top_slot,
                                              long long* __restrict__ scratch, long long items, long long num_slots,
                                              long long topk) {
  using rift_fast_substitution::kNegInfKey;
  using rift_fast_substitution::score_key;
  constexpr int kThreads = 256;
  __shared__ unsigned int histogram[256];
  __shared__ unsigned int warp_counts[kThreads / 32];
  __shared__ unsigned long long valid, selected, equal_before, threshold, need_equal;
  if (topk <= 0) return;
  const int tid = threadIdx.x;
  const long long b = blockIdx.x;
  const float* s = scores + b * items;
  long long* chosen = scratch + b * topk;
  if (tid == 0) {
    valid = 0;
    selected = 0;
    equal_before = 0;
  }
  __syncthreads();
  unsigned int count = 0;
  for (long long i = tid; i < items; i += kThreads) count += score_key(s[i]) > kNegInfKey;
  atomicAdd(&valid, (unsigned long long)count);
  __syncthreads();
  const long long take = valid < (unsigned long long)topk ? (long long)valid : topk;
  if (valid <= (unsigned long long)topk) {  // every valid entry is selected
    if (tid == 0) {
      threshold = kNegInfKey;
      need_equal = 0;
    }
  } else {
    unsigned int prefix = 0;
    unsigned long long remaining = topk;  // rank of T among entries matching the prefix
    for (int shift = 24; shift >= 0; shift -= 8) {
      histogram[tid] = 0;
      __syncthreads();
      const unsigned int high_mask = shift == 24 ? 0u : (0xffffffffu << (shift + 8));
      for (long long i = tid; i < items; i += kThreads) {
        const unsigned int key = score_key(s[i]);
        if (key > kNegInfKey && (key & high_mask) == prefix) atomicAdd(&histogram[(key >> shift) & 255u], 1u);
      }
      __syncthreads();
      if (tid == 0) {
        unsigned long long above = 0;
        for (int digit = 255; digit >= 0; --digit) {
          if (above + histogram[digit] >= remaining) {
            threshold = prefix | ((unsigned int)digit << shift);
            need_equal = remaining - above;
            break;
          }
          above += histogram[digit];
        }
      }
      __syncthreads();
      prefix = (unsigned int)threshold;
      remaining = need_equal;
      __syncthreads();
    }
  }
  __syncthreads();
  const unsigned int cut = (unsigned int)threshold;
  const unsigned long long equal_quota = need_equal;
  for (long long base = 0; base < items; base += kThreads) {
    const long long i = base + tid;
    const unsigned int key = i < items ? score_key(s[i]) : 0u;
    const bool equal = i < items && key == cut && equal_quota > 0;
    const unsigned int ballot = __ballot_sync(0xffffffffu, equal);
    if ((tid & 31) == 0) warp_counts[tid >> 5] = __popc(ballot);
    __syncthreads();
    unsigned long long rank = equal_before + __popc(ballot & ((1u << (tid & 31)) - 1u));
    for (int w = 0; w < (tid >> 5); ++w) rank += warp_counts[w];
    if ((i < items && key > cut) || (equal && rank < equal_quota)) chosen[atomicAdd(&selected, 1ull)] = i;
    __syncthreads();
    if (tid == 0) {
      for (int w = 0; w < kThreads / 32; ++w) equal_before += warp_counts[w];
    }
    __syncthreads();
  }
  for (long long t = tid; t < take; t += kThreads) {
    const long long i = chosen[t];
    const unsigned int key = score_key(s[i]);
    long long rank = 0;
    for (long long u = 0; u < take; ++u) {
      const long long j = chosen[u];
      const unsigned int other = score_key(s[j]);
      rank += other > key || (other == key && j < i);
    }
    top_score[b * topk + rank] = s[i];
    top_position[b * topk + rank] = i / num_slots;
    top_slot[b * topk + rank] = i % num_slots;
  }
  for (long long t = take + tid; t < topk; t += kThreads) {
    top_score[b * topk + t] = rift_fast_substitution::neg_inf();
    top_position[b * topk + t] = -1;
    top_slot[b * topk + t] = -1;
  }
}
