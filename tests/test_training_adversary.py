"""The ASCC adversary and the classifier's embedding-output path, on tiny random encoders (no downloads)."""

import pytest
import torch
import torch.nn.functional as F
from tiny_models import HIDDEN, ROBERTA_PAD, VOCAB, tiny_classifier

from rift_fast.training.adversary import (
    INVALID_LOGIT,
    ascc_adversary,
    ascc_robust_accuracy,
    hull_embedding,
    restrict_substitutions,
    substitution_ids,
)

LENGTH, BATCH, SYNONYMS = 12, 4, 4


def tiny_batch(pad_id=0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (BATCH, LENGTH), generator=gen)
    mask = torch.ones_like(ids)
    for row, length in enumerate((LENGTH, 9, 7, 10)):
        ids[row, length:] = pad_id
        mask[row, length:] = 0
    table = torch.randint(5, VOCAB, (VOCAB, SYNONYMS), generator=gen)
    table[torch.rand(VOCAB, SYNONYMS, generator=gen) < 0.3] = -1
    table[:5] = -1  # special tokens have no synonyms
    sub_ids = substitution_ids(ids, table, mask)
    labels = torch.tensor([0, 1, 0, 1])
    return ids, mask, sub_ids, labels


def test_restrict_substitutions_keeps_only_slot_zero_on_padding_and_special_tokens():
    sub = torch.arange(2 * 3 * 4).view(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    special = torch.tensor([[1, 0, 0], [0, 0, 1]])
    out = restrict_substitutions(sub, mask, special)
    frozen = (mask == 0) | special.bool()
    assert torch.equal(out[..., 0], sub[..., 0])
    assert bool((out[..., 1:][frozen] == -1).all())
    assert torch.equal(out[..., 1:][~frozen], sub[..., 1:][~frozen])


@pytest.mark.parametrize("kind,pooler", [("bert", True), ("bert", False), ("roberta", True)])
def test_embedding_output_path_reproduces_clean_logits(kind, pooler):
    model = tiny_classifier(kind, pooler).eval()
    ids, mask, sub_ids, _ = tiny_batch(pad_id=ROBERTA_PAD if kind == "roberta" else 0)
    with torch.no_grad():
        clean, pooled = model(ids, mask)
        via_output, pooled_output = model(attention_mask=mask, inputs_embeds=model.embedding_output(ids))
        slot_zero = F.one_hot(torch.zeros_like(ids), sub_ids.shape[-1]).float()
        hull = hull_embedding(model, slot_zero, sub_ids)
        via_hull, _ = model(attention_mask=mask, inputs_embeds=hull)
    torch.testing.assert_close(via_output, clean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pooled_output, pooled, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(via_hull, clean, rtol=1e-5, atol=1e-5)


def test_embedding_output_path_applies_dropout_in_train_mode():
    model = tiny_classifier(dropout=0.5).train()
    ids, mask, _, _ = tiny_batch()
    embeds = model.embedding_output(ids).detach()
    torch.manual_seed(1)
    first, _ = model(attention_mask=mask, inputs_embeds=embeds)
    torch.manual_seed(2)
    second, _ = model(attention_mask=mask, inputs_embeds=embeds)
    assert not torch.allclose(first, second)
    assert not model.embeddings._forward_hooks  # the temporary hook is gone


def test_weights_are_convex_over_valid_slots_and_zero_elsewhere():
    model = tiny_classifier().train()
    ids, mask, sub_ids, _ = tiny_batch()
    result = ascc_adversary(model, ids, mask, sub_ids, steps=3)
    valid = sub_ids >= 0
    assert result.weights.shape == sub_ids.shape and not result.weights.requires_grad
    torch.testing.assert_close(result.weights.sum(-1), torch.ones(ids.shape))
    assert float(result.weights[~valid].max()) < 1e-30
    single = valid.sum(-1) == 1  # padding and words without synonyms
    assert bool(single[mask == 0].all())
    torch.testing.assert_close(result.weights[single][:, 0], torch.ones(int(single.sum())))
    assert result.embeddings.shape == (BATCH, LENGTH, HIDDEN)
    torch.testing.assert_close(result.embeddings, hull_embedding(model, result.weights, sub_ids))


def test_initial_logits_are_the_kaiming_draw_of_the_original_shape():
    model = tiny_classifier()
    ids, mask, sub_ids, _ = tiny_batch()
    result = ascc_adversary(model, ids, mask, sub_ids, steps=0, generator=torch.Generator().manual_seed(5))
    z = torch.empty(BATCH, LENGTH, sub_ids.shape[-1], 1)
    torch.nn.init.kaiming_normal_(z, generator=torch.Generator().manual_seed(5))
    expected = F.softmax(z.squeeze(-1).masked_fill(sub_ids < 0, INVALID_LOGIT), dim=-1)
    torch.testing.assert_close(result.weights, expected)


@pytest.mark.parametrize("start_training", [True, False])
def test_kl_objective_increases_and_mode_and_gradients_are_left_alone(start_training):
    model = tiny_classifier(dropout=0.1, seed=3)
    with torch.no_grad():  # larger logits so that the KL has room to move
        model.classifier[-1].weight.mul_(20)
    model.train(start_training)
    ids, mask, sub_ids, _ = tiny_batch(seed=1)
    result = ascc_adversary(model, ids, mask, sub_ids, steps=8, generator=torch.Generator().manual_seed(0))
    assert model.training is start_training
    assert all(p.grad is None for p in model.parameters())
    objective = result.objective
    assert objective.shape == (8,) and result.entropy.shape == (8,)
    assert float(objective[-1]) > 2 * float(objective[0]) > 0
    # The returned hull is at least as adversarial as the start.
    model.eval()
    with torch.no_grad():
        clean, _ = model(ids, mask)
        adv, _ = model(attention_mask=mask, inputs_embeds=result.embeddings)
    final_kl = F.kl_div(F.log_softmax(adv, -1), F.softmax(clean, -1), reduction="sum")
    assert float(final_kl) > float(objective[0])


def test_ce_mode_and_robust_accuracy():
    model = tiny_classifier(seed=4)
    with torch.no_grad():
        model.classifier[-1].weight.mul_(20)
    model.train()
    ids, mask, sub_ids, labels = tiny_batch(seed=2)
    with pytest.raises(ValueError, match="labels"):
        ascc_adversary(model, ids, mask, sub_ids, mode="ce")
    result = ascc_adversary(model, ids, mask, sub_ids, labels, mode="ce", steps=5)
    assert float(result.objective[-1]) > float(result.objective[0])
    evaluation = ascc_robust_accuracy(model, ids, mask, sub_ids, labels, steps=5)
    assert model.training
    assert evaluation.clean_correct.dtype == torch.bool and evaluation.clean_correct.shape == (BATCH,)
    assert bool((evaluation.robust_correct <= evaluation.clean_correct).all())
    model.eval()
    with torch.no_grad():
        expected = model(ids, mask)[0].argmax(-1) == labels
    assert torch.equal(evaluation.clean_correct, expected)
    assert 0.0 <= evaluation.robust_accuracy <= evaluation.clean_accuracy <= 1.0
