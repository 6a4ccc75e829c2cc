"""PGD, TRADES and DNE on a tiny random BERT: each loss against its paper's formula written out in plain
torch, one step through the real Trainer, a checkpoint that loads, and the settings' domains.

Dropout is 0 in these models, so train and eval mode give the same logits and every forward of a
method can be recomputed here. The batches are sentence pairs (only the hypothesis is attackable) with
accented words, curly quotes and digits, padded to different lengths, and labels out of class order.
"""

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from tiny_tokenizers import wordpiece
from transformers import BertConfig, BertModel, BertTokenizerFast

from rift_fast.core.records import Example
from rift_fast.models import RobustClassifier, load_trained_classifier
from rift_fast.models.classifier import EMBEDDING_OUTPUT, WORD_EMBEDDING
from rift_fast.synonyms import SynonymIndex, two_hop_vocab_table
from rift_fast.training.defenses import DneSettings, DneTraining, PgdSettings, TradesSettings, pgd_loss, trades_loss
from rift_fast.training.defenses.dne import dirichlet_weights, dne_loss, dne_substitutions
from rift_fast.training.defenses.embedding_ball import ball_adversary
from rift_fast.training.loop import Trainer, TrainSettings, collate, encode_examples

# A chain of synonyms, so that two hops reach words one hop does not: good - fine - nice - naïve.
CHAIN = ["good", "fine", "nice", "naïve"]
SYNONYMS = SynonymIndex(
    {w: [CHAIN[j] for j in (i - 1, i + 1) if 0 <= j < len(CHAIN)] for i, w in enumerate(CHAIN)}
    | {"bad": ["awful", "poor"], "awful": ["bad", "café"], "poor": ["bad"], "café": ["awful"]}
)
WORDS = [*CHAIN, "bad", "awful", "poor", "café", "the", "movie", "was", "plot", "2021", "a"]
PAIRS = [
    ("the café movie was “naïve”", "a good plot , 2021"),
    ("bad", "the plot was awful , poor and fine 2021 2021 nice"),
    ("2021 movie", "good"),
]
LABELS = torch.tensor([2, 0, 1])  # three classes, not in order
HIDDEN = 16


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return wordpiece(WORDS, tmp_path_factory.mktemp("wordpiece"))


def tiny_classifier(tokenizer, hull_space="auto", num_classes=3):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return RobustClassifier(BertModel(config), num_classes, hull_space=hull_space)


def synonym_table(tokenizer):
    return SYNONYMS.vocab_table(tokenizer, k=3)


def pair_batch(tokenizer):
    examples = [Example(text, int(label), text_pair=pair) for (text, pair), label in zip(PAIRS, LABELS)]
    split = encode_examples(tokenizer, examples, 32)
    return collate(split, [0, 1, 2], tokenizer.pad_token_id, synonym_table(tokenizer), torch.device("cpu"))


def hand_ce(logits, labels):
    return -F.log_softmax(logits, -1)[torch.arange(len(labels)), labels].mean()


def hand_kl(logits_clean, logits_adv):
    """KL(p(x) || p(x_adv)), batch mean, nothing detached."""
    p = F.softmax(logits_clean, -1)
    return (p * (F.log_softmax(logits_clean, -1) - F.log_softmax(logits_adv, -1))).sum(-1).mean()


def word_table(model):
    return model.encoder.embeddings.word_embeddings.weight


def parameter_grads(loss, model):
    return torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)


def assert_grads_close(actual, expected):
    for a, e in zip(actual, expected):
        if e is None:
            assert a is None or float(a.abs().max()) == 0.0
        else:
            torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-6)


def per_example(values, reduce):
    return reduce(values.reshape(len(values), -1)).view(-1, 1, 1)


def hand_step(delta, grad, norm, step, radius):
    """Madry's projected step with TextDefender's normalisation, written out."""
    if norm == "l2":
        delta = delta + step * grad / per_example(grad, lambda g: g.norm(dim=1))
        size = per_example(delta, lambda d: d.norm(dim=1))
        return torch.where(size > radius, delta * radius / size, delta)
    delta = delta + step * grad / per_example(grad, lambda g: g.abs().amax(dim=1))
    return delta.clamp(-radius, radius)


# ---------------------------------------------------------------------------------------------- PGD
@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("radius", [1e3, 0.05])  # the ball far away, and binding
def test_one_pgd_step_from_zero_is_the_projected_normalised_gradient(tokenizer, norm, radius):
    model = tiny_classifier(tokenizer).train()
    b = pair_batch(tokenizer)
    ids, mask, types = b["input_ids"], b["attention_mask"], b["token_type_ids"]
    embeds = word_table(model)[ids].detach()
    zero = torch.zeros_like(embeds, requires_grad=True)
    (grad,) = torch.autograd.grad(hand_ce(model(ids, mask, types, word_embeds=embeds + zero)[0], LABELS), [zero])
    expected_delta = hand_step(zero.detach(), grad, norm, 0.5, radius)
    settings = PgdSettings(pgd_norm=norm, pgd_steps=1, pgd_step_size=0.5, pgd_radius=radius, pgd_init_mag=0.0)
    delta = ball_adversary(model, ids, mask, types, lambda logits: F.cross_entropy(logits, LABELS), **settings.search())
    torch.testing.assert_close(delta, expected_delta)
    expected = hand_ce(model(ids, mask, types, word_embeds=word_table(model)[ids] + expected_delta)[0], LABELS)
    terms = pgd_loss(model, ids, mask, LABELS, types, settings=settings)
    torch.testing.assert_close(terms["loss"], expected)
    assert_grads_close(parameter_grads(terms["loss"], model), parameter_grads(expected, model))


def test_the_default_pgd_radius_never_binds_under_the_default_steps(tokenizer):
    """TextDefender runs PGD without a ball; the default radius 0.05 + 5 * 0.03 keeps that exactly."""
    model = tiny_classifier(tokenizer).train()
    b = pair_batch(tokenizer)
    args = (model, b["input_ids"], b["attention_mask"], b["token_type_ids"], lambda x: F.cross_entropy(x, LABELS))
    for norm in ("l2", "linf"):
        bounded = PgdSettings(pgd_norm=norm).search()
        unbounded = {**bounded, "radius": 1e9}
        deltas = [ball_adversary(*args, generator=torch.Generator().manual_seed(1), **s) for s in (bounded, unbounded)]
        torch.testing.assert_close(deltas[0], deltas[1])


# ------------------------------------------------------------------------------------------- TRADES
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_trades_is_clean_ce_plus_beta_kl_to_one_ascent_step_of_the_kl(tokenizer, norm):
    model = tiny_classifier(tokenizer).train()
    b = pair_batch(tokenizer)
    ids, mask, types = b["input_ids"], b["attention_mask"], b["token_type_ids"]
    embeds = word_table(model)[ids].detach()
    # The random start of TextDefender / FreeLB, drawn from the generator the loss is given.
    noise = (torch.rand(embeds.shape, generator=torch.Generator().manual_seed(7)) * 2 - 1) * mask.unsqueeze(-1)
    scale = 0.5 / (mask.sum(1) * HIDDEN).sqrt().view(-1, 1, 1) if norm == "l2" else 0.5
    start = (noise * scale).requires_grad_(True)
    target = F.softmax(model(ids, mask, types)[0], -1).detach()
    log_adv = F.log_softmax(model(ids, mask, types, word_embeds=embeds + start)[0], -1)
    (grad,) = torch.autograd.grad((target * (target.log() - log_adv)).sum(-1).mean(), [start])
    delta = hand_step(start.detach(), grad, norm, 0.2, 10.0)
    logits_clean = model(ids, mask, types)[0]
    logits_adv = model(ids, mask, types, word_embeds=word_table(model)[ids] + delta)[0]
    expected = hand_ce(logits_clean, LABELS) + 2.5 * hand_kl(logits_clean, logits_adv)
    settings = TradesSettings(
        pgd_norm=norm, pgd_steps=1, pgd_step_size=0.2, pgd_radius=10.0, pgd_init_mag=0.5, trades_beta=2.5
    )
    terms = trades_loss(model, ids, mask, LABELS, types, settings, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(terms["loss"], expected)
    assert_grads_close(parameter_grads(terms["loss"], model), parameter_grads(expected, model))
    assert model.training  # the eval-mode search restores the mode


# ---------------------------------------------------------------------------------------------- DNE
def test_the_two_hop_table_lists_one_hop_first_then_new_two_hop_neighbours():
    table = torch.tensor([[1, 2, -1], [0, 3, -1], [0, -1, -1], [1, 4, -1], [3, -1, -1], [-1, -1, -1]])
    expected = [[1, 2, 3, -1], [0, 3, 2, 4], [0, 1, -1, -1], [1, 4, 0, -1], [3, 1, -1, -1], [-1, -1, -1, -1]]
    assert two_hop_vocab_table(table, 4).tolist() == expected
    assert two_hop_vocab_table(table, 2).tolist() == [row[:2] for row in expected]  # the cap
    with pytest.raises(ValueError, match="width must be at least 1"):
        two_hop_vocab_table(table, 0)


def test_dne_substitutions_reach_two_hops_on_attackable_tokens_only(tokenizer):
    b = pair_batch(tokenizer)
    vocab = tokenizer.get_vocab()
    two_hop = two_hop_vocab_table(synonym_table(tokenizer), 5)
    sub_ids, one_hop = dne_substitutions(b["input_ids"], b["sub_ids"], two_hop)
    good = vocab["good"]
    assert two_hop[good].tolist() == [vocab["fine"], vocab["nice"], -1, -1, -1]
    assert two_hop[vocab["fine"]].tolist() == [vocab["good"], vocab["nice"], vocab["naive"], -1, -1]
    for row in range(len(PAIRS)):
        for position, token in enumerate(b["input_ids"][row].tolist()):
            open_ = bool((b["sub_ids"][row, position, 1:] >= 0).any())  # hypothesis side, with synonyms
            expected = [token] + (two_hop[token].tolist() if open_ else [-1] * 5)
            assert sub_ids[row, position].tolist() == expected
            first = int((b["sub_ids"][row, position, 1:] >= 0).sum())
            assert one_hop[row, position].tolist() == [slot <= first for slot in range(6)]
    premise_naive = b["input_ids"][0].tolist().index(vocab["naive"])  # "naïve" in the premise: frozen
    assert (sub_ids[0, premise_naive, 1:] == -1).all()


def test_dirichlet_weights_have_the_published_means_and_stay_on_valid_slots():
    torch.manual_seed(0)
    count = 20000
    sub_ids = torch.tensor([[5, 6, 7, 8, 9, 10, -1], [5, -1, -1, -1, -1, -1, -1]]).repeat(count, 1).view(count, 2, 7)
    one_hop = torch.arange(7) <= 2  # the word and two one-hop slots; then three two-hop slots
    weights = dirichlet_weights(sub_ids, one_hop.expand(count, 2, 7), alpha=1.0, decay=0.5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(count, 2))
    assert (weights[:, 0, 6] == 0).all() and (weights[:, 1, 0] == 1).all()
    concentration = torch.tensor([1.0, 1.0, 1.0, 0.5, 0.5, 0.5])  # Dirichlet mean: alpha_k / sum alpha
    torch.testing.assert_close(weights[:, 0, :6].mean(0), concentration / concentration.sum(), atol=0.006, rtol=0)
    tiny = dirichlet_weights(sub_ids[:2000], one_hop.expand(2000, 2, 7), alpha=1e-4, decay=1e-2)
    torch.testing.assert_close(tiny.sum(-1), torch.ones(2000, 2))  # underflowing draws fall back to the word


def hand_hull(model, weights, sub_ids, types, hull_space):
    """sum_s w[s] * E(sub[s]): word embeddings, or LayerNorm(word + position + type) per slot."""
    slots = word_table(model)[sub_ids.clamp_min(0)]
    if hull_space == EMBEDDING_OUTPUT:
        embeddings = model.encoder.embeddings
        length = sub_ids.shape[1]
        base = embeddings.position_embeddings.weight[:length] + embeddings.token_type_embeddings.weight[types]
        ln = embeddings.LayerNorm
        slots = F.layer_norm(slots + base.unsqueeze(2), (HIDDEN,), ln.weight, ln.bias, ln.eps)
    return (weights.unsqueeze(-1) * slots).sum(2)


@pytest.mark.parametrize("hull_space", [WORD_EMBEDDING, EMBEDDING_OUTPUT])
@pytest.mark.parametrize("steps", [0, 2])
def test_dne_loss_on_a_fixed_dirichlet_draw_is_the_hand_mixed_neighbours(tokenizer, hull_space, steps):
    model = tiny_classifier(tokenizer, hull_space=hull_space).train()
    b = pair_batch(tokenizer)
    ids, mask, types = b["input_ids"], b["attention_mask"], b["token_type_ids"]
    sub_ids, one_hop = dne_substitutions(ids, b["sub_ids"], two_hop_vocab_table(synonym_table(tokenizer), 5))
    torch.manual_seed(3)
    draw = dirichlet_weights(sub_ids, one_hop, alpha=1.0, decay=0.5)
    valid = sub_ids >= 0
    # Zhou et al.'s code: z0 = log(w0 + 1e-6) on the valid slots, w = softmax(z), z += step * g / (||g|| + 1e-6).
    logit = torch.log(draw + 1e-6).masked_fill(~valid, float("-inf")).requires_grad_(True)
    losses = []
    for step in range(steps + 1):
        hull = hand_hull(model, F.softmax(logit, -1), sub_ids, types, hull_space)
        losses.append(hand_ce(model(ids, mask, types, hull_embeds=hull)[0], LABELS))
        if step < steps:
            (grad,) = torch.autograd.grad(losses[-1], [logit], retain_graph=True)
            logit = logit + 10.0 * grad / (grad.norm(dim=-1, keepdim=True) + 1e-6)
    expected = losses[0] + (torch.stack(losses[1:]).mean() if steps else 0)
    terms = dne_loss(model, ids, mask, LABELS, sub_ids, draw, types, steps=steps, step_size=10.0, backend="reference")
    torch.testing.assert_close(terms["loss"], expected)
    assert_grads_close(parameter_grads(terms["loss"], model), parameter_grads(expected, model))


def test_dne_refuses_to_run_without_the_synonym_table(tokenizer):
    defense = DneTraining(tiny_classifier(tokenizer), DneSettings())
    with pytest.raises(RuntimeError, match="dne needs the synonym table"):
        defense(pair_batch(tokenizer))


# ------------------------------------------------------------------------------------------ Trainer
METHOD_OPTIONS = {
    "pgd": {"pgd_steps": 2, "pgd_norm": "linf", "pgd_radius": 0.1},
    "trades": {"pgd_steps": 2},
    "dne": {"dne_steps": 2, "dne_neighbours": 6},
}
TERMS = {"pgd": {"ce_adv", "delta_norm"}, "trades": {"ce", "kl", "delta_norm"}, "dne": {"ce_dirichlet", "ce_ascended"}}


@pytest.fixture(scope="module")
def model_folder(tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_bert")
    tokenizer.save_pretrained(folder)
    tiny_classifier(tokenizer).encoder.save_pretrained(folder)
    return str(folder)


def _trainer(tokenizer, folder, output, method, rank=0, world=1, **overrides):
    options = {"epochs": 1, "batch_size": 4, "max_length": 32, "lr": 1e-3, "dev_examples": 3, "dev_adversary_steps": 1}
    settings = TrainSettings.for_method(method, model=folder, **{**options, **METHOD_OPTIONS[method], **overrides})
    examples = [Example(f"{t} {p}", i % 2) for i, (t, p) in enumerate(PAIRS * 2)]
    split = encode_examples(tokenizer, examples, 32)
    return Trainer(settings, tokenizer, split, split, synonym_table(tokenizer), output, 2, rank, world, progress=False)


@pytest.mark.parametrize("method", sorted(METHOD_OPTIONS))
def test_a_trainer_step_changes_the_encoder_and_the_checkpoint_loads(tokenizer, model_folder, tmp_path, method):
    trainer = _trainer(tokenizer, model_folder, tmp_path, method)
    before = {k: v.clone() for k, v in trainer.objective.model.state_dict().items()}
    batch = collate(trainer.train_split, [0, 1, 2, 3], tokenizer.pad_token_id, trainer.neighbour_table, trainer.device)
    terms = trainer.step(batch)
    assert TERMS[method] | {"loss"} <= set(terms) and all(map(torch.isfinite, torch.tensor(list(terms.values()))))
    changed = {k for k, v in trainer.objective.model.state_dict().items() if not torch.equal(v, before[k])}
    assert "encoder.embeddings.word_embeddings.weight" in changed and any(k.startswith("classifier.") for k in changed)
    best = trainer.run()
    model = load_trained_classifier(best)
    for key, value in model.state_dict().items():  # the checkpoint holds the trained weights
        torch.testing.assert_close(value, trainer.objective.model.state_dict()[key])
    assert model(**tokenizer(["the café was “naïve” 2021"], return_tensors="pt"))[0].shape == (1, 2)


@pytest.mark.parametrize("method", ["trades", "dne"])  # random starts and Dirichlet draws from the global RNG
def test_resume_equals_an_uninterrupted_run(tokenizer, model_folder, tmp_path, method):
    uninterrupted = _trainer(tokenizer, model_folder, tmp_path / "a", method, epochs=2)
    uninterrupted.run()

    class Killed(Exception):
        pass

    interrupted = _trainer(tokenizer, model_folder, tmp_path / "b", method, epochs=2)
    real_save = interrupted.save

    def save_then_die(kind):
        real_save(kind)
        if kind == "last":
            raise Killed

    interrupted.save = save_then_die
    with pytest.raises(Killed):
        interrupted.run()
    resumed = _trainer(tokenizer, model_folder, tmp_path / "b", method, epochs=2)
    resumed.run(resume=True)
    for key, value in uninterrupted.objective.model.state_dict().items():
        assert torch.equal(resumed.objective.model.state_dict()[key], value), key


def _ddp_worker(rank, world, init_file, folder, output):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    _trainer(BertTokenizerFast.from_pretrained(folder), folder, output, "pgd", rank, world, pgd_init_mag=0.0).run()
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_pgd_under_two_process_gloo_ddp_equals_one_process(tokenizer, model_folder, tmp_path):
    """The ball search runs autograd.grad inside DDP's forward (TRADES and DNE do too); without a random
    start PGD is deterministic, so two processes must train to the weights of one."""
    single = _trainer(tokenizer, model_folder, tmp_path / "single", "pgd", pgd_init_mag=0.0)
    single.run()
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), model_folder, str(tmp_path / "ddp")), nprocs=2, join=True)
    ddp = load_trained_classifier(tmp_path / "ddp" / "pgd" / "last").state_dict()
    for key, value in single.objective.model.state_dict().items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-4, atol=1e-5, msg=key)


# ----------------------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("settings", "options", "message"),
    [
        (PgdSettings, {"pgd_norm": "l1"}, "pgd_norm must be one of l2, linf, got 'l1'"),
        (PgdSettings, {"pgd_radius": 0.0}, r"pgd_radius must be in \(0, inf\), got 0.0"),
        (PgdSettings, {"pgd_steps": 0}, r"pgd_steps must be in \[1, inf\), got 0"),
        (PgdSettings, {"pgd_step_size": -0.1}, r"pgd_step_size must be in \(0, inf\)"),
        (PgdSettings, {"pgd_init_mag": -1.0}, r"pgd_init_mag must be in \[0, inf\)"),
        (TradesSettings, {"pgd_radius": -2.0}, r"pgd_radius must be in \(0, inf\), got -2.0"),
        (TradesSettings, {"trades_beta": -6.0}, r"trades_beta must be in \[0, inf\)"),
        (TradesSettings, {"pgd_init_mag": 0.0}, r"TRADES needs a random start: pgd_init_mag must be in \(0, inf\)"),
        (DneSettings, {"dne_alpha": 0.0}, r"dne_alpha \(a Dirichlet concentration\) must be in \(0, inf\), got 0.0"),
        (DneSettings, {"dne_alpha": -1.0}, r"dne_alpha \(a Dirichlet concentration\) must be in \(0, inf\)"),
        (DneSettings, {"dne_decay": 1.5}, r"dne_decay must be in \(0, 1\], got 1.5"),
        (DneSettings, {"dne_steps": -1}, r"dne_steps must be in \[0, inf\)"),
        (DneSettings, {"dne_step_size": 0.0}, r"dne_step_size must be in \(0, inf\)"),
        (DneSettings, {"dne_neighbours": 1}, r"dne_neighbours must be in \[2, inf\)"),
    ],
)
def test_settings_outside_their_domain_are_refused_naming_the_setting_and_range(settings, options, message):
    with pytest.raises(ValueError, match=message):
        settings(**options)


def test_the_command_line_options_reach_the_same_checks():
    with pytest.raises(ValueError, match=r"dne_alpha \(a Dirichlet concentration\) must be in \(0, inf\)"):
        TrainSettings.for_method("dne", model="m", epochs=1, batch_size=2, dne_alpha=-0.5)
    with pytest.raises(ValueError, match="pgd_norm must be one of l2, linf"):
        TrainSettings.for_method("trades", model="m", epochs=1, batch_size=2, pgd_norm="l3")
