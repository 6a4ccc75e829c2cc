// Declarations of rift_fast's compiled ops. Each op has a CPU twin (csrc/cpu) and, in CUDA
// builds, a CUDA launcher (csrc/cuda launching rift_fast/kernels); both are registered under the
// torch library namespace `rift_fast` in torch_bindings.cpp and dispatched by torch on the device.
// Their input checks live in checks.h.
#pragma once

#include <torch/library.h>
#include <ATen/ATen.h>

namespace rift_fast {

// token_ids [B, L] int64, neighbour_table [V, K] int32/int64 (-1 pads)
//   -> [B, L, 1 + K] int64: slot 0 is the token itself, slots 1..K its neighbours (-1 pads).
at::Tensor gather_neighbours_cpu(const at::Tensor& token_ids, const at::Tensor& neighbour_table);
at::Tensor gather_neighbours_cuda(const at::Tensor& token_ids, const at::Tensor& neighbour_table);

using SubstitutionScoresResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Contiguous inputs and freshly allocated (uninitialised) outputs of one substitution_scores call.
struct SubstitutionScoresBuffers {
  at::Tensor ids, table, emb, grad;
  std::optional<at::Tensor> mask;
  at::Tensor scores, best_score, best_slot, top_score, top_position, top_slot;
  SubstitutionScoresResult result() const { return {scores, best_score, best_slot, top_score, top_position, top_slot}; }
};

// Shared by the CPU and CUDA implementations of substitution_scores (buffers.cpp): checks the inputs
// (check_substitution_scores_inputs), then makes them contiguous and allocates the outputs on the
// inputs' device (call under the device guard).
SubstitutionScoresBuffers prepare_substitution_scores(const at::Tensor& token_ids, const at::Tensor& neighbour_table,
                                                      const at::Tensor& embeddings, const at::Tensor& grad,
                                                      const std::optional<at::Tensor>& attack_mask, int64_t topk);

// token_ids [B, L] int64, neighbour_table [V, K] int32/int64 (-1 pads), embeddings [V', D]
// float32/bfloat16/float16, grad [B, L, D] (same dtype as embeddings), attack_mask [B, L] bool or
// none -> (scores [B, L, K] f32 = (E[cand] - E[orig]) . grad, -inf where the slot is -1 or the
// position is masked; best_score [B, L] f32, best_slot [B, L] int64; top_score [B, topk] f32,
// top_position [B, topk] int64, top_slot [B, topk] int64). Ties: lowest position, then lowest slot;
// NaN ranks above +inf; -inf entries are never selected (-inf / -1 padding).
SubstitutionScoresResult substitution_scores_cpu(const at::Tensor& token_ids, const at::Tensor& neighbour_table,
                                                 const at::Tensor& embeddings, const at::Tensor& grad,
                                                 const std::optional<at::Tensor>& attack_mask, int64_t topk);
SubstitutionScoresResult substitution_scores_cuda(const at::Tensor& token_ids, const at::Tensor& neighbour_table,
                                                  const at::Tensor& embeddings, const at::Tensor& grad,
                                                  const std::optional<at::Tensor>& attack_mask, int64_t topk);

// token_ids [B, L] int64; edits [M] int64 each (base row, position, new token, query group in
// [0, num_groups)) -> (query_ids [U, L] int64, inverse [num_groups] int64, query_example [U] int64).
// Query rows are deduplicated on (base row, perturbed ids); unique rows are in order of first
// appearance (query_ids[u] is the lowest group of its class). Every group needs >= 1 edit, all its
// edits on one base row; two edits of one group at one position with different tokens are an error.
std::tuple<at::Tensor, at::Tensor, at::Tensor> build_perturbation_batch_cpu(
    const at::Tensor& token_ids, const at::Tensor& edit_example, const at::Tensor& edit_position,
    const at::Tensor& edit_token, const at::Tensor& edit_group, int64_t num_groups);
std::tuple<at::Tensor, at::Tensor, at::Tensor> build_perturbation_batch_cuda(
    const at::Tensor& token_ids, const at::Tensor& edit_example, const at::Tensor& edit_position,
    const at::Tensor& edit_token, const at::Tensor& edit_group, int64_t num_groups);

}  // namespace rift_fast
