// CPU twin of build_perturbation_batch: edits are bucketed by group (counting sort), each group's
// row is copied from its base row, edited and hashed in one parallel pass, then a sequential pass
// deduplicates with a hash map (full-row comparison on equal hashes), compacting unique rows in place.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "../checks.h"
#include "../ops.h"

namespace rift_fast {
namespace {

inline uint64_t mix64(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Hash of (base row, ids): a sum of position-salted element hashes.
uint64_t row_hash(int64_t example, const int64_t* row, int64_t length) {
  uint64_t h = mix64(static_cast<uint64_t>(example) ^ 0x5bd1e9955bd1e995ull);
  for (int64_t i = 0; i < length; ++i) h += mix64(static_cast<uint64_t>(row[i]) * 0x100000001b3ull + i);
  return h;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> build_perturbation_batch_cpu(
    const at::Tensor& token_ids, const at::Tensor& edit_example, const at::Tensor& edit_position,
    const at::Tensor& edit_token, const at::Tensor& edit_group, int64_t num_groups) {
  check_build_perturbation_batch_inputs(token_ids, edit_example, edit_position, edit_token, edit_group, num_groups);
  const int64_t length = token_ids.size(1), num_edits = edit_example.size(0);
  auto ids = token_ids.contiguous();
  auto example_t = edit_example.contiguous(), position_t = edit_position.contiguous();
  auto token_t = edit_token.contiguous(), group_t = edit_group.contiguous();
  const int64_t* base = ids.data_ptr<int64_t>();
  const int64_t* example = example_t.data_ptr<int64_t>();
  const int64_t* position = position_t.data_ptr<int64_t>();
  const int64_t* token = token_t.data_ptr<int64_t>();
  const int64_t* group = group_t.data_ptr<int64_t>();

  // Find each group's base row and bucket the edits by group (stable); the ranges are checked above.
  std::vector<int64_t> group_example(num_groups, -1), offsets(num_groups + 1, 0), order(num_edits);
  for (int64_t m = 0; m < num_edits; ++m) {
    int64_t& owner = group_example[group[m]];
    TORCH_CHECK(owner < 0 || owner == example[m], "build_perturbation_batch: group ", group[m],
                " has edits on base rows ", owner, " and ", example[m]);
    owner = example[m];
    ++offsets[group[m] + 1];
  }
  for (int64_t q = 0; q < num_groups; ++q) {
    TORCH_CHECK(group_example[q] >= 0, "build_perturbation_batch: group ", q, " has no edit");
    offsets[q + 1] += offsets[q];
  }
  {
    std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
    for (int64_t m = 0; m < num_edits; ++m) order[fill[group[m]]++] = m;
  }

  // Copy, edit and hash every group's row; flag conflicting edits (same position, other token).
  auto rows = at::empty({num_groups, length}, ids.options());
  int64_t* out = rows.data_ptr<int64_t>();
  std::vector<uint64_t> hashes(num_groups);
  std::vector<char> conflict(num_groups, 0);
  at::parallel_for(0, num_groups, std::max<int64_t>(1, 4096 / (length + 1)), [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      int64_t* row = out + q * length;
      std::memcpy(row, base + group_example[q] * length, length * sizeof(int64_t));
      for (int64_t e = offsets[q]; e < offsets[q + 1]; ++e) row[position[order[e]]] = token[order[e]];
      for (int64_t e = offsets[q]; e < offsets[q + 1]; ++e) conflict[q] |= row[position[order[e]]] != token[order[e]];
      hashes[q] = row_hash(group_example[q], row, length);
    }
  });
  for (int64_t q = 0; q < num_groups; ++q) {
    TORCH_CHECK(!conflict[q], "build_perturbation_batch: group ", q,
                " has two edits at one position with different tokens");
  }

  // Deduplicate in order of first appearance; unique row u moves to slot u <= q (already consumed).
  auto inverse = at::empty({num_groups}, ids.options());
  int64_t* inv = inverse.data_ptr<int64_t>();
  std::vector<int64_t> unique_example, next;  // next: chain of unique rows sharing a hash
  std::unordered_map<uint64_t, int64_t> head;
  head.reserve(num_groups);
  const size_t row_bytes = length * sizeof(int64_t);
  for (int64_t q = 0; q < num_groups; ++q) {
    const auto found = head.find(hashes[q]);
    int64_t u = found == head.end() ? -1 : found->second;
    while (u >= 0 && !(unique_example[u] == group_example[q] &&
                       std::memcmp(out + u * length, out + q * length, row_bytes) == 0)) {
      u = next[u];
    }
    if (u < 0) {
      u = static_cast<int64_t>(unique_example.size());
      if (u != q) std::memcpy(out + u * length, out + q * length, row_bytes);
      next.push_back(found == head.end() ? -1 : found->second);
      head[hashes[q]] = u;
      unique_example.push_back(group_example[q]);
    }
    inv[q] = u;
  }
  const int64_t num_unique = static_cast<int64_t>(unique_example.size());
  auto query_example = at::empty({num_unique}, ids.options());
  std::copy(unique_example.begin(), unique_example.end(), query_example.data_ptr<int64_t>());
  return {rows.narrow(0, 0, num_unique), inverse, query_example};
}

}  // namespace rift_fast
