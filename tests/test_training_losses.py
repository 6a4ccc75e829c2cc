"""Each method's loss on a tiny random BERT against the RIFT paper's formulas written out in plain torch.

Dropout is 0 in these models, so the same inputs give the same logits in every forward and the
method's loss can be recomputed term by term here.
"""

import pytest
import torch
import torch.nn.functional as F
from tiny_models import HIDDEN, VOCAB, tiny_classifier

from rift_fast.training.adversary import ascc_adversary, substitution_ids
from rift_fast.training.defenses import FreeLBSettings, ascc_loss, freelb_loss, rift_loss, standard_loss
from rift_fast.training.teacher import FrozenTeacher, ProjectionHeads

LENGTH = 10
LABELS = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])  # class-balanced, 3 per class
CLASSES = 3


def tiny_batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    batch = len(LABELS)
    ids = torch.randint(5, VOCAB, (batch, LENGTH), generator=gen)
    mask = torch.ones_like(ids)
    for row in range(batch):
        cut = LENGTH - row % 4
        ids[row, cut:] = 0
        mask[row, cut:] = 0
    table = torch.randint(5, VOCAB, (VOCAB, 3), generator=gen)
    table[:5] = -1
    return ids, mask, substitution_ids(ids, table, mask)


def grads(loss, params):
    return torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)


def hand_ce(logits, labels):
    return -F.log_softmax(logits, -1)[torch.arange(len(labels)), labels].mean()


def hand_kl(logits_clean, logits_adv):
    """KL(p(x) || p(x_adv)), batch mean, as RIFT's objective writes it (nothing detached)."""
    p = F.softmax(logits_clean, -1)
    return (p * (F.log_softmax(logits_clean, -1) - F.log_softmax(logits_adv, -1))).sum(-1).mean()


def hand_infonce(student, teacher, labels, temperature=0.2):
    per_class = []
    for c in labels.unique():
        idx = (labels == c).nonzero().squeeze(1)
        s = student[idx] / student[idx].norm(dim=1, keepdim=True)
        t = teacher[idx] / teacher[idx].norm(dim=1, keepdim=True)
        f = s @ t.T / temperature  # f[i, j]: student i, teacher j
        log_prob = f - torch.logsumexp(f, dim=0, keepdim=True)  # softmax over the student index
        per_class.append(-log_prob.diagonal().mean())
    return torch.stack(per_class).mean()


def assert_grads_close(actual, expected):
    for a, e in zip(actual, expected):
        if e is None:
            assert a is None or float(a.abs().max()) == 0.0
        else:
            torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-6)


def test_standard_loss_is_clean_cross_entropy():
    model = tiny_classifier(num_classes=CLASSES).train()
    ids, mask, _ = tiny_batch()
    terms = standard_loss(model, ids, mask, LABELS)
    logits, _ = model(ids, mask)
    torch.testing.assert_close(terms["loss"], hand_ce(logits, LABELS))
    assert terms["ce"] is terms["loss"]


def test_ascc_loss_matches_the_spec_and_the_kl_pulls_the_clean_logits():
    model = tiny_classifier(num_classes=CLASSES).train()
    ids, mask, sub_ids = tiny_batch()
    adversary = ascc_adversary(model, ids, mask, sub_ids, steps=3)
    terms = ascc_loss(model, ids, mask, LABELS, sub_ids, kl_weight=10.0, adversary=adversary)

    logits_clean, _ = model(ids, mask)
    logits_adv, _ = model(attention_mask=mask, inputs_embeds=adversary.embeddings)
    ce, kl = hand_ce(logits_clean, LABELS), hand_kl(logits_clean, logits_adv)
    torch.testing.assert_close(terms["ce"], ce)
    torch.testing.assert_close(terms["kl"], kl)
    torch.testing.assert_close(terms["loss"], ce + 10.0 * kl)
    assert float(kl.detach()) > 0

    params = list(model.parameters())
    assert_grads_close(grads(terms["loss"], params), grads(ce + 10.0 * kl, params))
    # The KL's gradient reaches the clean logits: detaching them gives different parameter gradients.
    detached = hand_ce(logits_clean, LABELS) + 10.0 * hand_kl(logits_clean.detach(), logits_adv)
    kl_grad_clean = torch.autograd.grad(kl, logits_clean, retain_graph=True)[0]
    assert float(kl_grad_clean.abs().max()) > 0
    gap = [
        (a - b).abs().max()
        for a, b in zip(grads(ce + 10.0 * kl, params), grads(detached, params))
        if a is not None and b is not None
    ]
    assert float(max(gap)) > 1e-6
    # The hull embedding keeps its graph into the embedding tables.
    word = model.embeddings.word_embeddings.weight
    (g_word,) = torch.autograd.grad(terms["kl"], [word])
    assert float(g_word.abs().max()) > 0


def test_ascc_loss_runs_its_own_adversary_in_eval_mode():
    model = tiny_classifier(num_classes=CLASSES, dropout=0.1).train()
    ids, mask, sub_ids = tiny_batch()
    terms = ascc_loss(model, ids, mask, LABELS, sub_ids, adversary_settings={"steps": 2})
    assert set(terms) == {"loss", "ce", "kl"} and model.training
    terms["loss"].backward()
    assert model.encoder.embeddings.word_embeddings.weight.grad is not None


def test_rift_loss_matches_the_spec():
    model = tiny_classifier(num_classes=CLASSES).train()
    teacher = FrozenTeacher(model)
    heads = ProjectionHeads(HIDDEN, 3)
    ids, mask, sub_ids = tiny_batch()
    with torch.no_grad():  # fine-tuning has moved the student away from the teacher
        for p in model.encoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    adversary = ascc_adversary(model, ids, mask, sub_ids, steps=3)
    terms = rift_loss(
        model, teacher, heads, ids, mask, LABELS, sub_ids, kl_weight=5.0, mi_weight=0.7, adversary=adversary
    )

    logits_clean, _ = model(ids, mask)
    logits_adv, pooled_adv = model(attention_mask=mask, inputs_embeds=adversary.embeddings)
    with torch.no_grad():
        pooled_teacher = teacher.encoder(input_ids=ids, attention_mask=mask).pooler_output
    student = torch.stack([heads.student[int(y)](pooled_adv[i]) for i, y in enumerate(LABELS)])
    target = torch.stack([heads.teacher[int(y)](pooled_teacher[i]) for i, y in enumerate(LABELS)])
    ce, kl = hand_ce(logits_clean, LABELS), hand_kl(logits_clean, logits_adv)
    nce = hand_infonce(student, target, LABELS)
    total = ce + 5.0 * kl + 0.7 * nce
    for name, value in (("ce", ce), ("kl", kl), ("nce", nce), ("loss", total)):
        torch.testing.assert_close(terms[name], value, rtol=1e-5, atol=1e-6)

    params = list(model.parameters()) + list(heads.parameters())
    assert_grads_close(grads(terms["loss"], params), grads(total, params))
    teacher_head_grads = grads(terms["nce"], list(heads.teacher.parameters()))
    assert all(g is not None and float(g.abs().max()) > 0 for g in teacher_head_grads)  # trainable
    assert not any(p.requires_grad for p in teacher.parameters())  # frozen encoder


def test_teacher_is_a_frozen_eval_copy_of_the_pretrained_encoder():
    model = tiny_classifier(num_classes=CLASSES, dropout=0.3).train()
    ids, mask, _ = tiny_batch()
    teacher = FrozenTeacher(model)
    assert not teacher.training and not teacher.encoder.training
    teacher.train()
    assert not teacher.encoder.training  # stays in eval mode
    model.eval()
    before = model.pooled(ids, mask).detach()
    torch.testing.assert_close(teacher.pooled(ids, mask), before)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    torch.testing.assert_close(teacher.pooled(ids, mask), before)  # unaffected by fine-tuning
    assert not teacher.pooled(ids, mask).requires_grad

    dropping = FrozenTeacher(model, keep_dropout=True)
    dropping.train()
    assert dropping.encoder.training
    torch.manual_seed(0)
    first = dropping.pooled(ids, mask)
    second = dropping.pooled(ids, mask)
    assert not torch.allclose(first, second)
    dropping.eval()
    assert not dropping.encoder.training


def test_projection_heads_apply_each_samples_class_head():
    heads = ProjectionHeads(HIDDEN, 3)
    features = torch.randn(len(LABELS), HIDDEN)
    for side, bank in (("student", heads.student), ("teacher", heads.teacher)):
        out = heads.project(features, LABELS, side)
        assert out.shape == (len(LABELS), 256)
        expected = torch.stack([bank[int(y)](features[i]) for i, y in enumerate(LABELS)])
        torch.testing.assert_close(out, expected)
    assert [m.out_features for m in heads.student[0] if isinstance(m, torch.nn.Linear)] == [512, 256]
    with pytest.raises(ValueError, match="side"):
        heads.project(features, LABELS, "both")


def test_head_parameters_are_the_classifier():
    model = tiny_classifier(num_classes=CLASSES)
    head_ids = {id(p) for p in model.head_parameters()}
    assert head_ids == {id(p) for p in model.classifier.parameters()}
    assert [m.out_features for m in model.classifier if isinstance(m, torch.nn.Linear)] == [256, 3]
    assert not head_ids & {id(p) for p in model.encoder_parameters()}


def _freelb_by_hand(model, ids, mask, labels, settings):
    """FreeLB with a zero start, written out: returns (mean loss, parameter gradients)."""
    params = list(model.parameters())
    total, accumulated = 0.0, [torch.zeros_like(p) for p in params]
    delta = torch.zeros(ids.shape + (HIDDEN,))
    for _ in range(settings.adv_steps):
        delta.requires_grad_(True)
        logits, _ = model(ids, mask, word_embeds=model.embeddings.word_embeddings(ids) + delta)
        loss = hand_ce(logits, labels) / settings.adv_steps
        g = torch.autograd.grad(loss, params + [delta], allow_unused=True)
        accumulated = [a + (x if x is not None else 0) for a, x in zip(accumulated, g[:-1])]
        total += float(loss.detach())
        g_delta = g[-1]
        norm = g_delta.reshape(len(ids), -1).norm(dim=1).clamp_min(1e-8).view(-1, 1, 1)
        delta = (delta + settings.adv_lr * g_delta / norm).detach()
        if settings.adv_max_norm > 0:
            n = delta.reshape(len(ids), -1).norm(dim=1).view(-1, 1, 1)
            delta = torch.where(n > settings.adv_max_norm, delta * settings.adv_max_norm / n, delta)
    return total, accumulated


@pytest.mark.parametrize("max_norm", [0.0, 0.05])
def test_freelb_accumulates_the_mean_loss_over_ascent_steps(max_norm):
    settings = FreeLBSettings(adv_steps=3, adv_lr=0.1, adv_init_mag=0.0, adv_max_norm=max_norm)
    model = tiny_classifier(num_classes=CLASSES).train()
    ids, mask, _ = tiny_batch()
    expected_loss, expected_grads = _freelb_by_hand(model, ids, mask, LABELS, settings)
    model.zero_grad()
    terms = freelb_loss(model, ids, mask, LABELS, settings=settings)
    assert abs(float(terms["loss"]) - expected_loss) < 1e-5
    assert_grads_close([p.grad for p in model.parameters()], expected_grads)
    if max_norm:
        assert float(terms["delta_norm"]) <= max_norm + 1e-6


def test_freelb_one_step_without_noise_is_standard_training():
    model = tiny_classifier(num_classes=CLASSES).train()
    ids, mask, _ = tiny_batch()
    standard = standard_loss(model, ids, mask, LABELS)["loss"]
    expected = grads(standard, list(model.parameters()))
    model.zero_grad()
    terms = freelb_loss(model, ids, mask, LABELS, settings=FreeLBSettings(adv_steps=1, adv_init_mag=0.0))
    torch.testing.assert_close(terms["loss"], standard.detach())
    assert_grads_close([p.grad for p in model.parameters()], expected)


def test_freelb_defaults_and_random_start():
    defaults = FreeLBSettings()
    assert (defaults.adv_steps, defaults.adv_lr, defaults.adv_init_mag, defaults.adv_max_norm) == (5, 0.03, 0.05, 0.0)
    assert (defaults.norm_type, defaults.perturb) == ("l2", "word")
    with pytest.raises(ValueError):
        FreeLBSettings(adv_steps=0)
    model = tiny_classifier(num_classes=CLASSES).train()
    ids, mask, _ = tiny_batch()
    calls = []
    terms = freelb_loss(
        model,
        ids,
        mask,
        LABELS,
        settings=FreeLBSettings(adv_steps=2, perturb="output"),
        backward=lambda loss: (calls.append(float(loss.detach())), loss.backward()),
    )
    assert len(calls) == 2 and abs(sum(calls) - float(terms["loss"])) < 1e-6
    assert float(terms["delta_norm"]) > 0


def test_rift_loss_through_the_fused_triton_kernels_matches_the_reference():
    pytest.importorskip("triton")
    if not torch.cuda.is_available() and __import__("os").environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton needs a GPU or TRITON_INTERPRET=1")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = tiny_classifier(num_classes=CLASSES).to(device).train()
    teacher = FrozenTeacher(model)
    heads = ProjectionHeads(HIDDEN, 3).to(device)
    ids, mask, sub_ids = (t.to(device) for t in tiny_batch())
    labels = LABELS.to(device)
    outcomes = []
    for backend in ("triton", "reference"):
        model.zero_grad()
        heads.zero_grad()
        generator = torch.Generator(device=device).manual_seed(0)
        adversary = ascc_adversary(model, ids, mask, sub_ids, steps=2, generator=generator, backend=backend)
        terms = rift_loss(model, teacher, heads, ids, mask, labels, sub_ids, adversary=adversary, backend=backend)
        terms["loss"].backward()
        outcomes.append(
            (
                adversary.weights,
                {k: v.detach() for k, v in terms.items()},
                [p.grad.clone() for p in list(model.parameters()) + list(heads.parameters())],
            )
        )
    (w_t, terms_t, grads_t), (w_r, terms_r, grads_r) = outcomes
    torch.testing.assert_close(w_t, w_r, rtol=1e-4, atol=1e-5)
    for name in terms_r:
        torch.testing.assert_close(terms_t[name], terms_r[name], rtol=1e-4, atol=1e-6)
    for g_t, g_r in zip(grads_t, grads_r):
        torch.testing.assert_close(g_t, g_r, rtol=1e-3, atol=1e-5)


def _close_logits_under_bf16(seed):
    """Clean and adversarial logits of nearby inputs from a linear layer under CPU bf16 autocast."""
    torch.manual_seed(seed)
    layer = torch.nn.Linear(16, 2)
    clean = torch.randn(32, 16) * 3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return layer(clean), layer(clean + 1e-2 * torch.randn(32, 16))


@pytest.mark.parametrize("reduction", ["batchmean", "sum"])
def test_kl_is_float32_and_never_negative_under_bf16_autocast(reduction):
    from rift_fast.models.classifier import logits_kl

    for seed in range(40):
        logits_clean, logits_adv = _close_logits_under_bf16(seed)
        assert logits_clean.dtype == torch.bfloat16  # the case that gave a negative KL in a bf16 softmax
        with torch.autocast("cpu", dtype=torch.bfloat16):
            kl = logits_kl(logits_clean, logits_adv, reduction=reduction)
        assert kl.dtype == torch.float32 and float(kl.detach()) >= 0
        reference = F.kl_div(
            F.log_softmax(logits_adv.double(), -1), F.softmax(logits_clean.double(), -1), reduction=reduction
        )
        assert float(kl.detach()) == pytest.approx(float(reference.detach()), rel=1e-2, abs=1e-8)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert float(logits_kl(logits_clean, logits_clean, reduction=reduction).detach()) == 0.0


def test_ascc_and_rift_terms_are_float32_and_the_kl_non_negative_under_bf16_autocast():
    model = tiny_classifier(num_classes=CLASSES)
    ids, mask, sub_ids = tiny_batch()
    labels = LABELS
    teacher, heads = FrozenTeacher(model), ProjectionHeads(model.hidden_size, model.num_classes)
    for seed in range(3):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ascc = ascc_loss(model, ids, mask, labels, sub_ids, generator=torch.Generator().manual_seed(seed))
            rift = rift_loss(
                model, teacher, heads, ids, mask, labels, sub_ids, generator=torch.Generator().manual_seed(seed)
            )
            adversary = ascc_adversary(model, ids, mask, sub_ids, mode="kl", steps=3)
        for terms in (ascc, rift):
            assert all(value.dtype == torch.float32 for value in terms.values())
            assert float(terms["kl"].detach()) >= 0
        assert adversary.objective.dtype == torch.float32 and bool((adversary.objective >= 0).all())
        assert adversary.weights.dtype == torch.float32
