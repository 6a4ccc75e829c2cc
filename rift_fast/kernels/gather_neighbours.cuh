// CUDA kernels of gather_neighbours, free of torch headers so that CuPy RawModule can compile
// this file as it is (rift_fast/ops/gather_neighbours.py) and the torch launcher can include it.
#pragma once

// out[p, 0] = ids[p]; out[p, 1 + k] = table[ids[p], k]   for p < positions, k < num_neighbours.
// One thread per output element; table rows are int32 (table_i32) or int64 (table_i64).
#define RIFT_FAST_GATHER_NEIGHBOURS_BODY(TABLE_T)                             \
  const long long element = (long long)blockIdx.x * blockDim.x + threadIdx.x; \
  const long long width = num_neighbours + 1;                                 \
  if (element >= positions * width) return;                                   \
  const long long p = element / width;                                        \
  const long long slot = element - p * width;                                 \
  const long long id = ids[p];                                                \
  out[element] = slot == 0 ? id : (long long)table[id * num_neighbours + slot - 1];

extern "C" __global__ void gather_neighbours_i64(const long long* __restrict__ ids, const long long* __restrict__ table,
                                                 long long* __restrict__ out, long long positions,
                                                 long long num_neighbours) {
  RIFT_FAST_GATHER_NEIGHBOURS_BODY(long long)
}

extern "C" __global__ void gather_neighbours_i32(const long long* __restrict__ ids, const int* __restrict__ table,
                                                 long long* __restrict__ out, long long positions,
                                                 long long num_neighbours) {
  RIFT_FAST_GATHER_NEIGHBOURS_BODY(int)
}
