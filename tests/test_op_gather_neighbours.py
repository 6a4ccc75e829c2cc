"""gather_neighbours: every backend that runs here against the torch reference."""

import pytest
import torch

from rift_fast.ops.dispatch import BackendUnavailable, compiled_op_available
from rift_fast.ops.gather_neighbours import gather_neighbours, gather_neighbours_reference

CPP = pytest.param(
    "cpp",
    marks=pytest.mark.skipif(
        not compiled_op_available("gather_neighbours", torch.device("cpu")), reason="rift_fast._C not built"
    ),
)


def _table(vocab, k, dtype, generator):
    table = torch.randint(-1, vocab, (vocab, k), generator=generator).to(dtype)
    return table


@pytest.mark.parametrize("backend", [CPP, "reference"])
@pytest.mark.parametrize(
    "batch,length,vocab,k", [(1, 1, 1, 1), (3, 7, 50, 8), (2, 300, 1000, 1), (0, 5, 10, 3), (4, 0, 10, 3)]
)
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_matches_reference(backend, batch, length, vocab, k, dtype):
    generator = torch.Generator().manual_seed(batch * 100 + length)
    table = _table(vocab, k, dtype, generator)
    ids = torch.randint(0, vocab, (batch, length), generator=generator)
    assert torch.equal(gather_neighbours(ids, table, backend=backend), gather_neighbours_reference(ids, table))


@pytest.mark.parametrize("backend", [CPP, "reference"])
def test_non_contiguous_inputs(backend):
    table = torch.arange(40).reshape(8, 5)[:, ::2]  # [8, 3], strided
    ids = torch.randint(0, 8, (6, 4)).t()  # [4, 6], transposed
    out = gather_neighbours(ids, table, backend=backend)
    assert torch.equal(out, gather_neighbours_reference(ids, table))
    assert torch.equal(out[..., 0], ids)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cuda", "cupy"])
def test_gpu_backends_match_reference(backend):
    table = torch.randint(-1, 500, (500, 8), device="cuda", dtype=torch.int32)
    ids = torch.randint(0, 500, (32, 256), device="cuda")
    assert torch.equal(gather_neighbours(ids, table, backend=backend), gather_neighbours_reference(ids, table))


@pytest.mark.parametrize(
    "ids,table,message",
    [
        (torch.tensor([1, 2]), torch.zeros(3, 2, dtype=torch.long), r"token_ids must be \[B, L\]"),
        (torch.tensor([[1.0]]), torch.zeros(3, 2, dtype=torch.long), "token_ids must be int64"),
        (torch.tensor([[1]]), torch.zeros(3, 2), "neighbour_table must be int32 or int64"),
        (torch.tensor([[3]]), torch.zeros(3, 2, dtype=torch.long), r"must lie in \[0, 3\), got range \[3, 3\]"),
        (torch.tensor([[-1]]), torch.zeros(3, 2, dtype=torch.long), r"got range \[-1, -1\]"),
        (torch.tensor([[0]]), torch.zeros(3, dtype=torch.long), r"neighbour_table must be \[V, K\]"),
    ],
)
def test_bad_inputs_raise_before_launch(ids, table, message):
    with pytest.raises(ValueError, match=message):
        gather_neighbours(ids, table)


def test_forcing_an_unavailable_backend_raises():
    with pytest.raises(BackendUnavailable):
        gather_neighbours(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1, dtype=torch.long), backend="cuda")


@pytest.mark.skipif(
    not compiled_op_available("gather_neighbours", torch.device("cpu")), reason="rift_fast._C not built"
)
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_opcheck(dtype):
    """Schema, fake kernel (shapes under torch.compile) and autograd registration of the compiled op."""
    generator = torch.Generator().manual_seed(0)
    table = _table(20, 4, dtype, generator)
    ids = torch.randint(0, 20, (3, 5), generator=generator)
    torch.library.opcheck(torch.ops.rift_fast.gather_neighbours.default, (ids, table))
