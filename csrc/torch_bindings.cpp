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

}  // namespace rift_fast

TORCH_LIBRARY(rift_fast, m) {
  m.def("gather_neighbours(Tensor token_ids, Tensor neighbour_table) -> Tensor");
}

TORCH_LIBRARY_IMPL(rift_fast, CPU, m) {
  m.impl("gather_neighbours", &rift_fast::gather_neighbours_cpu);
}

PYBIND11_MODULE(_C, module) {
  module.doc() = "rift_fast compiled ops; call them through torch.ops.rift_fast or rift_fast._custom_ops";
#ifdef RIFT_FAST_WITH_CUDA
  module.attr("with_cuda") = true;
#else
  module.attr("with_cuda") = false;
#endif
}
