"""BERT-Attack and BAE-R on tiny models: a random BertForMaskedLM built from a config whose output bias
fixes which tokens it predicts (so the candidates are known), a WordPiece MLM against a byte-level BPE
victim (vocabularies differ), sub-word combinations and their cap, known adversarial examples, batched
== one at a time, resume, no_candidate, and a model that cannot be loaded."""

import pytest
import torch
from test_greedy_attacks import WORD_SCORES, TokenScores
from tiny_models import tiny_bert_config
from tiny_tokenizers import byte_level_bpe, wordpiece
from transformers import BertForMaskedLM, BertModel

from rift_fast.attacks import (
    PWWS,
    AttackCheckpoint,
    BertAttackSwap,
    Constraints,
    GreedyWordSwap,
    MaskedLanguageModel,
    MaskedLanguageModelError,
    MaskedWordSwap,
    RecipeOptions,
    StopWords,
    Transformation,
    UntargetedClassification,
    VictimModel,
    WordSite,
    build_attack,
    run_attack,
)
from rift_fast.attacks.masked_lm import BERT_ATTACK_MAX_COMBINATIONS
from rift_fast.attacks.text import WordSpans
from rift_fast.attacks.transformation import PendingChoices
from rift_fast.core.records import Example
from rift_fast.synonyms import SynonymIndex

MLM_WORDS = ["good", "great", "movie", "grand", "excellent", "film", "dull", "plot", "acting", "a", "with", "the"]
# Output biases that dominate the random body: every position ranks grand, then dull, then film, ...
PREDICTED = {"grand": 12.0, "dull": 11.0, "film": 10.0, "##a": 9.0, ",": 8.0}
# For sub-word combinations: b, then ##a, then ##d lead everywhere.
PIECES = {"b": 12.0, "##a": 11.0, "##d": 10.0, "great": 9.0}


def tiny_masked_lm(folder, biases, words=MLM_WORDS):
    """A one-layer random BertForMaskedLM with a WordPiece tokenizer, saved in ``folder``; ``biases``
    (token -> output bias) decide its ranking at every position."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = wordpiece(words, folder)
    torch.manual_seed(0)
    config = tiny_bert_config(len(tokenizer))
    model = BertForMaskedLM(config)
    with torch.no_grad():
        for token, bias in biases.items():
            model.cls.predictions.bias[tokenizer.convert_tokens_to_ids(token)] = bias
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def mlm_folder(tmp_path_factory):
    return tiny_masked_lm(tmp_path_factory.mktemp("mlm"), PREDICTED)


@pytest.fixture(scope="module")
def encoder_folder(tmp_path_factory):
    """A stand-in sentence encoder: a random one-layer BERT with the MLM's tokenizer."""
    folder = tmp_path_factory.mktemp("encoder")
    tokenizer = wordpiece(MLM_WORDS, folder)
    torch.manual_seed(1)
    config = tiny_bert_config(len(tokenizer))
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def victim():
    """A byte-level BPE victim (the MLM is WordPiece): logits [-s, s], s the sum of WORD_SCORES."""
    tokenizer = byte_level_bpe([w for w in WORD_SCORES if w.isascii()])
    return VictimModel(TokenScores(tokenizer), tokenizer, batch_size=3)


def _attack(recipe, victim, mlm_folder, encoder_folder, **options):
    defaults = {"mlm": mlm_folder, "sentence_encoder": encoder_folder, "pos_tagger": "none"}
    return build_attack(recipe, victim, SynonymIndex({}), False, RecipeOptions(**{**defaults, **options}))


def _pool():
    texts = [
        "a good movie with great acting",
        "“Good” plot, naïve кино 3D",
        "the dull plot",
        "GOOD film with great acting and a good plot " * 3,
        "good",
    ]
    return [Example(t, y) for t, y in zip(texts, [1, 1, 0, 1, 1])]


def _comparable(report):
    return [(r.status, r.adversarial, r.words_changed, r.queries) for r in report.results]


@pytest.mark.parametrize("recipe", ["bert-attack", "bae"])
def test_each_recipe_finds_the_known_adversarial_example(recipe, victim, mlm_folder, encoder_folder):
    # s = 1 (good) + 0.2 (movie) + 1 (great) = 2.2. Both rankings put good first (1.0, before great by
    # position); the MLM's candidates for it are grand, dull, film: grand gives s = -0.3, a flip.
    attack = _attack(recipe, victim, mlm_folder, encoder_folder)
    report = attack.run([Example("a good movie with great acting", 1)], victim, attack.settings(), progress=False)
    (result,) = report.results
    assert result.status == "success" and result.adversarial == "a grand movie with great acting"
    settings = attack.settings()
    assert settings["transformation"]["masked_language_model"] == mlm_folder
    assert settings["search"]["ranking"] == ("unk" if recipe == "bert-attack" else "delete")
    similarity = settings["constraints"]["checked_on_each_proposed_text"]["sentence_similarity"]
    expected = {"bert-attack": (0.2, None), "bae": (0.936338023, 15)}[recipe]
    assert (similarity["threshold"], similarity["window"], similarity["metric"]) == (*expected, "cosine")
    assert similarity["compare_against_original"] and similarity["encoder"] == encoder_folder


def test_candidates_are_whole_words_in_the_words_case(mlm_folder):
    model = MaskedLanguageModel(mlm_folder, batch_size=2)
    spans = WordSpans("“Good” plot, naïve GREAT")
    sites = [WordSite(spans, p) for p in range(len(spans))]
    # BERT-Attack: the top 48 tokens of each one-token word minus pieces (##a), punctuation and the word.
    unmasked = BertAttackSwap(model, k=5).candidates_at(sites)
    assert unmasked[0] == ["Grand", "Dull", "Film"] and unmasked[1] == ["grand", "dull", "film"]
    assert unmasked[3] == ["GRAND", "DULL", "FILM"]
    # BAE: the first K whole words at the mask, then the word itself dropped.
    masked = MaskedWordSwap(model, k=2).candidates_at(sites)
    assert masked[0] == ["Grand", "Dull"] and masked[3] == ["GRAND", "DULL"]
    assert MaskedWordSwap(model, k=3).candidates_at([WordSite(WordSpans("the dull plot"), 1)]) == [["grand", "film"]]
    assert model.word_of(model.tokenizer.convert_tokens_to_ids("##a")) is None
    assert model.forward_seconds > 0 and MaskedWordSwap(model, k=2).auxiliary_models() == [
        model
    ]  # timed with the attack


def test_sub_word_combinations_ranked_by_perplexity_and_capped(tmp_path, monkeypatch):
    model = MaskedLanguageModel(tiny_masked_lm(tmp_path, PIECES), batch_size=4)
    swap = BertAttackSwap(model, k=4)
    # "xy" is two pieces (x ##y): of the 16 combinations of b, ##a, ##d, great per piece, four are one word;
    # by perplexity (biases 12 + 11, 12 + 10, 9 + 11, 9 + 10): ba, bd, greata, greatd.
    (candidates,) = swap.candidates_at([WordSite(WordSpans("the xy plot"), 1)])
    assert candidates == ["ba", "bd", "greata", "greatd"]
    decoded = []
    original = model.decode
    monkeypatch.setattr(model, "decode", lambda ids: decoded.append(len(ids)) or original(ids))
    swap.candidates_at([WordSite(WordSpans("zyxwvutsrqponm plot"), 0)])  # 14 pieces
    assert len(decoded) == BERT_ATTACK_MAX_COMBINATIONS and set(decoded) == {12}  # 24 combinations of 12 pieces


def test_batched_equals_one_at_a_time_and_resume(victim, mlm_folder, encoder_folder, tmp_path):
    rows: list[int] = []  # texts per masked-LM forward pass
    for recipe in ["bert-attack", "bae"]:
        batched = _attack(recipe, victim, mlm_folder, encoder_folder, mlm_batch_size=8)
        single = _attack(recipe, victim, mlm_folder, encoder_folder, mlm_batch_size=1)
        rows.clear()
        network = batched.transformation.model.model
        hook = network.register_forward_pre_hook(
            lambda _, args, kwargs: rows.append(len(kwargs["input_ids"])), with_kwargs=True
        )
        whole = batched.run(_pool(), victim, {}, progress=False, examples_per_round=5)
        hook.remove()
        assert max(rows) <= 8 and max(rows) > 1, rows  # at most a batch; texts of several examples share one
        alone = single.run(_pool(), victim, {}, progress=False, examples_per_round=1)
        assert _comparable(whole) == _comparable(alone), recipe
        assert {r.status for r in whole.results} == {"success"}, recipe  # K covers the tiny vocabulary
        path = tmp_path / f"{recipe}.checkpoint.jsonl"
        batched.run(_pool(), victim, {}, progress=False, indices=[0, 3], checkpoint=AttackCheckpoint(path, {}))
        resumed = batched.run(_pool(), victim, {}, progress=False, checkpoint=AttackCheckpoint(path, {}))
        assert _comparable(resumed) == _comparable(whole), recipe


def test_the_helpers_take_the_victims_token_budget_with_the_same_results(victim, mlm_folder, encoder_folder):
    budgeted = VictimModel(victim.model, victim.tokenizer, batch_size=3, token_budget=1)  # one row per call
    for recipe in ["bert-attack", "bae"]:
        attack = _attack(recipe, victim, mlm_folder, encoder_folder, mlm_batch_size=8)
        rows: list[int] = []
        network = attack.transformation.model.model
        hook = network.register_forward_pre_hook(
            lambda _, args, kwargs, rows=rows: rows.append(len(kwargs["input_ids"])), with_kwargs=True
        )
        one_row = attack.run(_pool(), budgeted, {}, progress=False, examples_per_round=5)
        hook.remove()
        assert max(rows) == 1 and attack.transformation.model.token_budget == 1, recipe
        whole = attack.run(_pool(), victim, {}, progress=False, examples_per_round=5)
        assert attack.transformation.model.token_budget is None  # each run sets the victim's
        assert _comparable(one_row) == _comparable(whole), recipe


def test_a_text_without_any_candidate_is_no_candidate(victim, mlm_folder, encoder_folder, tmp_path):
    # The top two tokens are punctuation: BERT-Attack with K=2 has no candidate for any word.
    mlm = tiny_masked_lm(tmp_path, {",": 12.0, ".": 11.0})
    attack = _attack("bert-attack", victim, mlm, encoder_folder, mlm_candidates=2)
    report = attack.run([Example("good movie", 1), Example("the", 0)], victim, {}, progress=False)
    assert [r.status for r in report.results] == ["no_candidate", "unattackable"]  # "the": a stop word
    assert report.summary()["robust_accuracy"] == 0.5
    # BAE with K=1: the only word at the mask is grand itself, dropped; found while searching.
    attack = _attack("bae", victim, mlm_folder, encoder_folder, mlm_candidates=1)
    assert attack.run([Example("grand", 0)], victim, {}, progress=False).results[0].status == "no_candidate"


class RecordingSwap(Transformation):
    """Hand-made candidates that read the current text, recording each text they are asked about."""

    reads_current_text = True

    def __init__(self, table):
        self.table, self.texts = table, []

    def candidates(self, word):
        return list(self.table.get(word, []))

    def candidates_at(self, sites):
        self.texts += [site.spans.text for site in sites]
        return super().candidates_at(sites)

    def describe(self):
        return {"transformation": "recording"}


def test_a_transformation_reading_the_current_text_sees_the_earlier_swaps(victim):
    # s = 3 (excellent) + 1 (good) = 4: deletion ranks excellent first; its swap to dull leaves s = 0.9,
    # then good is asked about in the text with dull in place, and grand flips it (s = -1.6).
    swap = RecordingSwap({"excellent": ["dull"], "good": ["grand"]})
    constraints = Constraints([StopWords(set())])
    search = GreedyWordSwap(UntargetedClassification(), "delete", pending=PendingChoices(swap, constraints))
    goal = UntargetedClassification()
    report = run_attack([Example("excellent, good!", 1)], victim, swap, search, constraints, goal, {}, progress=False)
    assert report.results[0].adversarial == "dull, grand!" and swap.texts == ["excellent, good!", "dull, good!"]
    with pytest.raises(ValueError, match="reads the text the search holds; search 'pwws' cannot serve it"):
        run_attack([Example("good", 1)], victim, swap, PWWS(goal, "[UNK]"), constraints, goal, {}, progress=False)


def test_a_masked_language_model_that_cannot_be_loaded_is_named(tmp_path, encoder_folder, mlm_folder):
    with pytest.raises(MaskedLanguageModelError, match="no/such/mlm"):
        MaskedLanguageModel(str(tmp_path / "no/such/mlm"))
    with pytest.raises(MaskedLanguageModelError, match="batch size must be at least 1"):
        MaskedLanguageModel(encoder_folder, batch_size=0)
    with pytest.raises(ValueError, match="at least 1"):
        BertAttackSwap(MaskedLanguageModel(mlm_folder), k=0)


def test_a_folder_without_a_masked_lm_head_is_refused(encoder_folder, tiny_model_dir):
    """An encoder or a classifier would load with a randomly initialised head and propose random words."""
    for folder in (encoder_folder, str(tiny_model_dir)):
        with pytest.raises(MaskedLanguageModelError, match=r"has no trained masked-LM head \(not in its checkpoint: "):
            MaskedLanguageModel(folder)


def test_attack_cli_runs_both_recipes(tiny_model_dir, mlm_folder, encoder_folder, tmp_path):
    import json

    from rift_fast.cli import attack

    data = tmp_path / "reviews.csv"
    rows = ["text,label"] + [f'"a “wonderful” film {i}, naïve",{["negative", "positive"][i % 2]}' for i in range(24)]
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    for recipe in ["bert-attack", "bae"]:
        output = tmp_path / f"{recipe}.json"
        argv = ["--model", str(tiny_model_dir), "--dataset", str(data), "--attack", recipe, "--mlm", mlm_folder]
        argv += ["--sentence-encoder", encoder_folder, "--pos-tagger", "none", "--num-examples", "2"]
        argv += ["--mlm-candidates", "5"]
        assert attack.main([*argv, "--output", str(output)]) == 0
        settings = json.loads(output.read_text())["settings"]
        assert settings["recipe"] == recipe and settings["transformation"]["k"] == 5
