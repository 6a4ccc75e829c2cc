"""Class-conditional InfoNCE: the Triton path (interpreter on CPU) against the torch reference.

Tolerances: float32 and float64 compare tightly (rtol 1e-4 / atol 1e-6 on the loss and gradients);
bfloat16/float16 inputs are checked against the reference on the same values upcast to float32, with
rtol 2e-2 and atol 2e-2 * max|grad| (the kernels accumulate in float32; the loss and gradients are
rounded once to the input dtype).
"""

import importlib
import math

import pytest
import torch

from rift_fast.ops.class_conditional_infonce import (
    ClassConditionalInfoNCEFunction,
    class_conditional_infonce,
    class_conditional_infonce_reference,
)

op = importlib.import_module("rift_fast.ops.class_conditional_infonce")  # the module, not the function

LABEL_VALUES = (0, 5, 2)  # gaps between label values on purpose


def _inputs(batch, features, num_classes, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, features, generator=gen).to(dtype)
    teacher = torch.randn(batch, features, generator=gen).to(dtype)
    picks = torch.randint(0, num_classes, (batch,), generator=gen)
    labels = torch.tensor(LABEL_VALUES[:num_classes])[picks]
    return student, teacher, labels


def _loss_and_grads(fn, student, teacher, labels, temperature=0.2):
    student = student.detach().clone().requires_grad_(True)
    teacher = teacher.detach().clone().requires_grad_(True)
    loss = fn(student, teacher, labels, temperature)
    loss.backward()
    return loss.detach(), student.grad, teacher.grad


def _triton(student, teacher, labels, temperature=0.2):
    return class_conditional_infonce(student, teacher, labels, temperature, backend="triton")


def _assert_matches(student, teacher, labels, temperature=0.2, rtol=1e-4, atol=1e-6):
    got = _loss_and_grads(_triton, student, teacher, labels, temperature)
    want = _loss_and_grads(class_conditional_infonce_reference, student, teacher, labels, temperature)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("num_classes", [1, 2, 3])
@pytest.mark.parametrize("features", [4, 64, 100, 256])
@pytest.mark.parametrize("batch", [1, 2, 5, 16, 33])
def test_float32_matches_reference(batch, features, num_classes):
    _assert_matches(*_inputs(batch, features, num_classes, seed=batch * 1000 + features + num_classes))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("batch,features,num_classes", [(5, 64, 2), (33, 100, 3), (16, 256, 1)])
def test_low_precision_matches_float32_reference(dtype, batch, features, num_classes):
    student, teacher, labels = _inputs(batch, features, num_classes, dtype=dtype)
    loss, d_student, d_teacher = _loss_and_grads(_triton, student, teacher, labels)
    assert loss.dtype == dtype and d_student.dtype == dtype and d_teacher.dtype == dtype
    want = _loss_and_grads(class_conditional_infonce_reference, student.float(), teacher.float(), labels)
    for g, w in zip((loss, d_student, d_teacher), want):
        torch.testing.assert_close(g.float(), w, rtol=2e-2, atol=2e-2 * w.abs().max().item())


@pytest.mark.parametrize(
    "labels",
    [
        [3, 1, 1, 0, 0, 0, 9],  # classes 3 and 9 have one member each
        [4, 2, 7, 0],  # every class is a singleton: loss 0, zero gradients
        [1] * 30 + [0] * 3,  # unbalanced
        [0, 1] * 20 + [2] * 3,  # interleaved, three blocks of 32 rows
    ],
)
def test_class_layouts(labels):
    labels = torch.tensor(labels)
    student, teacher, _ = _inputs(len(labels), 48, 1, seed=len(labels))
    _assert_matches(student, teacher, labels)


def test_all_singletons_give_exact_zero():
    student, teacher, _ = _inputs(4, 8, 1)
    loss, d_student, d_teacher = _loss_and_grads(_triton, student, teacher, torch.tensor([4, 2, 7, 0]))
    assert loss.item() == 0.0
    assert d_student.abs().max().item() == 0.0 and d_teacher.abs().max().item() == 0.0


def test_non_contiguous_inputs_and_int32_labels():
    gen = torch.Generator().manual_seed(3)
    student = torch.randn(17, 2 * 40, generator=gen)[:, ::2]  # column stride 2
    teacher = torch.randn(40, 17, generator=gen).t()  # transposed
    labels = torch.randint(0, 3, (34,), generator=gen, dtype=torch.int32)[::2]
    assert not (student.is_contiguous() or teacher.is_contiguous() or labels.is_contiguous())
    _assert_matches(student, teacher, labels)


def test_zero_feature_row_and_small_temperature():
    student, teacher, labels = _inputs(9, 32, 2, dtype=torch.float64)
    student[2] = 0.0  # below the normalisation eps: gradient is g / eps, as in F.normalize
    _assert_matches(student, teacher, labels, temperature=0.2, rtol=1e-6, atol=1e-9)
    _assert_matches(*_inputs(9, 32, 2, dtype=torch.float64), temperature=0.01, rtol=1e-6, atol=1e-9)


def test_only_teacher_requires_grad():
    student, teacher, labels = _inputs(10, 16, 2)
    teacher = teacher.requires_grad_(True)
    _triton(student, teacher, labels).backward()
    ref_teacher = teacher.detach().clone().requires_grad_(True)
    class_conditional_infonce_reference(student, ref_teacher, labels).backward()
    torch.testing.assert_close(teacher.grad, ref_teacher.grad, rtol=1e-4, atol=1e-6)


def test_gradcheck_float64():
    student, teacher, labels = _inputs(7, 5, 2, dtype=torch.float64, seed=11)
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda s, t: class_conditional_infonce_reference(s, t, labels, 0.3), (student, teacher)
    )
    assert torch.autograd.gradcheck(
        lambda s, t: ClassConditionalInfoNCEFunction.apply(s, t, labels, 0.3), (student, teacher)
    )


@pytest.mark.parametrize("labels,num_present", [([0, 0, 1, 1], 2), ([0, 0, 1, 7], 3)])
@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_hand_computed_example(labels, num_present, backend):
    # Rows normalise to s = (1,0), (0,1), (1,0), (0,1) and t = (1,0), (0,1), (0.6,0.8), (1,0); tau = 0.5.
    student = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 2.0]])
    teacher = torch.tensor([[3.0, 0.0], [0.0, 1.0], [3.0, 4.0], [5.0, 0.0]])
    # Class {0, 1}: f = [[2, 0], [0, 2]]; each column loses -log(e^2 / (e^2 + e^0)).
    class_01 = math.log(1 + math.exp(-2))
    if num_present == 2:
        # Class {2, 3}: f[:, 2] = (1.2, 1.6), f[:, 3] = (2, 0) (rows i = 2, 3).
        class_23 = (math.log(1 + math.exp(0.4)) + math.log(1 + math.exp(2))) / 2
        expected = (class_01 + class_23) / 2
    else:
        expected = (class_01 + 0.0 + 0.0) / 3  # two singleton classes count with loss 0
    loss = class_conditional_infonce(student, teacher, torch.tensor(labels), 0.5, backend=backend)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_auto_backend_on_cpu_is_reference():
    student, teacher, labels = _inputs(6, 8, 2)
    torch.testing.assert_close(
        class_conditional_infonce(student, teacher, labels),
        class_conditional_infonce_reference(student, teacher, labels),
    )


def _bad_cases():
    s, t, y = _inputs(4, 8, 2)
    return [
        ((s, t[:, :4], y, 0.2), "teacher"),
        ((s[0], t[0], y, 0.2), "student"),
        ((s[:0], t[:0], y[:0], 0.2), "B=0"),
        ((s, t, y[:3], 0.2), "labels"),
        ((s, t, y.float(), 0.2), "labels"),
        ((s, t, y > 0, 0.2), "labels"),
        ((s, t, y - 1, 0.2), "labels"),
        ((s, t.double(), y, 0.2), "teacher"),
        ((s.int(), t.int(), y, 0.2), "student"),
        ((s, t, y, 0.0), "temperature"),
        ((s, t, y, -1.0), "temperature"),
        ((s, t, y, float("nan")), "temperature"),
        ((s, t, y, float("inf")), "temperature"),
        ((s, t, y, "0.2"), "temperature"),
        ((s, t, y.to("meta"), 0.2), "device"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_cases())))
def test_bad_inputs_raise_before_dispatch(case, monkeypatch):
    def no_dispatch(*args, **kwargs):
        raise AssertionError("dispatched before validating")

    monkeypatch.setattr(op.BACKEND_TABLE, "choose", no_dispatch)
    args, word = _bad_cases()[case]
    with pytest.raises(ValueError, match=word):
        class_conditional_infonce(*args, backend="triton")
