"""The compiled ops under torch.compile on the CPU: fake kernels let dynamo trace them without graph breaks.

gather_neighbours and substitution_scores compile through the public API into one graph
(fullgraph=True): the backend choice is a trace-time constant and the data-dependent range checks
are left to the compiled op. build_perturbation_batch cannot: its public function validates edits
with data-dependent branches and derives the number of groups from the data, so only the custom op
itself (its output size is data-dependent, an unbacked size in the fake kernel) compiles into one
graph; the public function compiles with graph breaks.
"""

import pytest
import torch

from rift_fast.ops import build_perturbation_batch, gather_neighbours, substitution_scores
from rift_fast.ops.dispatch import compiled_op_available

OPS = ("gather_neighbours", "substitution_scores", "build_perturbation_batch")
pytestmark = pytest.mark.skipif(
    not all(compiled_op_available(op, torch.device("cpu")) for op in OPS), reason="rift_fast._C not built"
)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _attack_step(token_ids, neighbour_table, embeddings, grad, backend):
    slots = gather_neighbours(token_ids, neighbour_table, backend=backend)
    scored = substitution_scores(token_ids, neighbour_table, embeddings, grad, topk=3, backend=backend)
    return slots, scored.scores, scored.top_position, scored.top_slot


@pytest.mark.parametrize("backend", [None, "cpp", "reference"])
def test_public_api_compiles_into_one_graph(backend):
    generator = torch.Generator().manual_seed(0)
    table = torch.randint(-1, 30, (30, 4), generator=generator)
    ids = torch.randint(0, 30, (2, 6), generator=generator)
    embeddings = torch.randint(-4, 5, (30, 8), generator=generator).float()
    grad = torch.randint(-3, 4, (2, 6, 8), generator=generator).float()
    compiled = torch.compile(_attack_step, fullgraph=True, backend="aot_eager")
    for got, want in zip(
        compiled(ids, table, embeddings, grad, backend), _attack_step(ids, table, embeddings, grad, backend)
    ):
        assert torch.equal(got, want)


def test_build_perturbation_batch_op_compiles_into_one_graph():
    ids = torch.tensor([[10, 11, 12], [10, 11, 12]])
    edits = [
        torch.tensor(column)
        for column in ([0, 1, 0, 0, 0, 0], [1, 1, 1, 2, 0, 2], [5, 5, 5, 12, 7, 8], [0, 1, 2, 2, 3, 3])
    ]

    def unique_queries(token_ids, example, position, token, group):
        return torch.ops.rift_fast.build_perturbation_batch(token_ids, example, position, token, group, 4)

    compiled = torch.compile(unique_queries, fullgraph=True, backend="aot_eager")
    for got, want in zip(compiled(ids, *edits), unique_queries(ids, *edits)):
        assert torch.equal(got, want)


def test_build_perturbation_batch_public_api_compiles_with_graph_breaks():
    ids = torch.tensor([[10, 11, 12], [10, 11, 12]])
    edits = [torch.tensor(column) for column in ([0, 1, 0, 0], [1, 1, 1, 0], [5, 5, 5, 7], [0, 1, 2, 3])]
    compiled = torch.compile(build_perturbation_batch, backend="aot_eager")
    for got, want in zip(compiled(ids, *edits), build_perturbation_batch(ids, *edits)):
        assert torch.equal(got, want)
