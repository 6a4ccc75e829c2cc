// Torch launcher of the substitution_scores CUDA kernels (rift_fast/kernels/substitution_scores.cuh):
// the warp-per-candidate scoring kernel, then the per-position best and per-sequence top-k kernels.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include "../../rift_fast/kernels/substitution_scores.cuh"
#include "../ops.h"

namespace rift_fast {
namespace {

constexpr int kThreads = 256;

bool aligned16(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

template <typename raw_t, typename index_t>
using ScoreKernel = void (*)(const long long*, const index_t*, const raw_t*, const raw_t*, const bool*, float*,
                             long long, long long, long long, long long);

// One warp per (position, slot); the kernel variant follows the neighbour table's index dtype.
template <typename raw_t>
void launch_scores(ScoreKernel<raw_t, int> kernel_i32, ScoreKernel<raw_t, long long> kernel_i64, const at::Tensor& ids,
                   const at::Tensor& table, const at::Tensor& emb, const at::Tensor& grad, const bool* mask,
                   at::Tensor& scores, cudaStream_t stream) {
  const int64_t dim = emb.size(1);
  const long long vectorised = dim % (16 / sizeof(raw_t)) == 0 && aligned16(emb) && aligned16(grad);
  const int64_t blocks = (scores.numel() * 32 + kThreads - 1) / kThreads;
  auto run = [&](auto kernel, const auto* table_ptr) {
    kernel<<<blocks, kThreads, 0, stream>>>(reinterpret_cast<const long long*>(ids.data_ptr<int64_t>()), table_ptr,
                                            reinterpret_cast<const raw_t*>(emb.data_ptr()),
                                            reinterpret_cast<const raw_t*>(grad.data_ptr()), mask,
                                            scores.data_ptr<float>(), ids.numel(), table.size(1), dim, vectorised);
  };
  if (table.scalar_type() == at::kLong) {
    run(kernel_i64, reinterpret_cast<const long long*>(table.data_ptr<int64_t>()));
  } else {
    run(kernel_i32, table.data_ptr<int>());
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

SubstitutionScoresResult substitution_scores_cuda(const at::Tensor& token_ids, const at::Tensor& neighbour_table,
                                                  const at::Tensor& embeddings, const at::Tensor& grad,
                                                  const std::optional<at::Tensor>& attack_mask, int64_t topk) {
  const c10::cuda::CUDAGuard guard(token_ids.device());
  auto buffers = prepare_substitution_scores(token_ids, neighbour_table, embeddings, grad, attack_mask, topk);
  auto& [ids, table, emb, g, mask, scores, best_score, best_slot, top_score, top_position, top_slot] = buffers;
  const int64_t batch = ids.size(0), length = ids.size(1), num_slots = table.size(1);
  auto stream = c10::cuda::getCurrentCUDAStream();
  if (scores.numel() > 0) {
    const bool* mask_ptr = mask ? mask->data_ptr<bool>() : nullptr;
    switch (emb.scalar_type()) {
      case at::kFloat:
        launch_scores<float>(substitution_scores_f32_i32, substitution_scores_f32_i64, ids, table, emb, g, mask_ptr,
                             scores, stream);
        break;
      case at::kBFloat16:
        launch_scores<unsigned short>(substitution_scores_bf16_i32, substitution_scores_bf16_i64, ids, table, emb, g,
                                      mask_ptr, scores, stream);
        break;
      default:  // float16 (checked above)
        launch_scores<unsigned short>(substitution_scores_f16_i32, substitution_scores_f16_i64, ids, table, emb, g,
                                      mask_ptr, scores, stream);
    }
    substitution_best_slot<<<(ids.numel() + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
        scores.data_ptr<float>(), best_score.data_ptr<float>(),
        reinterpret_cast<long long*>(best_slot.data_ptr<int64_t>()), ids.numel(), num_slots);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (top_score.numel() > 0) {
    auto scratch = at::empty({batch, topk}, ids.options());
    substitution_top_k<<<batch, kThreads, 0, stream>>>(scores.data_ptr<float>(), top_score.data_ptr<float>(),
                                                       reinterpret_cast<long long*>(top_position.data_ptr<int64_t>()),
                                                       reinterpret_cast<long long*>(top_slot.data_ptr<int64_t>()),
                                                       reinterpret_cast<long long*>(scratch.data_ptr<int64_t>()),
                                                       length * num_slots, num_slots, topk);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return buffers.result();
}

}  // namespace rift_fast
