// Torch launcher of the gather_neighbours CUDA kernels (rift_fast/kernels/gather_neighbours.cuh).
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include "../../rift_fast/kernels/gather_neighbours.cuh"
#include "../checks.h"
#include "../ops.h"

namespace rift_fast {

at::Tensor gather_neighbours_cuda(const at::Tensor& token_ids, const at::Tensor& neighbour_table) {
  const c10::cuda::CUDAGuard guard(token_ids.device());
  check_gather_neighbours_inputs(token_ids, neighbour_table);
  const int64_t num_neighbours = neighbour_table.size(1);
  auto ids = token_ids.contiguous();
  auto table = neighbour_table.contiguous();
  auto out = at::empty({ids.size(0), ids.size(1), num_neighbours + 1}, ids.options());
  const int64_t total = out.numel();
  if (total == 0) return out;
  constexpr int threads = 256;
  const int64_t blocks = (total + threads - 1) / threads;
  auto stream = c10::cuda::getCurrentCUDAStream();
  auto* ids_ptr = reinterpret_cast<const long long*>(ids.data_ptr<int64_t>());
  auto* out_ptr = reinterpret_cast<long long*>(out.data_ptr<int64_t>());
  if (table.scalar_type() == at::kLong) {
    gather_neighbours_i64<<<blocks, threads, 0, stream>>>(
        ids_ptr, reinterpret_cast<const long long*>(table.data_ptr<int64_t>()), out_ptr, ids.numel(), num_neighbours);
  } else {
    gather_neighbours_i32<<<blocks, threads, 0, stream>>>(ids_ptr, table.data_ptr<int>(), out_ptr, ids.numel(),
                                                          num_neighbours);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace rift_fast
