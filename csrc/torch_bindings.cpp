// Schema registration of the `rift_fast` torch library and the Python module `rift_fast._C`.
// Importing rift_fast._C makes every op callable as torch.ops.rift_fast.<name>.
#include <pybind11/pybind11.h>

#include "ops.h"

namespace rift_fast {

void check_gather_neighbours_inputs(const at::Tensor& token_ids, const at::Tensor& neighbour_table) {
  TORCH_CHECK(token_ids.dim() == 2, "gather_neighbours: token_ids must be [B, L], got ", token_ids.sizes());
  TORCH_CHECK(neighbour_table.dim() == 2, "gather_neighbours: neighbour_table must be [V, K], got ",
              neighbour_table.sizes());
  TORCH_CHECK(token_ids.scalar_type() == at::kLong, "gather_neighbours: token_ids must be int64, got ",
              token_ids.scalar_type());
  TORCH_CHECK(neighbour_table.scalar_type() == at::kLong || neighbour_table.scalar_type() == at::kInt,
              "gather_neighbours: neighbour_table must be int32 or int64, got ", neighbour_table.scalar_type());
  TORCH_CHECK(token_ids.device() == neighbour_table.device(), "gather_neighbours: token_ids on ",
              token_ids.device(), " but neighbour_table on ", neighbour_table.device());
}

namespace {

void check_substitution_scores_inputs(const at::Tensor& token_ids, const at::Tensor& neighbour_table,
                                      const at::Tensor& embeddings, const at::Tensor& grad,
                                      const std::optional<at::Tensor>& attack_mask, int64_t topk) {
  TORCH_CHECK(token_ids.dim() == 2 && token_ids.scalar_type() == at::kLong,
              "substitution_scores: token_ids must be [B, L] int64, got ", token_ids.sizes(), " ",
              token_ids.scalar_type());
  TORCH_CHECK(neighbour_table.dim() == 2 && (neighbour_table.scalar_type() == at::kLong ||
                                             neighbour_table.scalar_type() == at::kInt),
              "substitution_scores: neighbour_table must be [V, K] int32/int64, got ", neighbour_table.sizes(), " ",
              neighbour_table.scalar_type());
  TORCH_CHECK(neighbour_table.size(1) > 0, "substitution_scores: neighbour_table has K=0 columns");
  const auto dtype = embeddings.scalar_type();
  TORCH_CHECK(embeddings.dim() == 2 && (dtype == at::kFloat || dtype == at::kBFloat16 || dtype == at::kHalf),
              "substitution_scores: embeddings must be [V, D] float32/bfloat16/float16, got ", embeddings.sizes(), " ",
              dtype);
  TORCH_CHECK(grad.dim() == 3 && grad.size(0) == token_ids.size(0) && grad.size(1) == token_ids.size(1) &&
                  grad.size(2) == embeddings.size(1) && grad.scalar_type() == dtype,
              "substitution_scores: grad must be [B, L, D] = [", token_ids.size(0), ", ", token_ids.size(1), ", ",
              embeddings.size(1), "] of dtype ", dtype, ", got ", grad.sizes(), " ", grad.scalar_type());
  TORCH_CHECK(topk >= 0, "substitution_scores: topk must be >= 0, got ", topk);
  for (const at::Tensor* t : {&neighbour_table, &embeddings, &grad}) {
    TORCH_CHECK(t->device() == token_ids.device(), "substitution_scores: all tensors must be on ",
                token_ids.device(), ", got one on ", t->device());
  }
  if (attack_mask.has_value()) {
    TORCH_CHECK(attack_mask->sizes() == token_ids.sizes() && attack_mask->scalar_type() == at::kBool &&
                    attack_mask->device() == token_ids.device(),
                "substitution_scores: attack_mask must be [B, L] bool on ", token_ids.device(), ", got ",
                attack_mask->sizes(), " ", attack_mask->scalar_type(), " on ", attack_mask->device());
  }
  // Out-of-range ids must be an error, never an out-of-bounds read (one synchronisation on a GPU).
  if (token_ids.numel() == 0) return;
  const int64_t rows = std::min(neighbour_table.size(0), embeddings.size(0));
  TORCH_CHECK(rows > 0, "substitution_scores: token ids must lie in [0, 0): no vocabulary row");
  const auto [ids_low, ids_high] = at::aminmax(token_ids);
  const auto [table_low, table_high] = at::aminmax(neighbour_table);
  const auto range = at::stack({ids_low, ids_high, table_low.toType(at::kLong), table_high.toType(at::kLong)}).cpu();
  const int64_t* bounds = range.data_ptr<int64_t>();
  TORCH_CHECK(bounds[0] >= 0 && bounds[1] < rows, "substitution_scores: token ids must lie in [0, ", rows,
              "), got range [", bounds[0], ", ", bounds[1], "]");
  TORCH_CHECK(bounds[2] >= -1 && bounds[3] < embeddings.size(0), "substitution_scores: neighbour_table entries ",
              "must lie in [-1, ", embeddings.size(0), "), got range [", bounds[2], ", ", bounds[3], "]");
}

}  // namespace

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

void check_perturbation_batch_inputs(const at::Tensor& token_ids, const at::Tensor& edit_example,
                                     const at::Tensor& edit_position, const at::Tensor& edit_token,
                                     const at::Tensor& edit_group, int64_t num_groups) {
  TORCH_CHECK(token_ids.dim() == 2 && token_ids.scalar_type() == at::kLong,
              "build_perturbation_batch: token_ids must be [B, L] int64, got ", token_ids.sizes(), " ",
              token_ids.scalar_type());
  TORCH_CHECK(num_groups >= 0 && num_groups <= edit_example.size(0), "build_perturbation_batch: num_groups must lie ",
              "in [0, M = ", edit_example.size(0), "] (every group has an edit), got ", num_groups);
  for (const at::Tensor* t : {&edit_example, &edit_position, &edit_token, &edit_group}) {
    TORCH_CHECK(t->dim() == 1 && t->size(0) == edit_example.size(0) && t->scalar_type() == at::kLong,
                "build_perturbation_batch: edits must be four [M] int64 tensors, got ", t->sizes(), " ",
                t->scalar_type());
    TORCH_CHECK(t->device() == token_ids.device(), "build_perturbation_batch: all tensors must be on ",
                token_ids.device(), ", got one on ", t->device());
  }
}

}  // namespace rift_fast

TORCH_LIBRARY(rift_fast, m) {
  m.def("gather_neighbours(Tensor token_ids, Tensor neighbour_table) -> Tensor");
  m.def(
      "substitution_scores(Tensor token_ids, Tensor neighbour_table, Tensor embeddings, Tensor grad, "
      "Tensor? attack_mask, int topk) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "build_perturbation_batch(Tensor token_ids, Tensor edit_example, Tensor edit_position, Tensor edit_token, "
      "Tensor edit_group, int num_groups) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rift_fast, CPU, m) {
  m.impl("gather_neighbours", &rift_fast::gather_neighbours_cpu);
  m.impl("substitution_scores", &rift_fast::substitution_scores_cpu);
  m.impl("build_perturbation_batch", &rift_fast::build_perturbation_batch_cpu);
}

PYBIND11_MODULE(_C, module) {
  module.doc() = "rift_fast compiled ops; call them through torch.ops.rift_fast or rift_fast._custom_ops";
#ifdef RIFT_FAST_WITH_CUDA
  module.attr("with_cuda") = true;
#else
  module.attr("with_cuda") = false;
#endif
}
