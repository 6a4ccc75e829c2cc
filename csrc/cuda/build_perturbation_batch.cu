// Torch launcher of the build_perturbation_batch CUDA kernels (rift_fast/kernels/build_perturbation_batch.cuh).
// Kernels copy, edit and hash the [Q, L] rows; deduplication is torch ops: torch.unique of the 64-bit
// row hashes, an equality check of every row against its class's first row (exact unique over the
// rows if a hash collision ever merged different rows), then a reorder to first appearance.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include "../../rift_fast/kernels/build_perturbation_batch.cuh"
#include "../checks.h"
#include "../ops.h"

namespace rift_fast {
namespace {

constexpr int kThreads = 256;

int64_t blocks_for(int64_t threads) { return (threads + kThreads - 1) / kThreads; }

long long* ptr(at::Tensor& t) { return reinterpret_cast<long long*>(t.data_ptr<int64_t>()); }

// (query_ids, inverse, query_example) from the edited rows, their base rows and their hashes.
std::tuple<at::Tensor, at::Tensor, at::Tensor> deduplicate(const at::Tensor& rows, const at::Tensor& group_example,
                                                           const at::Tensor& hashes) {
  const int64_t num_groups = rows.size(0);
  const auto groups = at::arange(num_groups, rows.options());
  auto first_of_class = [&](const at::Tensor& classes, int64_t num_classes) {
    return at::full({num_classes}, num_groups, rows.options()).scatter_reduce_(0, classes, groups, "amin");
  };
  const auto by_hash = at::_unique2(hashes, /*sorted=*/true, /*return_inverse=*/true);
  at::Tensor classes = std::get<1>(by_hash);
  int64_t num_classes = std::get<0>(by_hash).size(0);
  auto first = first_of_class(classes, num_classes);
  const auto representative = first.index_select(0, classes);
  if (!rows.index_select(0, representative).equal(rows) ||
      !group_example.index_select(0, representative).equal(group_example)) {
    const auto exact = at::unique_dim(at::cat({group_example.unsqueeze(1), rows}, 1), 0, /*sorted=*/true,
                                      /*return_inverse=*/true);
    classes = std::get<1>(exact);
    num_classes = std::get<0>(exact).size(0);
    first = first_of_class(classes, num_classes);
  }
  const auto order = at::argsort(first);
  const auto rank = at::empty_like(order).scatter_(0, order, at::arange(num_classes, rows.options()));
  const auto chosen = first.index_select(0, order);
  return {rows.index_select(0, chosen), rank.index_select(0, classes), group_example.index_select(0, chosen)};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> build_perturbation_batch_cuda(
    const at::Tensor& token_ids, const at::Tensor& edit_example, const at::Tensor& edit_position,
    const at::Tensor& edit_token, const at::Tensor& edit_group, int64_t num_groups) {
  const c10::cuda::CUDAGuard guard(token_ids.device());
  check_build_perturbation_batch_inputs(token_ids, edit_example, edit_position, edit_token, edit_group, num_groups);
  const int64_t length = token_ids.size(1), num_edits = edit_example.size(0);
  auto ids = token_ids.contiguous();
  auto example = edit_example.contiguous(), position = edit_position.contiguous();
  auto token = edit_token.contiguous(), group = edit_group.contiguous();
  const auto opts = ids.options();
  auto group_example = at::full({num_groups}, -1, opts).scatter_(0, group, example);
  if (num_groups > 0) {
    TORCH_CHECK(!(group_example < 0).any().item<bool>(), "build_perturbation_batch: a group has no edit");
    TORCH_CHECK(group_example.index_select(0, group).equal(example),
                "build_perturbation_batch: a group has edits on two base rows");
  }
  auto rows = at::empty({num_groups, length}, opts);
  if (num_groups == 0) return {rows, at::empty({0}, opts), at::empty({0}, opts)};
  auto stream = c10::cuda::getCurrentCUDAStream();
  if (rows.numel() > 0) {
    perturbation_copy_rows<<<blocks_for(rows.numel()), kThreads, 0, stream>>>(ptr(ids), ptr(group_example), ptr(rows),
                                                                              num_groups, length);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  // num_groups > 0 implies num_edits > 0.
  perturbation_apply_edits<<<blocks_for(num_edits), kThreads, 0, stream>>>(ptr(group), ptr(position), ptr(token),
                                                                           ptr(rows), num_edits, length);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  auto conflict = at::zeros({1}, opts.dtype(at::kInt));
  perturbation_find_conflicts<<<blocks_for(num_edits), kThreads, 0, stream>>>(
      ptr(group), ptr(position), ptr(token), ptr(rows), conflict.data_ptr<int>(), num_edits, length);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  TORCH_CHECK(conflict.item<int>() == 0,
              "build_perturbation_batch: a group has two edits at one position with different tokens");
  auto hashes = at::empty({num_groups}, opts);
  perturbation_hash_rows<<<blocks_for(num_groups * 32), kThreads, 0, stream>>>(ptr(rows), ptr(group_example),
                                                                               ptr(hashes), num_groups, length);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return deduplicate(rows, group_example, hashes);
}

}  // namespace rift_fast
