// Declarations of rift_fast's compiled ops. Each op has a CPU twin (csrc/cpu) and, in CUDA
// builds, a CUDA kernel (csrc/cuda launching csrc/kernels); both are registered under the torch
// library namespace `rift_fast` in torch_bindings.cpp and dispatched by torch on the device.
#pragma once

#include <torch/library.h>
#include <ATen/ATen.h>

namespace rift_fast {

// Checks shared by the CPU and CUDA implementations of gather_neighbours; throws a clear error.
void check_gather_neighbours_inputs(const at::Tensor& token_ids, const at::Tensor& neighbour_table);

// token_ids [B, L] int64, neighbour_table [V, K] int32/int64 (-1 pads)
//   -> [B, L, 1 + K] int64: slot 0 is the token itself, slots 1..K its neighbours (-1 pads).
at::Tensor gather_neighbours_cpu(const at::Tensor& token_ids, const at::Tensor& neighbour_table);
at::Tensor gather_neighbours_cuda(const at::Tensor& token_ids, const at::Tensor& neighbour_table);

}  // namespace rift_fast
