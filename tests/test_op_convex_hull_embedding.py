"""convex_hull_embedding: the Triton path (interpreter on CPU) against the torch reference.

Tolerances: float32 output and gradients rtol 1e-5 / atol 1e-5 (both compute in float32, only the
summation order differs). bfloat16 tables are checked against the reference run on the same values
upcast to float32: the kernels compute in float32 and round each result to bfloat16 once, so rtol
1e-2 (> one bfloat16 half-ulp, 2^-9) with atol 1e-3 * max|reference| for entries near zero.
float64 goes through torch.autograd.gradcheck.
"""

import importlib

import pytest
import torch

from rift_fast.ops.convex_hull_embedding import (
    ConvexHullEmbeddingFunction,
    convex_hull_embedding,
    convex_hull_embedding_from_bert,
    convex_hull_embedding_reference,
    convex_hull_word_embedding,
    convex_hull_word_embedding_reference,
)
from rift_fast.ops.dispatch import BackendUnavailable

op_module = importlib.import_module("rift_fast.ops.convex_hull_embedding")  # the module, not the function

VOCAB, POSITIONS, TYPES = 13, 11, 3  # a small vocabulary forces repeated ids across positions
TABLE_NAMES = ("word_emb", "pos_emb", "type_emb", "ln_weight", "ln_bias")


def _inputs(batch, length, slots, hidden, dtype=torch.float32, weight_dtype=torch.float32, seed=0, custom_ids=True):
    """Keyword arguments of the op: random slots with ~30% empty (-1) ones beyond slot 0, a repeated id
    within a position, one all-empty position, and weights that are NOT zero on empty slots."""
    gen = torch.Generator().manual_seed(seed)
    sub_ids = torch.randint(0, VOCAB, (batch, length, slots), generator=gen)
    empty = torch.rand(batch, length, slots, generator=gen) < 0.3
    empty[..., 0] = False
    sub_ids[empty] = -1
    if slots > 1:
        sub_ids[..., -1] = sub_ids[..., 0]
    if batch * length > 1:
        sub_ids[-1, -1, :] = -1
    args = {
        "weights": torch.rand(batch, length, slots, generator=gen).softmax(-1).to(weight_dtype),
        "sub_ids": sub_ids,
        "word_emb": torch.randn(VOCAB, hidden, generator=gen).to(dtype),
        "pos_emb": (0.5 * torch.randn(POSITIONS, hidden, generator=gen)).to(dtype),
        "type_emb": (0.5 * torch.randn(TYPES, hidden, generator=gen)).to(dtype),
        "ln_weight": (1 + 0.2 * torch.randn(hidden, generator=gen)).to(dtype),
        "ln_bias": (0.2 * torch.randn(hidden, generator=gen)).to(dtype),
        "eps": 1e-12,
    }
    if custom_ids:
        args["position_ids"] = torch.randint(0, POSITIONS, (batch, length), generator=gen)
        args["token_type_ids"] = torch.randint(0, TYPES, (batch, length), generator=gen)
    return args


def _out_and_grads(fn, args, grad_seed=1):
    """Output and the gradients of weights and the five tables for a fixed random output gradient."""
    args = dict(args)
    leaves = {}
    for name in ("weights",) + TABLE_NAMES:
        leaves[name] = args[name] = args[name].detach().clone().requires_grad_(True)
    out = fn(**args)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed)).to(out.dtype)
    out.backward(grad_out)
    return [out.detach()] + [leaves[name].grad for name in leaves]


def _triton(**kwargs):
    return convex_hull_embedding(**kwargs, backend="triton")


def _upcast(args):
    return {k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in args.items()}


def _assert_all_close(got, want, rtol=1e-5, atol=1e-5):
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("hidden", [8, 32, 48])
@pytest.mark.parametrize("slots", [1, 4, 9])
@pytest.mark.parametrize("batch,length", [(1, 1), (1, 7), (3, 1), (3, 7)])
def test_float32_matches_reference(batch, length, slots, hidden):
    args = _inputs(batch, length, slots, hidden, seed=batch * 1000 + length * 100 + slots * 10 + hidden)
    _assert_all_close(_out_and_grads(_triton, args), _out_and_grads(convex_hull_embedding_reference, args))


@pytest.mark.parametrize("batch,length,slots,hidden", [(3, 7, 4, 32), (2, 5, 9, 48)])
def test_default_and_broadcast_ids(batch, length, slots, hidden):
    args = _inputs(batch, length, slots, hidden, custom_ids=False)
    _assert_all_close(_out_and_grads(_triton, args), _out_and_grads(convex_hull_embedding_reference, args))
    broadcast = dict(
        args,
        sub_ids=args["sub_ids"].int(),
        position_ids=torch.arange(length).flip(0)[None],
        token_type_ids=torch.ones(1, length, dtype=torch.int32),
    )
    expanded = dict(
        args,
        position_ids=torch.arange(length).flip(0).expand(batch, length),
        token_type_ids=torch.ones(batch, length, dtype=torch.long),
    )
    _assert_all_close(_out_and_grads(_triton, broadcast), _out_and_grads(convex_hull_embedding_reference, expanded))


@pytest.mark.parametrize("weight_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("batch,length,slots,hidden", [(1, 7, 4, 8), (3, 7, 9, 48), (3, 1, 1, 32)])
def test_bfloat16_matches_float32_reference(batch, length, slots, hidden, weight_dtype):
    args = _inputs(batch, length, slots, hidden, dtype=torch.bfloat16, weight_dtype=weight_dtype, seed=hidden + slots)
    got = _out_and_grads(_triton, args)
    want = _out_and_grads(convex_hull_embedding_reference, _upcast(args))
    assert got[0].dtype == torch.bfloat16 and got[1].dtype == weight_dtype
    for g, w in zip(got, want):
        torch.testing.assert_close(g.float(), w, rtol=1e-2, atol=1e-3 * float(w.abs().max()))


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_all_empty_positions_are_zero(backend):
    args = _inputs(3, 7, 4, 32)
    args["sub_ids"][1, 2:5] = -1
    out, d_weights, *_ = _out_and_grads(lambda **kw: convex_hull_embedding(**kw, backend=backend), args)
    empty = (args["sub_ids"] < 0).all(-1)
    assert empty.sum() == 4
    assert torch.equal(out[empty], torch.zeros_like(out[empty]))
    assert torch.equal(d_weights[args["sub_ids"] < 0], torch.zeros_like(d_weights[args["sub_ids"] < 0]))


def test_non_contiguous_inputs():
    batch, length, slots, hidden = 3, 7, 4, 48
    args = _inputs(batch, length, slots, hidden)
    gen = torch.Generator().manual_seed(5)
    strided = dict(
        args,
        weights=args["weights"].transpose(1, 2).contiguous().transpose(1, 2),  # [B, L, K] with K-stride L
        sub_ids=torch.stack([args["sub_ids"], -args["sub_ids"]], -1)[..., 0],
        word_emb=torch.stack([args["word_emb"], torch.randn(VOCAB, hidden, generator=gen)], -1)[..., 0],
        pos_emb=args["pos_emb"].t().contiguous().t(),
        type_emb=torch.stack([args["type_emb"], args["type_emb"]], 1)[:, 0],
        ln_weight=torch.stack([args["ln_weight"], args["ln_bias"]], -1)[:, 0],
        position_ids=args["position_ids"].t().contiguous().t(),
        token_type_ids=torch.stack([args["token_type_ids"], -args["token_type_ids"]], -1)[..., 0],
    )
    assert not any(strided[k].is_contiguous() for k in strided if k not in ("ln_bias", "eps"))
    assert all(torch.equal(strided[k], args[k]) for k in args if k != "eps")
    _assert_all_close(_out_and_grads(_triton, strided), _out_and_grads(convex_hull_embedding_reference, args))


@pytest.mark.parametrize("trainable", [("weights",), ("word_emb",), ("ln_weight", "pos_emb"), ("type_emb", "ln_bias")])
def test_partial_requires_grad(trainable):
    args = _inputs(2, 5, 4, 32)
    results = []
    for fn in (_triton, convex_hull_embedding_reference):
        leaves = {k: args[k].clone().requires_grad_(True) for k in trainable}
        fn(**dict(args, **leaves)).square().sum().backward()
        results.append([leaves[k].grad for k in trainable])
    _assert_all_close(*results, atol=1e-4)


@pytest.mark.parametrize("batch,length", [(0, 5), (2, 0)])
def test_empty_batch(batch, length):
    got = _out_and_grads(_triton, _inputs(batch, length, 3, 8))
    assert got[0].shape == (batch, length, 8)
    assert all(g.abs().sum() == 0 for g in got[1:])


def _double_inputs(custom_ids):
    args = _inputs(2, 3, 3, 6, dtype=torch.float64, weight_dtype=torch.float64, seed=7, custom_ids=custom_ids)
    args["word_emb"] = args["word_emb"][:5].clone()
    args["sub_ids"] = args["sub_ids"] % 6 - 1  # ids in [-1, 5), each row keeps valid slots
    args["sub_ids"][..., 0] = args["sub_ids"][..., 0].clamp_min(0)
    return args


@pytest.mark.parametrize("fn,custom_ids", [(convex_hull_embedding_reference, True), (_triton, True), (_triton, False)])
def test_gradcheck_float64(fn, custom_ids):
    args = _double_inputs(custom_ids)
    names = ("weights",) + TABLE_NAMES
    leaves = tuple(args[k].clone().requires_grad_(True) for k in names)
    assert torch.autograd.gradcheck(lambda *xs: fn(**dict(args, **dict(zip(names, xs)))), leaves)


def test_auto_backend_on_cpu_is_reference():
    args = _inputs(2, 4, 3, 16)
    assert torch.equal(convex_hull_embedding(**args), convex_hull_embedding_reference(**args))


def test_forcing_an_unavailable_backend_raises():
    with pytest.raises(BackendUnavailable):
        convex_hull_embedding(**_inputs(1, 2, 2, 8), backend="cuda")


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_from_bert_matches_module_forward(backend):
    bert = pytest.importorskip("transformers.models.bert.modeling_bert")
    config = bert.BertConfig(vocab_size=VOCAB, hidden_size=24, max_position_embeddings=16, type_vocab_size=2)
    module = bert.BertEmbeddings(config).eval()
    args = _inputs(2, 6, 4, 24, custom_ids=False)
    args["sub_ids"][-1, -1, 0] = 3  # the module needs a word at every position
    token_type_ids = torch.randint(0, 2, (2, 6))
    one_hot = torch.zeros_like(args["weights"])
    one_hot[..., 0] = 1.0  # all the weight on the original word reproduces the module's output
    with torch.no_grad():
        want = module(input_ids=args["sub_ids"][..., 0], token_type_ids=token_type_ids)
        got = convex_hull_embedding_from_bert(module, one_hot, args["sub_ids"], token_type_ids, backend=backend)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def _bad(**changes):
    return changes


BAD_INPUTS = [
    (_bad(weights=torch.rand(2, 3)), r"weights must be \[B, L, K\]"),
    (_bad(weights=torch.ones(2, 3, 4, dtype=torch.long)), "weights must be floating"),
    (_bad(sub_ids=torch.zeros(2, 3, 5, dtype=torch.long)), "sub_ids shape"),
    (_bad(sub_ids=torch.zeros(2, 3, 4)), "sub_ids must be int32 or int64"),
    (_bad(weights=torch.rand(2, 3, 0), sub_ids=torch.zeros(2, 3, 0, dtype=torch.long)), r"K=0"),
    (_bad(sub_ids=torch.full((2, 3, 4), VOCAB)), rf"sub_ids must lie in \[-1, {VOCAB}\)"),
    (_bad(sub_ids=torch.full((2, 3, 4), -2)), r"sub_ids must lie in .*got range \[-2, -2\]"),
    (_bad(word_emb=torch.randn(VOCAB)), r"word_emb must be a non-empty \[V, D\]"),
    (_bad(word_emb=torch.randint(0, 3, (VOCAB, 8))), "word_emb must be floating"),
    (_bad(pos_emb=torch.randn(POSITIONS, 9)), r"pos_emb must be a non-empty \[rows, 8\]"),
    (_bad(type_emb=torch.randn(0, 8)), "type_emb must be a non-empty"),
    (_bad(ln_weight=torch.randn(9)), r"ln_weight must have shape \(8,\)"),
    (_bad(ln_bias=torch.randn(8, dtype=torch.float64)), "ln_bias dtype"),
    (_bad(eps=-1.0), "eps must be"),
    (_bad(eps=float("nan")), "eps must be"),
    (_bad(position_ids=torch.full((2, 3), POSITIONS)), rf"position_ids must lie in \[0, {POSITIONS}\)"),
    (_bad(position_ids=torch.full((2, 3), -1)), "position_ids must lie in"),
    (_bad(position_ids=torch.zeros(2, 4, dtype=torch.long)), r"position_ids must have shape \(2, 3\)"),
    (_bad(position_ids=torch.zeros(2, 3)), "position_ids must be int32 or int64"),
    (_bad(token_type_ids=torch.full((2, 3), TYPES)), rf"token_type_ids must lie in \[0, {TYPES}\)"),
    (_bad(token_type_ids=torch.zeros(3, 3, dtype=torch.long)), "token_type_ids must have shape"),
    (_bad(pos_emb=torch.randn(2, 8), position_ids=None), r"default position_ids need L=3"),
    (_bad(ln_bias=torch.randn(8, device="meta")), "share one device"),
    (_bad(type_emb=[[0.0] * 8]), "type_emb must be a torch.Tensor"),
]


@pytest.mark.parametrize("changes,message", BAD_INPUTS)
def test_bad_inputs_raise_before_launch(monkeypatch, changes, message):
    def launched(*args, **kwargs):
        raise AssertionError("a backend ran on invalid inputs")

    monkeypatch.setattr(ConvexHullEmbeddingFunction, "apply", launched)
    monkeypatch.setattr(op_module, "convex_hull_embedding_reference", launched)
    args = dict(_inputs(2, 3, 4, 8), **changes)
    with pytest.raises(ValueError, match=message):
        convex_hull_embedding(**args, backend="triton")


# ------------------------------------------------------------------ the word-embedding construction
def _word_inputs(batch, length, slots, hidden, dtype=torch.float32, seed=0):
    """(weights, sub_ids, word_emb) of :func:`_inputs`: empty slots, repeated ids, an all-empty position."""
    args = _inputs(batch, length, slots, hidden, dtype=dtype, weight_dtype=dtype, seed=seed)
    return args["weights"], args["sub_ids"], args["word_emb"]


def _word_out_and_grads(fn, weights, sub_ids, word_emb):
    leaves = [weights.detach().clone().requires_grad_(True), word_emb.detach().clone().requires_grad_(True)]
    out = fn(leaves[0], sub_ids, leaves[1])
    # Values exact in bfloat16: every dtype sees the same output gradient.
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).bfloat16()
    out.backward(grad_out.to(out.dtype))
    return [out.detach(), leaves[0].grad, leaves[1].grad]


def _word_triton(weights, sub_ids, word_emb):
    return convex_hull_word_embedding(weights, sub_ids, word_emb, backend="triton")


@pytest.mark.parametrize("batch,length,slots,hidden", [(1, 1, 1, 8), (3, 7, 4, 32), (2, 5, 9, 48), (0, 5, 3, 8)])
def test_word_embedding_hull_matches_reference(batch, length, slots, hidden):
    inputs = _word_inputs(batch, length, slots, hidden, seed=slots + hidden)
    got = _word_out_and_grads(_word_triton, *inputs)
    _assert_all_close(got, _word_out_and_grads(convex_hull_word_embedding_reference, *inputs))
    if batch:
        weights, sub_ids, word_emb = inputs
        empty = (sub_ids < 0).all(-1)
        assert torch.equal(got[0][empty], torch.zeros_like(got[0][empty]))
        # The definition, written out: the weighted sum of the valid slots' rows of the table.
        row, position = batch - 1, 0
        valid = sub_ids[row, position] >= 0
        expected = (weights[row, position, valid, None] * word_emb[sub_ids[row, position, valid]]).sum(0)
        torch.testing.assert_close(got[0][row, position], expected)


def test_word_embedding_hull_bfloat16_matches_float32_reference():
    weights, sub_ids, word_emb = _word_inputs(3, 7, 9, 48, dtype=torch.bfloat16, seed=3)
    got = _word_out_and_grads(_word_triton, weights, sub_ids, word_emb)
    want = _word_out_and_grads(convex_hull_word_embedding_reference, weights.float(), sub_ids, word_emb.float())
    assert got[0].dtype == torch.bfloat16
    for g, w in zip(got, want):
        torch.testing.assert_close(g.float(), w, rtol=1e-2, atol=1e-3 * float(w.abs().max()))


@pytest.mark.parametrize("fn", [convex_hull_word_embedding_reference, _word_triton])
def test_word_embedding_hull_gradcheck_float64(fn):
    args = _double_inputs(custom_ids=False)
    leaves = (args["weights"].clone().requires_grad_(True), args["word_emb"].clone().requires_grad_(True))
    assert torch.autograd.gradcheck(lambda w, e: fn(w, args["sub_ids"], e), leaves)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"sub_ids": torch.full((2, 3, 4), VOCAB)}, "sub_ids must lie in"),
        ({"word_emb": torch.randn(VOCAB)}, "word_emb must be a non-empty"),
        ({"weights": torch.rand(2, 3, 5)}, "must equal weights shape"),
        ({"sub_ids": torch.zeros(2, 3, 4)}, "sub_ids must be int32 or int64"),
    ],
)
def test_word_embedding_hull_bad_inputs_raise(changes, message):
    weights, sub_ids, word_emb = _word_inputs(2, 3, 4, 8)
    args = dict({"weights": weights, "sub_ids": sub_ids, "word_emb": word_emb}, **changes)
    with pytest.raises(ValueError, match=message):
        convex_hull_word_embedding(**args)


def _word_hull_reference(weights, sub_ids, word_emb, **_tables):
    return convex_hull_word_embedding_reference(weights, sub_ids, word_emb)


@pytest.mark.parametrize("fn", [convex_hull_embedding_reference, _word_hull_reference])
def test_reference_backward_is_bitwise_reproducible_on_threads(fn):
    """The CPU path of ASCC/RIFT training: run to run, two threads must give the same table gradients.
    Gathering rows by advanced indexing accumulates its backward in a thread-dependent order (ids repeat
    across positions), which made whole adversarial trainings differ from run to run."""
    args = _inputs(16, 64, 8, 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first, *again = [_out_and_grads(fn, args) for _ in range(4)]
    finally:
        torch.set_num_threads(threads)
    for other in again:
        assert all(a is b or torch.equal(a, b) for a, b in zip(first, other))  # None: a table the word hull ignores


@pytest.fixture
def deterministic_mode():
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


def test_deterministic_mode_refuses_the_atomic_triton_backward(deterministic_mode):
    with pytest.raises(BackendUnavailable, match="non-deterministic backward.*use backend 'reference'"):
        convex_hull_embedding(**_inputs(1, 2, 2, 8), backend="triton")
    with pytest.raises(BackendUnavailable, match="non-deterministic backward"):
        convex_hull_word_embedding(
            **{k: _inputs(1, 2, 2, 8)[k] for k in ("weights", "sub_ids", "word_emb")}, backend="triton"
        )


def test_warn_only_deterministic_mode_warns_and_runs_the_forced_triton_backward():
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with pytest.warns(UserWarning, match="non-deterministic backward"):
            got = convex_hull_embedding(**_inputs(1, 2, 2, 8), backend="triton")
    finally:
        torch.use_deterministic_algorithms(False)
    torch.testing.assert_close(got, convex_hull_embedding_reference(**_inputs(1, 2, 2, 8)), rtol=1e-5, atol=1e-5)


def test_deterministic_mode_makes_auto_pass_over_the_triton_backward(deterministic_mode, monkeypatch):
    monkeypatch.setattr("rift_fast.ops.dispatch._backend_serves", lambda backend, op, device: True)  # as on a GPU
    cuda = torch.device("cuda")
    for table in (op_module.BACKEND_TABLE, op_module.WORD_BACKEND_TABLE):
        assert table.choose(cuda) == "reference"
        torch.use_deterministic_algorithms(False)
        assert table.choose(cuda) == "triton"
        torch.use_deterministic_algorithms(True)
