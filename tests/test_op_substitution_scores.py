"""substitution_scores: every backend that runs here against the torch reference.

Exact comparisons use integer-valued embeddings and gradients (every product and sum is exact in
fp32, so scores and selections must agree bit for bit, ties included). Random-float comparisons
use atol=1e-4, rtol=1e-5 for float32 and bfloat16 alike: both sides widen the same values to fp32
and accumulate in fp32, only the summation order differs.
"""

import pytest
import torch

from rift_fast.ops.dispatch import BackendUnavailable, compiled_op_available
from rift_fast.ops.substitution_scores import substitution_scores, substitution_scores_reference

CPP = pytest.param(
    "cpp",
    marks=pytest.mark.skipif(
        not compiled_op_available("substitution_scores", torch.device("cpu")), reason="rift_fast._C not built"
    ),
)
NEG_INF = float("-inf")
ATOL, RTOL = 1e-4, 1e-5


def _inputs(
    batch,
    length,
    vocab,
    k,
    dim,
    *,
    dtype=torch.float32,
    table_dtype=torch.int64,
    integer=True,
    mask_fraction=None,
    device="cpu",
    seed=0,
):
    gen = torch.Generator().manual_seed(seed)
    table = torch.randint(-1, vocab, (vocab, k), generator=gen).to(table_dtype)
    ids = torch.randint(0, vocab, (batch, length), generator=gen)
    if integer:
        embeddings = torch.randint(-4, 5, (vocab, dim), generator=gen).float()
        grad = torch.randint(-3, 4, (batch, length, dim), generator=gen).float()
    else:
        embeddings = torch.randn(vocab, dim, generator=gen)
        grad = torch.randn(batch, length, dim, generator=gen)
    mask = None if mask_fraction is None else torch.rand(batch, length, generator=gen) >= mask_fraction
    tensors = [ids, table, embeddings.to(dtype), grad.to(dtype), mask]
    return [None if t is None else t.to(device) for t in tensors]


def _assert_equal(out, ref):
    for name, got, want in zip(out._fields, out, ref):
        torch.testing.assert_close(got, want, atol=0, rtol=0, equal_nan=True, msg=name)


def _assert_close(out, ref, scores):
    """Scores within tolerance; selections consistent with the backend's own scores and ranked alike."""
    torch.testing.assert_close(out.scores.cpu(), ref.scores.cpu(), atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(out.best_score.cpu(), ref.best_score.cpu(), atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(out.top_score.cpu(), ref.top_score.cpu(), atol=ATOL, rtol=RTOL)
    valid = out.top_position >= 0
    assert torch.equal(valid, ref.top_position >= 0)
    batch_index = torch.arange(out.top_score.shape[0], device=valid.device).unsqueeze(1).expand_as(valid)
    picked = scores[batch_index[valid], out.top_position[valid], out.top_slot[valid]]
    assert torch.equal(picked, out.top_score[valid])
    assert torch.equal(out.best_slot >= 0, ref.best_slot >= 0)


@pytest.mark.parametrize("backend", [CPP, "reference"])
@pytest.mark.parametrize(
    "batch,length,vocab,k,dim",
    [(1, 1, 1, 1, 1), (3, 7, 50, 8, 37), (2, 33, 100, 5, 64), (0, 5, 10, 3, 4), (4, 0, 10, 3, 4), (2, 40, 30, 1, 16)],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("table_dtype", [torch.int32, torch.int64])
def test_matches_reference_exactly(backend, batch, length, vocab, k, dim, dtype, table_dtype):
    ids, table, embeddings, grad, mask = _inputs(
        batch, length, vocab, k, dim, dtype=dtype, table_dtype=table_dtype, mask_fraction=0.3, seed=batch * 31 + length
    )
    for topk in (1, 5, length * k + 3):
        for attack_mask in (None, mask):
            out = substitution_scores(ids, table, embeddings, grad, attack_mask, topk, backend=backend)
            _assert_equal(out, substitution_scores_reference(ids, table, embeddings, grad, attack_mask, topk))


@pytest.mark.parametrize("backend", [CPP, "reference"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_random_floats_within_tolerance(backend, dtype):
    ids, table, embeddings, grad, mask = _inputs(4, 50, 200, 8, 300, dtype=dtype, integer=False, mask_fraction=0.2)
    out = substitution_scores(ids, table, embeddings, grad, mask, topk=20, backend=backend)
    _assert_close(out, substitution_scores_reference(ids, table, embeddings, grad, mask, topk=20), out.scores)


@pytest.mark.parametrize("backend", [CPP, "reference"])
def test_slot_k_is_table_column_k(backend):
    embeddings = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    table = torch.tensor([[1, -1, 2], [-1, -1, -1], [0, 3, -1], [-1, -1, -1]])
    ids = torch.tensor([[0, 2]])
    grad = torch.tensor([[[1.0, 1.0], [1.0, -1.0]]])
    out = substitution_scores(ids, table, embeddings, grad, topk=4, backend=backend)
    expected = torch.tensor([[[1.0, NEG_INF, 2.0], [2.0, 2.0, NEG_INF]]])  # (E[c] - E[orig]) . grad
    assert torch.equal(out.scores, expected)
    assert out.best_slot.tolist() == [[2, 0]] and out.best_score.tolist() == [[2.0, 2.0]]
    # Ties at 2.0: lowest position first, then lowest slot.
    assert out.top_position.tolist() == [[0, 1, 1, 0]] and out.top_slot.tolist() == [[2, 0, 1, 0]]
    assert out.top_score.tolist() == [[2.0, 2.0, 2.0, 1.0]]


@pytest.mark.parametrize("backend", [CPP, "reference"])
def test_ties_break_to_lowest_position_then_slot(backend):
    ids, table, embeddings, grad, _ = _inputs(2, 6, 20, 4, 8)
    table = torch.randint(1, 20, (20, 4))  # every slot valid
    embeddings[1:] = embeddings[0] + 1  # every candidate differs from every original alike (or is equal)
    grad = torch.ones_like(grad)
    ids = torch.zeros_like(ids)
    out = substitution_scores(ids, table, embeddings, grad, topk=10, backend=backend)
    assert torch.equal(out.scores, torch.full((2, 6, 4), 8.0))
    assert torch.equal(out.best_slot, torch.zeros(2, 6, dtype=torch.long))
    flat = torch.arange(10)
    assert torch.equal(out.top_position, (flat // 4).expand(2, 10))
    assert torch.equal(out.top_slot, (flat % 4).expand(2, 10))


@pytest.mark.parametrize("backend", [CPP, "reference"])
def test_all_slots_invalid(backend):
    ids, _, embeddings, grad, _ = _inputs(2, 5, 10, 3, 4)
    table = torch.full((10, 3), -1)
    out = substitution_scores(ids, table, embeddings, grad, topk=4, backend=backend)
    assert torch.equal(out.scores, torch.full((2, 5, 3), NEG_INF))
    assert torch.equal(out.best_score, torch.full((2, 5), NEG_INF))
    assert torch.equal(out.best_slot, torch.full((2, 5), -1))
    assert torch.equal(out.top_score, torch.full((2, 4), NEG_INF))
    assert torch.equal(out.top_position, torch.full((2, 4), -1)) and torch.equal(out.top_slot, torch.full((2, 4), -1))


@pytest.mark.parametrize("backend", [CPP, "reference"])
def test_all_positions_masked(backend):
    ids, table, embeddings, grad, _ = _inputs(3, 4, 10, 2, 4)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    out = substitution_scores(ids, table, embeddings, grad, mask, topk=2, backend=backend)
    assert torch.equal(out.scores, torch.full((3, 4, 2), NEG_INF))
    assert torch.equal(out.best_slot, torch.full((3, 4), -1)) and torch.equal(out.top_slot, torch.full((3, 2), -1))


@pytest.mark.parametrize("backend", [CPP, "reference"])
def test_topk_larger_than_valid_candidates_pads(backend):
    ids, table, embeddings, grad, _ = _inputs(2, 3, 10, 2, 4)
    mask = torch.tensor([[True, False, False], [False, False, False]])
    table = torch.randint(0, 10, (10, 2))
    out = substitution_scores(ids, table, embeddings, grad, mask, topk=5, backend=backend)
    assert (out.top_position[0, :2] == 0).all() and sorted(out.top_slot[0, :2].tolist()) == [0, 1]
    assert torch.equal(out.top_position[0, 2:], torch.full((3,), -1))
    assert torch.equal(out.top_score[1], torch.full((5,), NEG_INF))
    assert torch.equal(out.top_score[0, :2], out.scores[0, 0].sort(descending=True).values)


@pytest.mark.parametrize("backend", [CPP, "reference"])
def test_nan_in_grad_propagates(backend):
    ids, table, embeddings, grad, _ = _inputs(2, 5, 10, 3, 4)
    table = torch.randint(0, 10, (10, 3))
    grad[1, 2, 0] = float("nan")
    out = substitution_scores(ids, table, embeddings, grad, topk=3, backend=backend)
    _assert_equal(out, substitution_scores_reference(ids, table, embeddings, grad, topk=3))
    assert out.best_score[1, 2].isnan() and out.best_slot[1, 2] == 0
    assert out.top_score[1, 0].isnan() and out.top_position[1].tolist() == [2, 2, 2]  # NaN ranks first


@pytest.mark.parametrize("backend", [CPP, "reference"])
def test_non_contiguous_inputs(backend):
    ids, table, embeddings, grad, mask = _inputs(5, 6, 40, 4, 10, mask_fraction=0.3)
    ids_t = ids.t().contiguous().t()  # [5, 6] with transposed strides
    table_s = torch.stack([table, table], -1).flatten(-2)[:, ::2]  # [40, 4], column stride 2
    embeddings_s = torch.stack([embeddings, embeddings], -1).flatten(-2)[:, ::2]  # [40, 10], column stride 2
    grad_p = grad.permute(2, 0, 1).contiguous().permute(1, 2, 0)
    mask_t = mask.t().contiguous().t()
    assert not (
        ids_t.is_contiguous()
        or table_s.is_contiguous()
        or embeddings_s.is_contiguous()
        or grad_p.is_contiguous()
        or mask_t.is_contiguous()
    )
    out = substitution_scores(ids_t, table_s, embeddings_s, grad_p, mask_t, topk=7, backend=backend)
    _assert_equal(out, substitution_scores_reference(ids, table, embeddings, grad, mask, topk=7))


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cuda", "cupy"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("dim", [768, 37])  # vectorised and scalar paths
def test_gpu_backends_match_reference(backend, dtype, dim):
    for table_dtype in (torch.int32, torch.int64):
        ids, table, embeddings, grad, mask = _inputs(
            32, 128, 500, 8, dim, dtype=dtype, table_dtype=table_dtype, mask_fraction=0.2, device="cuda"
        )
        for topk, attack_mask in ((1, None), (37, mask), (128 * 8 + 5, mask)):
            out = substitution_scores(ids, table, embeddings, grad, attack_mask, topk, backend=backend)
            _assert_equal(out, substitution_scores_reference(ids, table, embeddings, grad, attack_mask, topk))
        ids, table, embeddings, grad, mask = _inputs(
            8, 64, 500, 8, dim, dtype=dtype, integer=False, mask_fraction=0.2, device="cuda"
        )
        out = substitution_scores(ids, table, embeddings, grad, mask, 50, backend=backend)
        ref = substitution_scores_reference(ids, table, embeddings, grad, mask, 50)
        _assert_close(out, ref, out.scores)


def _bad_cases():
    ids, table, embeddings, grad, mask = _inputs(2, 3, 10, 2, 4, mask_fraction=0.5)
    meta = torch.device("meta")
    return [
        ({"token_ids": ids[0]}, r"token_ids must be \[B, L\] int64"),
        ({"token_ids": ids.int()}, r"token_ids must be \[B, L\] int64"),
        ({"neighbour_table": table.float()}, "neighbour_table must be"),
        ({"neighbour_table": table[:, :0]}, "K=0"),
        ({"embeddings": embeddings.double(), "grad": grad.double()}, "embeddings must be"),
        ({"grad": grad[:, :2]}, r"grad must be \[2, 3, 4\]"),
        ({"grad": grad.half()}, "grad must be .* of dtype torch.float32"),
        ({"attack_mask": mask.int()}, "attack_mask must be"),
        ({"attack_mask": mask[:1]}, "attack_mask must be"),
        ({"topk": -1}, "topk must be an int >= 0"),
        ({"topk": 2.0}, "topk must be an int >= 0"),
        ({"token_ids": torch.full((2, 3), 10)}, r"token_ids must lie in \[0, 10\)"),
        ({"token_ids": torch.full((2, 3), -1)}, r"token_ids must lie in \[0, 10\)"),
        ({"embeddings": embeddings[:5]}, r"token_ids must lie in \[0, 5\)|neighbour_table entries"),
        ({"neighbour_table": torch.full((10, 2), -2)}, r"neighbour_table entries must lie in \[-1, 10\)"),
        ({"neighbour_table": torch.full((10, 2), 10)}, r"neighbour_table entries must lie in \[-1, 10\)"),
        ({"grad": grad.to(meta)}, "grad is on meta"),
        ({"attack_mask": mask.to(meta)}, "attack_mask is on meta"),
    ], {
        "token_ids": ids,
        "neighbour_table": table,
        "embeddings": embeddings,
        "grad": grad,
        "attack_mask": mask,
        "topk": 2,
    }


@pytest.mark.parametrize("case", range(len(_bad_cases()[0])))
def test_bad_inputs_raise_before_launch(case):
    cases, good = _bad_cases()
    override, message = cases[case]
    with pytest.raises(ValueError, match=message):
        substitution_scores(**{**good, **override})


@pytest.mark.skipif(
    not compiled_op_available("substitution_scores", torch.device("cpu")), reason="rift_fast._C not built"
)
@pytest.mark.parametrize(
    "override,message",
    [
        ({"token_ids": torch.full((2, 3), 10)}, r"token ids must lie in \[0, 10\)"),
        ({"neighbour_table": torch.full((10, 2), -2, dtype=torch.int32)}, "neighbour_table entries"),
        ({"neighbour_table": torch.zeros(10, 0, dtype=torch.int32)}, "K=0"),
        ({"topk": -1}, "topk must be >= 0"),
    ],
)
def test_compiled_op_checks_its_inputs_too(override, message):
    from rift_fast import _custom_ops

    _, good = _bad_cases()
    with pytest.raises(RuntimeError, match=message):
        _custom_ops.substitution_scores(**{**good, **override})


def test_forcing_an_unavailable_backend_raises():
    ids, table, embeddings, grad, _ = _inputs(1, 1, 2, 1, 2)
    with pytest.raises(BackendUnavailable):
        substitution_scores(ids, table, embeddings, grad, backend="cuda")


@pytest.mark.skipif(
    not compiled_op_available("substitution_scores", torch.device("cpu")), reason="rift_fast._C not built"
)
@pytest.mark.parametrize(
    "dtype,table_dtype,mask_fraction,topk",
    [
        (torch.float32, torch.int64, None, 3),
        (torch.bfloat16, torch.int32, 0.3, 0),
        (torch.float16, torch.int64, 0.5, 40),
    ],
)
def test_opcheck(dtype, table_dtype, mask_fraction, topk):
    """Schema, fake kernel (shapes under torch.compile) and autograd registration of the compiled op."""
    inputs = _inputs(2, 5, 30, 4, 8, dtype=dtype, table_dtype=table_dtype, mask_fraction=mask_fraction)
    torch.library.opcheck(torch.ops.rift_fast.substitution_scores.default, (*inputs, topk))
