"""InfoBERT's two regularisers on a tiny BERT against the formulas of Wang et al. (ICLR 2021) written out
in plain torch the way the authors' code computes them (tiled critic, per-example ranking, CLUB with a
random partner), plus one Trainer epoch and a checkpoint that loads."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from test_training_loop import _examples, _table
from test_training_losses import CLASSES, LABELS, assert_grads_close, tiny_batch
from tiny_models import HIDDEN, tiny_classifier

from rift_fast.models import load_trained_classifier
from rift_fast.training.defenses import InfoBertSettings, infobert_loss
from rift_fast.training.defenses.infobert import (
    anchored_positions,
    infonce_critic,
    infonce_lower_bound,
    information_bottleneck,
)
from rift_fast.training.loop import Trainer, TrainSettings, encode_examples


def hand_infonce(critic, x, y):
    """MI_estimators.InfoNCE.forward as the authors wrote it: tiled pairs, T1[i, j] = F(x_j, y_i)."""
    n = len(y)
    x_tile = x.unsqueeze(0).repeat((n, 1, 1))
    y_tile = y.unsqueeze(1).repeat((1, n, 1))
    t0 = critic(torch.cat([x, y], dim=-1))
    t1 = critic(torch.cat([x_tile, y_tile], dim=-1))
    return t0.mean() - (t1.logsumexp(dim=1).mean() - math.log(n))


def hand_club(features, mask, partner_seed):
    """CLUBv2.mi_est_sample over the real tokens, concatenated example by example (left or right padding)."""
    tokens = torch.cat([features[b][mask[b].bool()] for b in range(len(features))])
    partner = torch.randint(len(tokens), (len(tokens),), generator=torch.Generator().manual_seed(partner_seed))
    negative = -((tokens - tokens[partner]) ** 2) / 2.0
    return (torch.zeros_like(tokens).sum(-1) - negative.sum(-1)).mean()


def hand_ranking(grad, length, low, high):
    """feature_ranking of the authors' trainer on one example's first ``length`` rows."""
    norm = torch.norm(grad[:length], dim=1)
    _, ind = torch.sort(norm)
    return [ind[i].item() for i in range(math.ceil(length * low), math.ceil(length * high))]


def test_infonce_lower_bound_matches_the_tiled_critic():
    torch.manual_seed(0)
    critic = infonce_critic(HIDDEN)
    x, y = torch.randn(7, HIDDEN), torch.randn(7, HIDDEN)
    torch.testing.assert_close(infonce_lower_bound(critic, x, y), hand_infonce(critic, x, y))


def test_information_bottleneck_is_the_club_bound_over_real_tokens():
    features = torch.randn(3, 5, HIDDEN)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])  # right and left padding
    ours = information_bottleneck(features, mask, torch.Generator().manual_seed(4))
    torch.testing.assert_close(ours, hand_club(features, mask, 4))


def test_anchored_positions_are_the_authors_ranking_quantiles():
    grad = torch.randn(4, 11, HIDDEN)
    lengths = [11, 7, 3, 1]
    mask = torch.tensor([[1] * n + [0] * (11 - n) for n in lengths])
    for low, high in [(0.5, 0.9), (0.0, 1.0), (0.2, 0.3)]:
        positions = anchored_positions(grad, mask, low, high)
        assert [p.tolist() for p in positions] == [hand_ranking(g, n, low, high) for g, n in zip(grad, lengths)]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"infobert_anchor_low": 0.9, "infobert_anchor_high": 0.5}, "infobert_anchor_low"),
        ({"infobert_anchor_high": 1.5}, "infobert_anchor_high"),
        ({"infobert_alpha": -1.0}, "infobert_alpha"),
        ({"infobert_adv_steps": 0}, "adv_steps"),
    ],
)
def test_settings_outside_their_domain_are_refused(options, named):
    with pytest.raises(ValueError, match=named):
        InfoBertSettings(**options)


def test_published_defaults():
    s = InfoBertSettings()
    assert (s.infobert_alpha, s.infobert_beta, s.infobert_anchor_low, s.infobert_anchor_high) == (5e-3, 5e-3, 0.5, 0.9)
    assert (s.infobert_adv_steps, s.infobert_adv_lr, s.infobert_adv_init_mag) == (3, 4e-2, 8e-2)


def _infobert_by_hand(model, critic, ids, mask, labels, settings, seed):
    """Every ascent step of InfoBERT written out: (CE + beta CLUB + AF) / steps accumulated, delta by the
    normalised gradient of CE + IB; the generator draws the CLUB partners, then the shuffle of the pairs."""
    params = list(model.parameters()) + list(critic.parameters())
    generator = torch.Generator().manual_seed(seed)
    steps = settings.infobert_adv_steps
    total, accumulated = 0.0, [torch.zeros_like(p) for p in params]
    delta = torch.zeros(ids.shape + (HIDDEN,))
    for _ in range(steps):
        delta.requires_grad_(True)
        out = model.encoder(
            inputs_embeds=model.encoder.embeddings.word_embeddings(ids) + delta,
            attention_mask=mask,
            output_hidden_states=True,
        )
        logits = model.classifier(out.pooler_output)
        tokens, sentence = out.hidden_states[0], out.last_hidden_state[:, 0]
        real = torch.cat([tokens[b][mask[b].bool()] for b in range(len(ids))])
        partner = torch.randint(len(real), (len(real),), generator=generator)
        main = (
            F.cross_entropy(logits, labels) + settings.infobert_beta * ((real - real[partner]) ** 2).sum(-1).mean() / 2
        )
        g_delta = torch.autograd.grad(main, delta, retain_graph=True)[0]
        pairs = []
        for b in range(len(ids)):
            n = int(mask[b].sum())
            pairs += [
                (b, p) for p in hand_ranking(g_delta[b], n, settings.infobert_anchor_low, settings.infobert_anchor_high)
            ]
        order = torch.randperm(len(pairs), generator=generator).tolist()
        local = torch.stack([tokens[pairs[k][0], pairs[k][1]] for k in order])
        global_ = torch.stack([sentence[pairs[k][0]] for k in order])
        chunk = len(ids)
        bounds = [
            hand_infonce(critic, local[s : s + chunk], global_[s : s + chunk]) for s in range(0, len(order), chunk)
        ]
        loss = (main - settings.infobert_alpha * torch.stack(bounds).mean()) / steps
        g = torch.autograd.grad(loss, params, allow_unused=True)
        accumulated = [a + (x if x is not None else 0) for a, x in zip(accumulated, g)]
        total += float(loss.detach())
        norm = g_delta.reshape(len(ids), -1).norm(dim=1).clamp_min(1e-8).view(-1, 1, 1)
        delta = (delta + settings.infobert_adv_lr * g_delta / norm).detach()
    return total, accumulated


def test_infobert_loss_matches_the_papers_formula_step_by_step():
    settings = InfoBertSettings(infobert_alpha=0.5, infobert_beta=0.1, infobert_adv_steps=2, infobert_adv_init_mag=0.0)
    model = tiny_classifier(num_classes=CLASSES).train()
    torch.manual_seed(1)
    critic = infonce_critic(HIDDEN)
    ids, mask, _ = tiny_batch()
    expected_loss, expected_grads = _infobert_by_hand(model, critic, ids, mask, LABELS, settings, seed=3)
    model.zero_grad()
    critic.zero_grad()
    terms = infobert_loss(
        model, critic, ids, mask, LABELS, settings=settings, generator=torch.Generator().manual_seed(3)
    )
    assert abs(float(terms["loss"]) - expected_loss) < 1e-5
    assert abs(float(terms["loss"]) - float(terms["ce"] + terms["ib"] + terms["af"])) < 1e-5
    assert float(terms["ib"]) > 0 and float(terms["anchors"]) > 0
    assert_grads_close([p.grad for p in list(model.parameters()) + list(critic.parameters())], expected_grads)


def defense_trainer(tiny_model, output, method, epochs=1):
    """A Trainer of ``method`` on the tiny BERT of test_training_loop (16 training examples, batch 8)."""
    path, tokenizer = tiny_model
    settings = TrainSettings.for_method(
        method, model=path, epochs=epochs, batch_size=8, max_length=16, lr=1e-3, dev_examples=8, dev_adversary_steps=2
    )
    train = encode_examples(tokenizer, _examples(16), 16)
    dev = encode_examples(tokenizer, _examples(8, seed=1), 16)
    return Trainer(settings, tokenizer, train, dev, _table(tokenizer), output, num_classes=2, progress=False)


def assert_trains_and_loads(trainer, method):
    """One epoch changes the encoder; the best checkpoint names the method and loads as a classifier."""
    before = {k: v.clone() for k, v in trainer.objective.model.encoder.state_dict().items()}
    best = trainer.run()
    after = trainer.objective.model.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert json.loads((best / "rift_fast.json").read_text())["settings"]["method"] == method
    model = load_trained_classifier(best)
    batch = trainer.tokenizer(["the good movie"], return_tensors="pt")
    assert model(batch["input_ids"], batch["attention_mask"])[0].shape == (1, 2)


def assert_resume_equals_uninterrupted_run(tiny_model, tmp_path, method):
    """Two epochs in one run give the weights of one epoch, a kill after its checkpoint, and a resume."""
    uninterrupted = defense_trainer(tiny_model, tmp_path / "a", method, epochs=2)
    uninterrupted.run()
    first = defense_trainer(tiny_model, tmp_path / "b", method, epochs=2)
    original_save = first.save

    class Killed(Exception):
        pass

    def save_then_die(kind):
        original_save(kind)
        if kind == "last":
            raise Killed

    first.save = save_then_die
    with pytest.raises(Killed):
        first.run()
    resumed = defense_trainer(tiny_model, tmp_path / "b", method, epochs=2)
    resumed.run(resume=True)
    for key, value in uninterrupted.objective.state_dict().items():
        assert torch.equal(value, resumed.objective.state_dict()[key]), key


def test_one_trainer_epoch_changes_the_encoder_and_saves_a_loadable_checkpoint(tiny_model, tmp_path):
    trainer = defense_trainer(tiny_model, tmp_path, "infobert")
    assert_trains_and_loads(trainer, "infobert")
    assert {"ce", "ib", "af", "anchors"} <= set(trainer.history[0])


def test_resume_equals_an_uninterrupted_run(tiny_model, tmp_path):
    assert_resume_equals_uninterrupted_run(tiny_model, tmp_path, "infobert")


def _ranks_worker(rank, world, init_file, model_path, output, method):
    """One rank of a 2-process gloo run: one epoch of ``method``, then its weights to rank<r>.safetensors."""
    import torch.distributed as dist
    from safetensors.torch import save_file
    from transformers import BertTokenizerFast

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    tokenizer = BertTokenizerFast.from_pretrained(model_path)
    settings = TrainSettings.for_method(
        method, model=model_path, epochs=1, batch_size=8, max_length=16, lr=1e-3, dev_examples=8, dev_adversary_steps=1
    )
    train = encode_examples(tokenizer, _examples(16), 16)
    dev = encode_examples(tokenizer, _examples(8, seed=1), 16)
    trainer = Trainer(
        settings, tokenizer, train, dev, _table(tokenizer), output, num_classes=2, rank=rank, world_size=world
    )
    trainer.progress = False
    trainer.run()
    weights = {k: v.detach().contiguous() for k, v in trainer.objective.state_dict().items()}
    save_file(weights, f"{output}/rank{rank}.safetensors")
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["infobert", "safer"])
def test_two_gloo_processes_end_with_the_same_trained_weights(tiny_model, tmp_path, method):
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    from rift_fast.models import RobustClassifier

    path, _ = tiny_model
    output = tmp_path / "ddp"
    output.mkdir()
    mp.spawn(_ranks_worker, args=(2, str(tmp_path / "init"), path, str(output), method), nprocs=2, join=True)
    first, second = (load_file(str(output / f"rank{r}.safetensors")) for r in (0, 1))
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    initial = RobustClassifier.from_pretrained(path, 2).encoder.state_dict()
    assert any(not torch.equal(initial[k], first["model.encoder." + k]) for k in initial)
