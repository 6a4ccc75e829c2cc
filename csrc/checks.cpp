// Input checks of rift_fast's compiled ops (declared in checks.h).
#include "checks.h"

#include <algorithm>
#include <vector>

namespace rift_fast {
namespace {

// {low_0, high_0, low_1, high_1, ...} of non-empty integer tensors, read with one synchronisation.
std::vector<int64_t> value_ranges(std::initializer_list<at::Tensor> tensors) {
  std::vector<at::Tensor> bounds;
  for (const at::Tensor& tensor : tensors) {
    const auto [low, high] = at::aminmax(tensor);
    bounds.push_back(low.toType(at::kLong));
    bounds.push_back(high.toType(at::kLong));
  }
  const auto host = at::stack(bounds).cpu();
  const int64_t* values = host.data_ptr<int64_t>();
  return {values, values + host.numel()};
}

// Out-of-range values must be an error, never an out-of-bounds read.
void check_range(const char* op, const char* name, int64_t low, int64_t high, int64_t first, int64_t end) {
  TORCH_CHECK(low >= first && high < end, op, ": ", name, " must lie in [", first, ", ", end, "), got range [", low,
              ", ", high, "]");
}

}  // namespace

void check_gather_neighbours_inputs(const at::Tensor& token_ids, const at::Tensor& neighbour_table) {
  TORCH_CHECK(token_ids.dim() == 2, "gather_neighbours: token_ids must be [B, L], got ", token_ids.sizes());
  TORCH_CHECK(neighbour_table.dim() == 2, "gather_neighbours: neighbour_table must be [V, K], got ",
              neighbour_table.sizes());
  TORCH_CHECK(token_ids.scalar_type() == at::kLong, "gather_neighbours: token_ids must be int64, got ",
              token_ids.scalar_type());
  TORCH_CHECK(neighbour_table.scalar_type() == at::kLong || neighbour_table.scalar_type() == at::kInt,
              "gather_neighbours: neighbour_table must be int32 or int64, got ", neighbour_table.scalar_type());
  TORCH_CHECK(token_ids.device() == neighbour_table.device(), "gather_neighbours: token_ids on ", token_ids.device(),
              " but neighbour_table on ", neighbour_table.device());
  if (token_ids.numel() == 0) return;
  const auto ids = value_ranges({token_ids});
  check_range("gather_neighbours", "token ids", ids[0], ids[1], 0, neighbour_table.size(0));
}

void check_substitution_scores_inputs(const at::Tensor& token_ids, const at::Tensor& neighbour_table,
                                      const at::Tensor& embeddings, const at::Tensor& grad,
                                      const std::optional<at::Tensor>& attack_mask, int64_t topk) {
  TORCH_CHECK(token_ids.dim() == 2 && token_ids.scalar_type() == at::kLong,
              "substitution_scores: token_ids must be [B, L] int64, got ", token_ids.sizes(), " ",
              token_ids.scalar_type());
  TORCH_CHECK(neighbour_table.dim() == 2 &&
                  (neighbour_table.scalar_type() == at::kLong || neighbour_table.scalar_type() == at::kInt),
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
    TORCH_CHECK(t->device() == token_ids.device(), "substitution_scores: all tensors must be on ", token_ids.device(),
                ", got one on ", t->device());
  }
  if (attack_mask.has_value()) {
    TORCH_CHECK(attack_mask->sizes() == token_ids.sizes() && attack_mask->scalar_type() == at::kBool &&
                    attack_mask->device() == token_ids.device(),
                "substitution_scores: attack_mask must be [B, L] bool on ", token_ids.device(), ", got ",
                attack_mask->sizes(), " ", attack_mask->scalar_type(), " on ", attack_mask->device());
  }
  if (token_ids.numel() == 0) return;
  const int64_t rows = std::min(neighbour_table.size(0), embeddings.size(0));
  TORCH_CHECK(rows > 0, "substitution_scores: token ids must lie in [0, 0): no vocabulary row");
  const auto ranges = value_ranges({token_ids, neighbour_table});
  check_range("substitution_scores", "token ids", ranges[0], ranges[1], 0, rows);
  check_range("substitution_scores", "neighbour_table entries", ranges[2], ranges[3], -1, embeddings.size(0));
}

void check_build_perturbation_batch_inputs(const at::Tensor& token_ids, const at::Tensor& edit_example,
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
  if (edit_example.size(0) == 0) return;
  const auto ranges = value_ranges({edit_example, edit_position, edit_token, edit_group});
  const char* op = "build_perturbation_batch";
  check_range(op, "edit_example", ranges[0], ranges[1], 0, token_ids.size(0));
  check_range(op, "edit_position", ranges[2], ranges[3], 0, token_ids.size(1));
  TORCH_CHECK(ranges[4] >= 0, op, ": edit_token must be >= 0, got ", ranges[4]);
  check_range(op, "edit_group", ranges[6], ranges[7], 0, num_groups);
}

}  // namespace rift_fast
