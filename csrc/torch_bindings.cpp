// Registration of the `rift_fast` torch library and the Python module `rift_fast._C`: schemas, the
// CPU twins (csrc/cpu) and, in CUDA builds, the CUDA launchers (csrc/cuda). Nothing else lives here.
// Importing rift_fast._C makes every op callable as torch.ops.rift_fast.<name>.
#include <pybind11/pybind11.h>

#include "ops.h"

TORCH_LIBRARY(rift_fast, m) {
  m.def("gather_neighbours(Tensor token_ids, Tensor neighbour_table) -> Tensor");
  m.def(
      "substitution_scores(Tensor token_ids, Tensor neighbour_table, Tensor embeddings, Tensor grad, "
      "Tensor? attack_mask, int topk) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "build_perturbation_batch(Tensor token_ids, Tensor edit_example, Tensor edit_position, Tensor edit_token, "
      "Tensor edit_group, int num_groups) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rift_fast, CPU, m) {
  m.impl("gather_neighbours", &rift_fast::gather_neighbours_cpu);
  m.impl("substitution_scores", &rift_fast::substitution_scores_cpu);
  m.impl("build_perturbation_batch", &rift_fast::build_perturbation_batch_cpu);
}

#ifdef RIFT_FAST_WITH_CUDA
TORCH_LIBRARY_IMPL(rift_fast, CUDA, m) {
  m.impl("gather_neighbours", &rift_fast::gather_neighbours_cuda);
  m.impl("substitution_scores", &rift_fast::substitution_scores_cuda);
  m.impl("build_perturbation_batch", &rift_fast::build_perturbation_batch_cuda);
}
#endif

PYBIND11_MODULE(_C, module) {
  module.doc() = "rift_fast compiled ops; call them through torch.ops.rift_fast or rift_fast._custom_ops";
#ifdef RIFT_FAST_WITH_CUDA
  module.attr("with_cuda") = true;
#else
  module.attr("with_cuda") = false;
#endif
}
