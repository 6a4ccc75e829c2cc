"""build_perturbation_batch: every backend that runs here against the torch reference."""

import pytest
import torch

from rift_fast.ops.build_perturbation_batch import build_perturbation_batch, build_perturbation_batch_reference
from rift_fast.ops.dispatch import BackendUnavailable, compiled_op_available

CPP = pytest.param(
    "cpp",
    marks=pytest.mark.skipif(
        not compiled_op_available("build_perturbation_batch", torch.device("cpu")), reason="rift_fast._C not built"
    ),
)


def ga_edits(batch, length, per_example, vocab=50, duplicate_fraction=0.3, max_changes=4, seed=0, device="cpu"):
    """A GA-like load: ``per_example`` individuals per base row, 1..max_changes edits each; about
    ``duplicate_fraction`` of them repeat an earlier individual of their row (edits shuffled)."""
    gen = torch.Generator().manual_seed(seed)
    individuals = []
    for example in range(batch):
        own = []
        for _ in range(per_example):
            if own and torch.rand(1, generator=gen).item() < duplicate_fraction:
                copy = own[torch.randint(len(own), (1,), generator=gen).item()]
                own.append([copy[i] for i in torch.randperm(len(copy), generator=gen).tolist()])
            else:
                changes = torch.randint(1, max_changes + 1, (1,), generator=gen).item()
                positions = torch.randperm(length, generator=gen)[:changes].tolist()
                own.append([(p, torch.randint(vocab, (1,), generator=gen).item()) for p in positions])
        individuals += [(example, edits) for edits in own]
    order = torch.randperm(len(individuals), generator=gen).tolist()  # interleave the base rows
    rows = [(group, individuals[i]) for group, i in enumerate(order)]
    columns = [[example, position, token, group] for group, (example, edits) in rows for position, token in edits]
    example, position, token, group = torch.tensor(columns, dtype=torch.long).t().to(device)
    ids = torch.randint(vocab, (batch, length), generator=gen).to(device)
    return ids, example, position, token, group


def _assert_equal(out, ref):
    for name, got, want in zip(out._fields, out, ref):
        assert got.dtype == torch.int64 and torch.equal(got, want), name


@pytest.mark.parametrize("backend", [CPP, "reference"])
@pytest.mark.parametrize("batch,length,per_example", [(1, 1, 1), (1, 1, 5), (3, 7, 10), (8, 64, 60), (2, 300, 4)])
def test_matches_reference(backend, batch, length, per_example):
    ids, example, position, token, group = ga_edits(
        batch, length, per_example, vocab=3 if length == 1 else 50, seed=batch + length
    )
    out = build_perturbation_batch(ids, example, position, token, group, backend=backend)
    _assert_equal(out, build_perturbation_batch_reference(ids, example, position, token, group))
    assert out.inverse.shape == (int(group.max()) + 1,) and out.query_ids.shape[0] <= out.inverse.shape[0]


@pytest.mark.parametrize("backend", [CPP, "reference"])
def test_answers_scatter_back_to_every_group(backend):
    ids, example, position, token, group = ga_edits(4, 20, 30, seed=3)
    out = build_perturbation_batch(ids, example, position, token, group, backend=backend)
    rows = ids[torch.zeros(int(group.max()) + 1, dtype=torch.long).scatter_(0, group, example)]
    rows[group, position] = token
    assert torch.equal(out.query_ids[out.inverse], rows)  # "logits[inverse]" answers each group
    keyed = torch.cat([out.query_example.unsqueeze(1), out.query_ids], 1)
    assert keyed.unique(dim=0).shape[0] == keyed.shape[0]  # no duplicate left
    assert out.query_ids.shape[0] < rows.shape[0]  # duplicates were removed


@pytest.mark.parametrize("backend", [CPP, "reference"])
def test_first_appearance_order(backend):
    ids = torch.tensor([[10, 11, 12], [10, 11, 12]])
    # group 0: row 0 p1->5; group 1: row 1 p1->5 (same ids, other base row: distinct query);
    # group 2: row 0 p1->5 plus an identity edit (same row as group 0); group 3: row 0 p0->7 and p2->8.
    example = torch.tensor([0, 1, 0, 0, 0, 0])
    position = torch.tensor([1, 1, 1, 2, 0, 2])
    token = torch.tensor([5, 5, 5, 12, 7, 8])
    group = torch.tensor([0, 1, 2, 2, 3, 3])
    out = build_perturbation_batch(ids, example, position, token, group, backend=backend)
    assert out.query_ids.tolist() == [[10, 5, 12], [10, 5, 12], [7, 11, 8]]
    assert out.inverse.tolist() == [0, 1, 0, 2] and out.query_example.tolist() == [0, 1, 0]


@pytest.mark.parametrize("backend", [CPP, "reference"])
def test_repeated_identical_edit_is_allowed(backend):
    ids = torch.tensor([[1, 2, 3]])
    out = build_perturbation_batch(
        ids, torch.tensor([0, 0]), torch.tensor([1, 1]), torch.tensor([9, 9]), torch.tensor([0, 0]), backend=backend
    )
    assert out.query_ids.tolist() == [[1, 9, 3]] and out.inverse.tolist() == [0]


@pytest.mark.parametrize("backend", [CPP, "reference"])
def test_no_edits_gives_an_empty_batch(backend):
    empty = torch.zeros(0, dtype=torch.long)
    out = build_perturbation_batch(torch.ones(2, 5, dtype=torch.long), empty, empty, empty, empty, backend=backend)
    assert out.query_ids.shape == (0, 5) and out.inverse.shape == (0,) and out.query_example.shape == (0,)


@pytest.mark.parametrize("backend", [CPP, "reference"])
def test_non_contiguous_inputs(backend):
    ids, example, position, token, group = ga_edits(4, 12, 9, seed=5)
    ids_t = ids.t().contiguous().t()
    strided = [torch.stack([t, t], -1).flatten()[::2] for t in (example, position, token, group)]
    assert not ids_t.is_contiguous() and not any(t.is_contiguous() for t in strided)
    out = build_perturbation_batch(ids_t, *strided, attention_mask=torch.ones_like(ids_t), backend=backend)
    _assert_equal(out, build_perturbation_batch_reference(ids, example, position, token, group))


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cuda", "cupy"])
def test_gpu_backends_match_reference(backend):
    for batch, length, per_example in ((32, 256, 60), (3, 7, 10), (1, 1, 4)):
        inputs = ga_edits(batch, length, per_example, vocab=3 if length == 1 else 50, device="cuda")
        _assert_equal(build_perturbation_batch(*inputs, backend=backend), build_perturbation_batch_reference(*inputs))


def _bad_cases():
    ids = torch.tensor([[1, 2, 3], [4, 5, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    t = torch.tensor
    return [
        ({"token_ids": ids[0]}, r"token_ids must be \[B, L\] int64"),
        ({"token_ids": ids.int()}, r"token_ids must be \[B, L\] int64"),
        ({"edit_example": t([[0]])}, r"edit_example must be \[M\] int64"),
        ({"edit_token": t([1.0])}, r"edit_token must be \[M\] int64"),
        ({"edit_position": t([0, 1])}, "edit_position has 2 edits but edit_example has 1"),
        ({"edit_group": t([0]).to("meta")}, "edit_group is on meta"),
        ({"attention_mask": mask[:1]}, r"attention_mask must be \[B, L\]"),
        ({"attention_mask": mask.to("meta")}, "attention_mask is on meta"),
        ({"edit_example": t([2])}, r"edit_example must lie in \[0, 2\), got range \[2, 2\]"),
        ({"edit_example": t([-1])}, r"edit_example must lie in \[0, 2\)"),
        ({"edit_position": t([3])}, r"edit_position must lie in \[0, 3\), got range \[3, 3\]"),
        ({"edit_position": t([-1])}, r"edit_position must lie in \[0, 3\)"),
        ({"edit_token": t([-1])}, "edit_token must be >= 0"),
        ({"edit_group": t([-1])}, "edit_group must be >= 0"),
        ({"edit_group": t([10**12])}, "got group 1000000000000 but only 1 edits"),
        (
            {"edit_example": t([0, 0]), "edit_position": t([0, 1]), "edit_token": t([7, 7]), "edit_group": t([1, 1])},
            "group 0 has no edit",
        ),
        (
            {"edit_example": t([1]), "edit_position": t([2]), "attention_mask": mask},
            r"edit_position\[0\] = 2 is padding",
        ),
        (
            {"edit_example": t([0, 1]), "edit_position": t([0, 0]), "edit_token": t([7, 7]), "edit_group": t([0, 0])},
            "group 0 has edits on base rows 0 and 1",
        ),
        (
            {"edit_example": t([0, 0]), "edit_position": t([1, 1]), "edit_token": t([7, 8]), "edit_group": t([0, 0])},
            "group 0 has two edits at position 1 with different tokens",
        ),
    ], {"token_ids": ids, "edit_example": t([0]), "edit_position": t([1]), "edit_token": t([7]), "edit_group": t([0])}


@pytest.mark.parametrize("case", range(len(_bad_cases()[0])))
def test_bad_inputs_raise_before_launch(case):
    cases, good = _bad_cases()
    override, message = cases[case]
    with pytest.raises(ValueError, match=message):
        build_perturbation_batch(**{**good, **override})


@pytest.mark.skipif(
    not compiled_op_available("build_perturbation_batch", torch.device("cpu")), reason="rift_fast._C not built"
)
@pytest.mark.parametrize(
    "edits,message",
    [
        (([0], [3], [7], [0]), "edit_position"),
        (([2], [0], [7], [0]), "edit_example"),
        (([0], [0], [7], [1]), "edit_group"),
        (([0, 0], [1, 1], [7, 8], [0, 0]), "two edits at one position"),
        (([0, 1], [1, 1], [7, 7], [0, 0]), "edits on base rows"),
    ],
)
def test_compiled_op_checks_its_inputs_too(edits, message):
    from rift_fast import _custom_ops

    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(RuntimeError, match=message):
        _custom_ops.build_perturbation_batch(ids, *(torch.tensor(e) for e in edits), 1)


def test_forcing_an_unavailable_backend_raises():
    one = torch.zeros(1, dtype=torch.long)
    with pytest.raises(BackendUnavailable):
        build_perturbation_batch(torch.zeros(1, 1, dtype=torch.long), one, one, one, one, backend="cuda")


@pytest.mark.skipif(
    not compiled_op_available("build_perturbation_batch", torch.device("cpu")), reason="rift_fast._C not built"
)
@pytest.mark.parametrize("batch,length,per_example", [(3, 7, 10), (1, 1, 5)])
def test_opcheck(batch, length, per_example):
    """Schema, fake kernel (a data-dependent number of unique queries) and autograd registration."""
    ids, example, position, token, group = ga_edits(batch, length, per_example, vocab=3 if length == 1 else 50)
    num_groups = int(group.max()) + 1
    torch.library.opcheck(
        torch.ops.rift_fast.build_perturbation_batch.default, (ids, example, position, token, group, num_groups)
    )
