// Buffers of the compiled ops shared by the CPU twins and the CUDA launchers (declared in ops.h).
#include "checks.h"
#include "ops.h"

namespace rift_fast {

SubstitutionScoresBuffers prepare_substitution_scores(const at::Tensor& token_ids, const at::Tensor& neighbour_table,
                                                      const at::Tensor& embeddings, const at::Tensor& grad,
                                                      const std::optional<at::Tensor>& attack_mask, int64_t topk) {
  check_substitution_scores_inputs(token_ids, neighbour_table, embeddings, grad, attack_mask, topk);
  SubstitutionScoresBuffers buffers;
  buffers.ids = token_ids.contiguous();
  buffers.table = neighbour_table.contiguous();
  buffers.emb = embeddings.contiguous();
  buffers.grad = grad.contiguous();
  if (attack_mask.has_value()) buffers.mask = attack_mask->contiguous();
  const int64_t batch = token_ids.size(0), length = token_ids.size(1), num_slots = neighbour_table.size(1);
  const auto index = buffers.ids.options();
  const auto f32 = index.dtype(at::kFloat);
  buffers.scores = at::empty({batch, length, num_slots}, f32);
  buffers.best_score = at::empty({batch, length}, f32);
  buffers.best_slot = at::empty({batch, length}, index);
  buffers.top_score = at::empty({batch, topk}, f32);
  buffers.top_position = at::empty({batch, topk}, index);
  buffers.top_slot = at::empty({batch, topk}, index);
  return buffers;
}

}  // namespace rift_fast
