// Input checks of rift_fast's compiled ops, shared by the CPU twins (csrc/cpu) and the CUDA
// launchers (csrc/cuda). Each check throws a clear error; each value range is checked here once,
// so the implementations never check it again. Call them under the device guard of the inputs.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace rift_fast {

// Shapes, dtypes, devices and token ids in [0, V).
void check_gather_neighbours_inputs(const at::Tensor& token_ids, const at::Tensor& neighbour_table);

// Shapes, dtypes, devices, topk >= 0, token ids in [0, rows of both tables) and neighbour_table
// entries in [-1, rows of embeddings).
void check_substitution_scores_inputs(const at::Tensor& token_ids, const at::Tensor& neighbour_table,
                                      const at::Tensor& embeddings, const at::Tensor& grad,
                                      const std::optional<at::Tensor>& attack_mask, int64_t topk);

// Shapes, dtypes, devices, num_groups in [0, M] and every edit in range: example in [0, B), position
// in [0, L), token >= 0, group in [0, num_groups). Group coverage, one base row per group and
// conflicting edits are checked by the implementations, where the edits are bucketed.
void check_build_perturbation_batch_inputs(const at::Tensor& token_ids, const at::Tensor& edit_example,
                                           const at::Tensor& edit_position, const at::Tensor& edit_token,
                                           const at::Tensor& edit_group, int64_t num_groups);

}  // namespace rift_fast
