"""SAFER's certificate on toy models whose answer is known by hand: a bag of words over a tiny tokenizer,
so the smoothed prediction and Delta_x follow from the synonym sets alone."""

import math

import pytest
from tiny_models import BagOfWords
from tiny_tokenizers import FAMILIES, tokenizer_of_family

from rift_fast.attacks import VictimModel
from rift_fast.core.records import Example
from rift_fast.evaluation.certification import (
    CertificationSettings,
    certified_accuracy,
    minimum_samples,
    total_variation_bound,
)
from rift_fast.synonyms import SynonymIndex

WORDS = ["the", "movie", "was", "good", "fine", "nice", "great", "plot", "café", "and"]
CLIQUE = {"good": ["fine", "nice"], "fine": ["good", "nice"], "nice": ["good", "fine"]}
# Unequal sets: T(good) = {good, fine, nice}, T(fine) = {fine, good}, T(nice) = {nice, good, great}.
CHAIN = {"good": ["fine", "nice"], "fine": ["good"], "nice": ["good", "great"], "great": ["nice"]}
# mc_error 0.1 at alpha 0.01 needs ceil(ln(100) / 0.02) = 231 samples.
SETTINGS = CertificationSettings(samples=400, mc_error=0.1, alpha=0.01)


@pytest.fixture(scope="module", params=FAMILIES)
def tokenizer(request, tmp_path_factory):
    return tokenizer_of_family(request.param, WORDS, tmp_path_factory.mktemp(request.param))


def _victim(tokenizer, scored_words):
    scores = {form: 5.0 for word in scored_words for form in (word, word.capitalize())}
    vocab = tokenizer.get_vocab()
    known = {w: s for w, s in scores.items() if w in vocab}
    for prefix in ("Ġ", "▁"):
        known.update({prefix + w: s for w, s in scores.items() if prefix + w in vocab})
    return VictimModel(BagOfWords(tokenizer, known), tokenizer, batch_size=7)


def test_a_word_whose_whole_set_keeps_the_label_is_certified(tokenizer):
    victim = _victim(tokenizer, ["good", "fine", "nice"])
    pool = [Example("The café “movie” was Good, 日本 2024.", 1)]
    (result,) = certified_accuracy(victim, pool, SynonymIndex(CLIQUE), SETTINGS).examples
    assert result.counts == (0, 400) and result.label_share == 1.0
    assert result.words == 1 and result.delta == 0.0 and result.certified
    assert result.distinct == 3  # Good, Fine, Nice: the other words have no synonyms and stay


def test_a_model_that_reads_only_the_word_itself_is_not_certified(tokenizer):
    victim = _victim(tokenizer, ["good"])
    pool = [Example("the movie was good", 1)]
    (result,) = certified_accuracy(victim, pool, SynonymIndex(CLIQUE), SETTINGS).examples
    assert sum(result.counts) == 400
    assert abs(result.label_share - 1 / 3) < 4 * math.sqrt(2 / 9 / 400)  # good kept in a third of the draws
    assert result.delta == 0.0 and not result.certified


def test_delta_is_the_total_variation_bound_of_unequal_sets(tokenizer):
    synonyms = SynonymIndex(CHAIN)
    q_good = min(2 / 3, 2 / 3)  # |T(good) & T(fine)| / 3, |T(good) & T(nice)| / 3
    q_fine = 2 / max(2, 3)  # |T(fine) & T(good)| / max(|T(fine)|, |T(good)|)
    assert total_variation_bound(("good",), synonyms) == pytest.approx(1 - q_good)
    assert total_variation_bound(("fine", "plot"), synonyms) == pytest.approx(1 - q_fine)
    victim = _victim(tokenizer, ["good", "fine", "nice", "great"])  # every reachable word keeps class 1
    once, twice = certified_accuracy(
        victim, [Example("the good movie", 1), Example("good plot and good movie", 1)], synonyms, SETTINGS
    ).examples
    assert once.label_share == 1.0
    assert once.delta == pytest.approx(1 / 3) and once.certified  # 1 - 1/3 > 0.5 + 0.1
    assert twice.delta == pytest.approx(1 - (2 / 3) ** 2) and not twice.certified  # 4/9 < 0.6
    assert twice.counts == () and twice.label_share is None  # no share could pass: not sampled
    everything = CertificationSettings(400, 0.1, 0.01, skip_uncertifiable=False)
    sampled = certified_accuracy(victim, [Example("good plot and good movie", 1)], synonyms, everything).examples[0]
    assert sampled.label_share == 1.0 and sampled.delta == twice.delta and not sampled.certified


def test_batched_equals_one_at_a_time(tokenizer):
    victim = _victim(tokenizer, ["good", "nice"])
    pool = [
        Example("the good movie", 1),
        Example("The nice plot and the fine movie", 1),
        Example("the movie was great", 0),
        Example("Good, fine and nice", 1),
        Example("café", 0),
    ]
    synonyms = SynonymIndex(CHAIN)
    batched = certified_accuracy(victim, pool, synonyms, SETTINGS, examples_per_block=5)
    single = certified_accuracy(
        victim, pool, synonyms, CertificationSettings(400, 0.1, 0.01, queries_per_call=3), examples_per_block=1
    )
    assert batched.examples == single.examples
    assert batched.certified_accuracy == sum(e.certified for e in batched.examples) / 5
    assert batched.summary()["examples"] == 5


def test_text_path_gives_the_spliced_certificates(tokenizer):
    victim = _victim(tokenizer, ["good", "nice"])
    pool = [Example("The nice plot and the fine movie", 1), Example("Good, fine and nice", 1)]
    spliced = certified_accuracy(victim, pool, SynonymIndex(CHAIN), SETTINGS)
    rendered = certified_accuracy(victim, pool, SynonymIndex(CHAIN), SETTINGS, splicing=False)
    assert spliced.examples == rendered.examples


def test_sample_counts_below_the_hoeffding_minimum_are_refused():
    assert minimum_samples(0.01, 0.001) == 34539
    with pytest.raises(ValueError, match=r"samples=1000 is below the minimum 34539"):
        CertificationSettings(samples=1000)
    with pytest.raises(ValueError, match="mc_error"):
        CertificationSettings(mc_error=0.0)
    with pytest.raises(ValueError, match="alpha"):
        CertificationSettings(alpha=1.0)
    CertificationSettings(samples=minimum_samples(0.05, 0.001), mc_error=0.05)  # the minimum itself is accepted


def test_certified_test_pool_takes_a_trained_classifier(tiny_model):
    from rift_fast.evaluation.pool_evaluation import EvaluationSettings, certified_test_pool
    from rift_fast.models import RobustClassifier

    path, tokenizer = tiny_model
    model = RobustClassifier.from_pretrained(path, 2)
    pool = [Example("the good movie", 1), Example("a bad plot", 0)]
    synonyms = SynonymIndex({"good": ["fine", "nice"], "bad": ["awful", "poor"]})
    row = certified_test_pool(model, tokenizer, pool, synonyms, EvaluationSettings(max_length=16), SETTINGS, False)
    assert row["certified_accuracy"] in (0.0, 0.5, 1.0)
    assert row["certification"]["examples"] == 2 and row["certification"]["settings"]["samples"] == 400


def test_attack_command_line_writes_certificates(tiny_model_dir, tmp_path, capsys):
    import csv
    import json

    from rift_fast.cli import attack

    data, neighbours = tmp_path / "reviews.csv", tmp_path / "neighbours.json"
    with open(data, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(40):
            writer.writerow([f"a wonderful film, with a touching story number {i}", ["negative", "positive"][i % 2]])
    groups = [["wonderful", "marvelous", "terrific"], ["film", "movie"], ["story", "tale"]]
    neighbours.write_text(json.dumps({w: [o for o in group if o != w] for group in groups for w in group}))
    output = tmp_path / "attack.json"
    argv = [
        "--model",
        str(tiny_model_dir),
        "--dataset",
        str(data),
        "--synonyms",
        str(neighbours),
        "--num-examples",
        "2",
    ]
    argv += ["--certify", "--certify-samples", "300", "--certify-mc-error", "0.1", "--certify-alpha", "0.01"]
    assert attack.main([*argv, "--output", str(output)]) == 0
    records = json.loads((tmp_path / "attack.certified.json").read_text())
    assert records["summary"]["examples"] == 2 and len(records["examples"]) == 2
    assert all(sum(e["counts"]) == 300 and e["words"] == 3 for e in records["examples"])
    assert "SAFER certified accuracy:" in capsys.readouterr().out
    with pytest.raises(ValueError, match="samples=10 is below the minimum 231"):
        attack.main([*argv, "--certify-samples", "10", "--output", str(tmp_path / "again.json")])
