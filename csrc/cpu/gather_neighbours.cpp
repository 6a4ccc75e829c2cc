// CPU twin of gather_neighbours: one parallel pass over the B*L positions.
#include <ATen/Parallel.h>

#include "../checks.h"
#include "../ops.h"

namespace rift_fast {

template <typename table_t>
static void gather_neighbours_kernel(const int64_t* ids, const table_t* table, int64_t* out, int64_t positions,
                                     int64_t num_neighbours) {
  at::parallel_for(0, positions, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t id = ids[p];
      int64_t* row = out + p * (num_neighbours + 1);
      row[0] = id;
      const table_t* neighbours = table + id * num_neighbours;
      for (int64_t k = 0; k < num_neighbours; ++k) row[k + 1] = static_cast<int64_t>(neighbours[k]);
    }
  });
}

at::Tensor gather_neighbours_cpu(const at::Tensor& token_ids, const at::Tensor& neighbour_table) {
  check_gather_neighbours_inputs(token_ids, neighbour_table);
  const int64_t num_neighbours = neighbour_table.size(1);
  auto ids = token_ids.contiguous();
  auto table = neighbour_table.contiguous();
  auto out = at::empty({ids.size(0), ids.size(1), num_neighbours + 1}, ids.options());
  if (ids.numel() == 0) return out;
  AT_DISPATCH_INDEX_TYPES(table.scalar_type(), "gather_neighbours_cpu", [&] {
    gather_neighbours_kernel<index_t>(ids.data_ptr<int64_t>(), table.data_ptr<index_t>(), out.data_ptr<int64_t>(),
                                      ids.numel(), num_neighbours);
  });
  return out;
}

}  // namespace rift_fast
