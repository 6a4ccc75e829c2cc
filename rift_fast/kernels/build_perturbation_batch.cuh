// CUDA kernels of build_perturbation_batch, free of torch headers so that CuPy RawModule can
// compile this file as it is and the torch launcher can include it. They build and hash the
// [Q, L] perturbed rows; the deduplication around them is torch ops (see the launcher).
#pragma once

// rows[q, i] = base[group_example[q], i]; one thread per element of rows.
extern "C" __global__ void perturbation_copy_rows(const long long* __restrict__ base,
                                                  const long long* __restrict__ group_example,
                                                  long long* __restrict__ rows, long long num_groups,
                                                  long long length) {
  const long long element = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (element >= num_groups * length) return;
  const long long q = element / length;
  rows[element] = base[group_example[q] * length + element - q * length];
}

// rows[group[m], position[m]] = token[m]; one thread per edit (conflicting edits are detected after).
extern "C" __global__ void perturbation_apply_edits(const long long* __restrict__ group,
                                                    const long long* __restrict__ position,
                                                    const long long* __restrict__ token, long long* __restrict__ rows,
                                                    long long num_edits, long long length) {
  const long long m = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (m < num_edits) rows[group[m] * length + position[m]] = token[m];
}

// *conflict = 1 when an edit's token lost against another edit of its group at its position.
extern "C" __global__ void perturbation_find_conflicts(const long long* __restrict__ group,
                                                       const long long* __restrict__ position,
                                                       const long long* __restrict__ token,
                                                       const long long* __restrict__ rows, int* __restrict__ conflict,
                                                       long long num_edits, long long length) {
  const long long m = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (m < num_edits && rows[group[m] * length + position[m]] != token[m]) *conflict = 1;
}

__device__ __forceinline__ unsigned long long rift_fast_mix64(unsigned long long x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// hashes[q] = hash of (group_example[q], rows[q]): a sum of position-salted element hashes (the
// same as the CPU twin's), so the warp reduction order does not change it. One warp per row.
extern "C" __global__ void perturbation_hash_rows(const long long* __restrict__ rows,
                                                  const long long* __restrict__ group_example,
                                                  long long* __restrict__ hashes, long long num_groups,
                                                  long long length) {
  const long long q = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (q >= num_groups) return;  // warp-uniform
  const long long* row = rows + q * length;
  unsigned long long h = lane == 0 ? rift_fast_mix64((unsigned long long)group_example[q] ^ 0x5bd1e9955bd1e995ull) : 0;
  for (long long i = lane; i < length; i += 32) {
    h += rift_fast_mix64((unsigned long long)row[i] * 0x100000001b3ull + (unsigned long long)i);
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) h += __shfl_xor_sync(0xffffffffu, h, offset);
  if (lane == 0) hashes[q] = (long long)h;
}
