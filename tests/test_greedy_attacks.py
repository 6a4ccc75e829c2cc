"""DeepWordBug, TextFooler and their constraints on a tiny bag-of-words classifier: known adversarial
examples, batched == one-at-a-time, resume, no_candidate, query budgets, a stand-in sentence encoder
built from a config, a stand-in part-of-speech tagger, and the protocols."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tiny_models import WORD_SCORES as TOY_WORD_SCORES
from tiny_models import BagOfWords, tiny_bert_config
from tiny_tokenizers import FAMILIES, tokenizer_of_family, word_vocabulary
from transformers import BertModel

from rift_fast.attacks import (
    AttackCheckpoint,
    MaxModificationRatio,
    StopWords,
    UntargetedClassification,
    VictimModel,
    run_attack,
)
from rift_fast.attacks.character_edits import CharacterEdits
from rift_fast.attacks.embedding import EmbeddingCosine, EmbeddingNeighbourSwap, WordEmbedding
from rift_fast.attacks.part_of_speech import PartOfSpeech
from rift_fast.attacks.protocols import PROTOCOLS, protocol
from rift_fast.attacks.recipes import RECIPES
from rift_fast.attacks.recipes.greedy import query_budget, refuse_unenforced_options
from rift_fast.attacks.search import GreedyWordSwap
from rift_fast.attacks.sentence_encoder import SentenceEncoder, SentenceEncoderError, SentenceSimilarity, window_around
from rift_fast.attacks.text_constraints import (
    EditDistanceBudget,
    Perturbation,
    QueryBudget,
    SearchTimeConstraints,
    levenshtein,
)
from rift_fast.attacks.transformation import Transformation
from rift_fast.core.records import Example
from rift_fast.synonyms.vectors import WordVectors

# The toy victim's words and two with accents or in another script (unknown words score 0 all the same).
WORD_SCORES = TOY_WORD_SCORES | {"naïve": 0.0, "кино": 0.0}
# Hand-made vectors: good ~ excellent, great ~ grand, movie ~ film; cosines computed in the tests.
VECTORS = {
    "good": [1.0, 0.0, 0.0],
    "excellent": [0.9, 0.1, 0.0],
    "great": [0.0, 1.0, 0.0],
    "grand": [0.1, 0.95, 0.0],
    "movie": [0.0, 0.0, 1.0],
    "film": [0.05, 0.0, 1.0],
    "plot": [-1.0, -1.0, 0.2],
}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return word_vocabulary([".", ",", "“", "”", *WORD_SCORES], tmp_path_factory.mktemp("vocab"), strip_accents=False)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory, tokenizer):
    """A stand-in sentence encoder: a one-layer random BERT built from a config, saved as a folder."""
    folder = tmp_path_factory.mktemp("encoder")
    torch.manual_seed(0)
    config = tiny_bert_config(len(tokenizer))
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return SentenceEncoder(str(folder))


@pytest.fixture(scope="module")
def embedding():
    words = list(VECTORS)
    return WordEmbedding(WordVectors(words, np.array([VECTORS[w] for w in words], dtype=np.float32)), "hand-made")


def _run(tokenizer, examples, transformation, constraints, search, **kwargs):
    victim = VictimModel(BagOfWords(tokenizer, WORD_SCORES), tokenizer, batch_size=4)
    return run_attack(
        examples, victim, transformation, search, constraints, UntargetedClassification(), {}, progress=False, **kwargs
    )


def _deepwordbug(ranking="combined", max_distance=30, edits=None, budget=None):
    constraints = SearchTimeConstraints([StopWords({"the", "a", "with"})], [EditDistanceBudget(max_distance)], budget)
    transformation = CharacterEdits(seed=0) if edits is None else CharacterEdits(seed=0, edits=edits)
    search = GreedyWordSwap(UntargetedClassification(), ranking, constraints.on_text, budget)
    return transformation, constraints, search


def _pool():
    texts = [
        "“good” dull plot, naïve",
        "a good movie with great acting",
        "кино good dull plot",
        "the dull plot",
        "a movie with great acting and a good plot " * 3,
        "good",
    ]
    return [Example(t, y) for t, y in zip(texts, [1, 1, 1, 0, 1, 1])]


@pytest.mark.parametrize("ranking", ["combined", "unk", "delete"])
def test_deepwordbug_finds_the_known_adversarial_example(tokenizer, ranking):
    # s = 1.0 (good) - 0.1 (dull) = 0.9; any edit of "good" makes it an unknown token (score 0): s = -0.1.
    report = _run(tokenizer, [Example("“good” dull plot, naïve", 1)], *_deepwordbug(ranking))
    (result,) = report.results
    assert result.status == "success" and result.words_changed == 1
    before, after = "“good” dull plot, naïve".split("”"), result.adversarial.split("”")
    assert after[1] == before[1] and result.adversarial.startswith("“")  # only "good" changed
    edited = after[0][1:]
    assert edited != "good" and 1 <= levenshtein("good", edited) <= 2


def test_character_edits_are_one_of_each_kind_and_fixed_per_word():
    edits = CharacterEdits(seed=3)
    candidates = edits.candidates("Naïve")
    assert 1 <= len(candidates) <= 4 and all(levenshtein("Naïve", c) <= 2 for c in candidates)
    assert edits.candidates("Naïve") == candidates  # the same word gets the same edits in every example
    assert CharacterEdits(seed=3, edits=("insert",)).candidates("a")  # one letter: only an insertion
    assert CharacterEdits(seed=3, edits=("delete",)).candidates("a") == []
    with pytest.raises(ValueError, match="character edits"):
        CharacterEdits(edits=("flip",))


def test_combined_score_ranks_by_head_and_tail(tokenizer):
    # s = -0.1 + 0.2 + 1.0 = 1.1. Combined score (p_y = sigmoid(2s)): great 0.35 (head) + 0.38 (tail), movie
    # 0.10 + 0.04, dull negative. With one word allowed to change, only "great" is edited (s = 0.1: no flip).
    constraints = SearchTimeConstraints([StopWords({"a", "with"}), MaxModificationRatio(0.16)], [EditDistanceBudget()])
    search = GreedyWordSwap(UntargetedClassification(), "combined", constraints.on_text)
    report = _run(tokenizer, [Example("a dull movie with great acting", 1)], CharacterEdits(), constraints, search)
    (result,) = report.results
    assert result.status == "failed" and result.words_changed == 1
    assert result.adversarial.startswith("a dull movie with ") and "great" not in result.adversarial
    both = _run(tokenizer, [Example("a dull movie with great acting", 1)], *_deepwordbug("combined"))
    assert both.results[0].status == "success" and both.results[0].words_changed == 2


def test_batched_equals_one_at_a_time_and_resume(tokenizer, tmp_path):
    parts = _deepwordbug("combined")
    batched = _run(tokenizer, _pool(), *parts, examples_per_round=6)
    single = _run(tokenizer, _pool(), *parts, examples_per_round=1)
    comparable = [(r.status, r.adversarial, r.words_changed, r.queries) for r in batched.results]
    assert comparable == [(r.status, r.adversarial, r.words_changed, r.queries) for r in single.results]
    # "the dull plot": s = -0.1; an edited "dull" gives s = 0, a tie that stays class 0.
    assert [r.status for r in batched.results] == ["success", "success", "success", "failed", "success", "success"]

    path = tmp_path / "run.checkpoint.jsonl"
    _run(tokenizer, _pool(), *parts, indices=[0, 2], checkpoint=AttackCheckpoint(path, {"a": 1}))
    resumed = _run(tokenizer, _pool(), *parts, examples_per_round=2, checkpoint=AttackCheckpoint(path, {"a": 1}))
    assert [(r.status, r.adversarial, r.words_changed, r.queries) for r in resumed.results] == comparable


def test_constraints_rejecting_every_candidate_give_no_candidate(tokenizer):
    # A swap of two characters costs 2 edits: a budget of 1 rejects all of them, so nothing is scored.
    report = _run(tokenizer, [Example("good dull plot", 1)], *_deepwordbug(max_distance=1, edits=("swap",)))
    (result,) = report.results
    assert result.status == "no_candidate" and result.adversarial == "good dull plot"
    assert report.summary()["robust_accuracy"] == 0 and report.summary()["robust_accuracy_upper_bound"] == 1


def test_query_budget(tokenizer):
    with pytest.raises(ValueError, match="at least 1, got 0"):
        QueryBudget(max_queries=0)
    with pytest.raises(ValueError, match="at least 1, got 0"):
        QueryBudget(per_word=0)
    with pytest.raises(ValueError, match="exactly one"):
        QueryBudget()
    with pytest.raises(ValueError, match="at least 1, got 0"):
        query_budget(
            RECIPES["deepwordbug"].own_options(PROTOCOLS["textdefender"].recipe_options({"query_budget_per_word": 0}))
        )
    # 3 queries: the clean text and two ranking probes of the four words' eight: the ranking runs out, the
    # example fails (not no_candidate), within its budget.
    report = _run(tokenizer, [Example("good dull plot", 1)], *_deepwordbug(budget=QueryBudget(max_queries=3)))
    (result,) = report.results
    assert result.status == "failed" and result.queries == 3  # the final verdict is the clean text again
    assert QueryBudget(per_word=50).limit(7) == 350
    with pytest.raises(ValueError, match="does not enforce a query budget"):
        refuse_unenforced_options("pwws", PROTOCOLS["textdefender"].recipe_options({}))


def test_textfooler_parts_find_the_known_adversarial_example(tokenizer, embedding, encoder):
    # Deletion ranks good and great first (1.0 each, good earlier); good's neighbour excellent raises p_y, so
    # great -> grand (cosine 0.99) is the flip: s = 1 + 0.2 - 1.5 = -0.3.
    similarity = SentenceSimilarity(encoder, threshold=0.0, window=15)
    per_word = [StopWords({"a", "with"}), EmbeddingCosine(embedding, 0.5)]
    constraints = SearchTimeConstraints(per_word, [similarity])
    search = GreedyWordSwap(UntargetedClassification(), "delete", [similarity])
    report = _run(
        tokenizer,
        [Example("a good movie with great acting", 1)],
        EmbeddingNeighbourSwap(embedding, k=2),
        constraints,
        search,
    )
    (result,) = report.results
    assert result.status == "success" and result.adversarial == "a good movie with grand acting"
    assert constraints.describe()["checked_on_each_proposed_text"]["sentence_similarity"]["encoder"] == encoder.name


def test_the_attacks_forward_time_counts_its_sentence_encoder(tokenizer, embedding, encoder, monkeypatch):
    similarity = SentenceSimilarity(encoder, threshold=0.0, window=3)  # the texts are longer: encoded
    constraints = SearchTimeConstraints([StopWords({"a", "with"}), EmbeddingCosine(embedding, 0.5)], [similarity])
    assert constraints.auxiliary_models() == [encoder]
    victims = []
    monkeypatch.setattr(VictimModel, "__init__", _recorded(VictimModel.__init__, victims))
    before = encoder.forward_seconds
    encoder._cache.clear()  # every window is encoded again
    report = _run(
        tokenizer,
        [Example("a good movie with great acting", 1), Example("“Bad” acting, a dull plot", 0)],
        EmbeddingNeighbourSwap(embedding, k=2),
        constraints,
        GreedyWordSwap(UntargetedClassification(), "delete", [similarity]),
    )
    (victim,) = victims
    assert encoder.forward_seconds > before
    assert report.forward_seconds == pytest.approx(victim.forward_seconds + encoder.forward_seconds - before)


def _recorded(init, instances):
    """``init`` that also appends each new instance to ``instances``."""

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        instances.append(self)

    return recording


def test_embedding_neighbours_and_cosine(embedding):
    brute = embedding.unit @ embedding.unit[embedding.row_of["great"]]
    expected = [embedding.words[r] for r in np.argsort(-brute) if embedding.words[r] != "great"][:3]
    assert [w for w, _ in embedding.nearest("GREAT", 3)] == expected
    assert EmbeddingNeighbourSwap(embedding, k=1).candidates("Great") == ["Grand"]
    assert EmbeddingCosine(embedding, 0.5).keep(("good", "plot"), 0, ["excellent", "plot", "кино"]) == [
        True,
        False,
        False,
    ]
    with pytest.raises(ValueError, match="all zeros"):
        WordEmbedding(WordVectors(["zero"], np.zeros((1, 3), dtype=np.float32)), "bad")


def test_sentence_similarity_windows_and_threshold(encoder):
    words = tuple(f"w{i}" for i in range(20))
    assert window_around(words, 0, 15) == words[:15]
    assert window_around(words, 19, 15) == words[5:]
    assert window_around(words, 10, 15) == words[3:18]
    assert window_around(words[:4], 2, 15) == words[:4]
    long = ("good", "movie", "with", "great", "acting", "the", "plot", "dull") * 2
    same = Perturbation.single(long, 3, "great")
    changed = Perturbation.single(long, 3, "кино")
    strict = SentenceSimilarity(encoder, threshold=1.0, window=15)
    assert strict.similarities([same])[0] == pytest.approx(1.0, abs=1e-6)
    assert strict.accepts([changed]) == [False]
    assert strict.accepts([Perturbation.single(long[:5], 3, "кино")]) == [True]  # shorter than the window


def test_sentence_encoder_that_cannot_be_loaded_is_named(tmp_path):
    with pytest.raises(SentenceEncoderError, match="no/such/encoder"):
        SentenceEncoder(str(tmp_path / "no/such/encoder"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SentenceEncoderError, match="empty"):
        SentenceEncoder(str(tmp_path / "empty"))


def test_part_of_speech_with_a_stand_in_tagger():
    lexicon = {"great": "ADJ", "grand": "ADJ", "run": "VERB", "film": "NOUN", "quickly": "ADV"}
    seen = []

    def tagger(sentences):
        seen.extend(sentences)
        return [[lexicon.get(w, "X") for w in words] for words in sentences]

    constraint = PartOfSpeech(tagger, "lexicon")
    words = ("a", "b", "c", "d", "e", "great", "f", "g", "h", "i")
    assert constraint.keep(words, 5, ["grand", "quickly"]) == [True, False]
    assert seen[0] == ["b", "c", "d", "e", "great", "f", "g", "h"]  # 4 words before, 3 after
    assert PartOfSpeech(tagger, "lexicon").keep(("run",), 0, ["film"]) == [True]  # nouns and verbs swap
    assert PartOfSpeech(tagger, "lexicon", allow_verb_noun_swap=False).keep(("run",), 0, ["film"]) == [False]


def test_nltk_tagger_without_its_data_says_how_to_install_it():
    import nltk

    from rift_fast.attacks.part_of_speech import NLTK_TAGGER_RESOURCE, NltkPerceptronTagger, TaggerUnavailableError

    try:
        nltk.data.find(NLTK_TAGGER_RESOURCE + "/")
    except LookupError:
        with pytest.raises(TaggerUnavailableError, match="nltk.downloader averaged_perceptron_tagger_eng"):
            NltkPerceptronTagger()
    else:
        assert NltkPerceptronTagger()([["a", "good", "movie"]])[0][1] == "ADJ"


def test_protocols_record_their_values_and_take_overrides():
    textdefender = protocol("textdefender")
    options = textdefender.recipe_options({"max_modification_ratio": 0.1, "seed": 7})
    assert options.value("max_modification_ratio") == 0.1 and options.value("seed") == 7  # the user's values win
    assert options.value("neighbours") == 50 and options.value("sentence_similarity") == pytest.approx(0.840845057)
    assert options.value("query_budget_per_word") == 50 and options.value("min_cosine") is None
    assert textdefender.pool_size == 1000
    assert not textdefender.admits(Example("a good movie, really", 1))  # 4 space-separated tokens
    assert textdefender.admits(Example("a good movie, really now", 1))
    assert protocol("rift").recipe_options({}).value("max_modification_ratio") is None
    with pytest.raises(ValueError, match="unknown protocol"):
        protocol("openattack")
    with pytest.raises(ValueError, match="unknown attack options"):
        textdefender.recipe_options({"population": 3})


def test_attack_cli_runs_deepwordbug_under_the_textdefender_protocol(tiny_model_dir, tmp_path, capsys):
    import csv
    import json

    from rift_fast.cli import attack

    data, test = tmp_path / "reviews.csv", tmp_path / "reviews_test.csv"
    for path, rows in ((data, 24), (test, 6)):
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for i in range(rows):
                short = i % 3 == 0  # 3 tokens: left out by TextDefender's length rule
                text = "naïve “film” 3D" if short else f"a wonderful film, with a touching story number {i}"
                writer.writerow([text, ["negative", "positive"][i % 2]])
    output = tmp_path / "attack.json"
    argv = ["--model", str(tiny_model_dir), "--dataset", str(data), "--test-file", str(test), "--attack", "deepwordbug"]
    argv += ["--protocol", "textdefender", "--max-modification-ratio", "0.5", "--output", str(output)]
    assert attack.main(argv) == 0
    settings = json.loads(output.read_text())["settings"]
    assert settings["protocol"]["name"] == "textdefender" and settings["protocol"]["pool_size"] == 1000
    constraints = settings["constraints"]
    assert constraints["max_modification_ratio"] == {"ratio": 0.5}  # the user's value over the protocol's 0.3
    assert settings["transformation"]["draws"] == 50 and settings["search"]["ranking"] == "unk"
    assert constraints["query_budget"]["per_word"] == 50
    assert constraints["checked_on_each_proposed_text"]["max_edit_distance"]["max_distance"] == 30
    results = json.loads(output.read_text())["results"]
    assert 0 < len(results) <= settings["protocol"]["split_size_after_length_rule"]
    assert all(len(r["original"].split(" ")) > 4 for r in results)
    assert "--protocol textdefender: 2 of the 6 test examples have at most 4 space-separated tokens" in (
        capsys.readouterr().out
    )
    assert settings["protocol"]["split_size_after_length_rule"] == 4
    with pytest.raises(ValueError, match=r"max_edit_distance\.max_distance: 30 \(checkpoint\) vs 10"):
        attack.main([*argv, "--max-edit-distance", "10", "--resume"])  # another setting: resume refused
    with pytest.raises(ValueError, match="'pwws' does not enforce a query budget"):
        attack.main([*argv[:4], "--attack", "pwws", "--protocol", "textdefender", "--output", str(output)])


class TokenScores(torch.nn.Module):
    """logits = [-s, s], s the sum of the scores of tokens that are whole words of WORD_SCORES, for any
    tokenizer (markers ``Ġ``, ``▁`` and case removed)."""

    def __init__(self, tokenizer):
        super().__init__()
        self.scores = torch.nn.Embedding(len(tokenizer), 1)
        with torch.no_grad():
            self.scores.weight.zero_()
            for token, token_id in tokenizer.get_vocab().items():
                self.scores.weight[token_id, 0] = WORD_SCORES.get(token.lstrip("Ġ▁").lower(), 0.0)
        self.config = SimpleNamespace(max_position_embeddings=64)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        s = (self.scores(input_ids)[..., 0] * attention_mask).sum(-1)
        return SimpleNamespace(logits=torch.stack([-s, s], -1))


GOAL = (UntargetedClassification(), {})


@pytest.mark.parametrize("family", FAMILIES)
def test_both_searches_on_every_tokenizer_family_and_sentence_pairs(family, tmp_path, embedding, encoder):
    family_tokenizer = tokenizer_of_family(family, [w for w in WORD_SCORES if w.isascii()], tmp_path)
    victim = VictimModel(TokenScores(family_tokenizer), family_tokenizer, batch_size=3)
    parts = _deepwordbug("combined")
    single = run_attack([Example("Good dull plot, naïve 3D", 1)], victim, *parts[::2], parts[1], *GOAL, progress=False)
    pair_example = Example("the plot", 1, text_pair="good dull plot")
    pair = run_attack([pair_example], victim, *parts[::2], parts[1], *GOAL, progress=False)
    (single_result,), (pair_result,) = single.results, pair.results
    assert single_result.status == "success" and single_result.words_changed == 1
    assert single_result.adversarial.endswith(" dull plot, naïve 3D")
    assert pair_result.status == "success" and pair_result.original == "good dull plot"  # only the hypothesis
    assert pair_result.adversarial.endswith(" dull plot")

    similarity = SentenceSimilarity(encoder, threshold=0.0)
    constraints = SearchTimeConstraints([StopWords({"a", "with"}), EmbeddingCosine(embedding)], [similarity])
    search = GreedyWordSwap(UntargetedClassification(), "delete", [similarity])
    report = run_attack(
        [Example("a good movie with Great acting", 1)],
        victim,
        EmbeddingNeighbourSwap(embedding, k=2),
        search,
        constraints,
        UntargetedClassification(),
        {},
        progress=False,
    )
    assert report.results[0].adversarial == "a good movie with Grand acting"


def test_textfooler_recipe_from_a_vectors_file(tokenizer, encoder, tmp_path):
    from rift_fast.attacks import RecipeOptions, build_attack
    from rift_fast.synonyms import SynonymIndex

    vectors = tmp_path / "vectors.txt"
    vectors.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in VECTORS.items()), encoding="utf-8")
    victim = VictimModel(BagOfWords(tokenizer, WORD_SCORES), tokenizer, batch_size=4)
    options = RecipeOptions(word_vectors=str(vectors), sentence_encoder=encoder.name, pos_tagger="none")
    attack = build_attack("textfooler", victim, SynonymIndex({}), False, options)
    report = attack.run([Example("a good movie with great acting", 1)], victim, attack.settings(), progress=False)
    assert report.results[0].adversarial == "a good movie with grand acting"
    settings = attack.settings()
    assert settings["transformation"] == {
        "transformation": "embedding_neighbour_swap",
        "vectors": "vectors:vectors.txt",
        "k": 50,
    }
    assert settings["constraints"]["embedding_cosine"]["min_cosine"] == 0.5
    assert settings["search"] == {"search": "greedy_wir", "ranking": "delete"}
    with pytest.raises(FileNotFoundError, match="'missing.txt': no such file, and not a name of the vectors"):
        build_attack("textfooler", victim, SynonymIndex({}), False, RecipeOptions(word_vectors="missing.txt"))
    parity = build_attack("deepwordbug", victim, SynonymIndex({}), False, RecipeOptions(textattack_parity=True))
    assert parity.search.settings() == {"search": "greedy_wir", "ranking": "unk", "unknown_token": "[UNK]"}


def test_textdefender_draws_of_character_edits_and_rounded_up_budget():
    drawn = CharacterEdits(seed=1, draws=50).candidates("wonderful")
    assert 4 < len(drawn) <= 50 and len(set(drawn)) == len(drawn)
    assert all(levenshtein("wonderful", c) <= 2 for c in drawn)
    assert CharacterEdits(seed=1, draws=50).candidates("wonderful") == drawn
    with pytest.raises(ValueError, match="draws must be at least 1"):
        CharacterEdits(draws=0)
    options = protocol("textdefender").recipe_options({})
    assert options.value("character_edit_draws") == 50 and options.value("textattack_parity")


def test_a_budget_cut_while_ranking_is_a_failure_not_no_candidate(tokenizer):
    # The clean text and one of the three deletion probes fit a budget of 2: the ranking is cut, and the
    # example fails on its budget (TextAttack's "search over"), although nothing was swapped.
    transformation, constraints, search = _deepwordbug("delete", budget=QueryBudget(max_queries=2))
    report = _run(tokenizer, [Example("good good dull plot", 1)], transformation, constraints, search)
    assert report.results[0].status == "failed" and report.results[0].queries == 2


class FixedCandidates(Transformation):
    """Hand-made candidates per word."""

    def __init__(self, table):
        self.table = table

    def candidates(self, word):
        return list(self.table.get(word, []))

    def describe(self):
        return {"transformation": "fixed"}


def test_among_flipping_swaps_the_most_similar_wins(tokenizer, encoder):
    # s = 1.0 (great); grand (-1.5), dull (-0.1) and film (0: a tie, class 0) all flip the label, with
    # different losses: the sentence similarity, not the loss, decides (TextAttack's rule).
    words = ("great", "plot", *(["the"] * 14))
    similarity = SentenceSimilarity(encoder, threshold=0.0)
    constraints = SearchTimeConstraints([StopWords({"the"})], [similarity])
    search = GreedyWordSwap(UntargetedClassification(), "delete", [similarity])
    candidates = ["grand", "dull", "film"]
    report = _run(tokenizer, [Example(" ".join(words), 1)], FixedCandidates({"great": candidates}), constraints, search)
    scores = similarity.similarities([Perturbation.single(words, 0, c) for c in candidates])
    assert len(set(scores)) == 3 and int(np.argmax(scores)) != 0, scores  # not the lowest loss (grand)
    assert report.results[0].adversarial.split()[0] == candidates[int(np.argmax(scores))]
    short = _run(tokenizer, [Example("great plot", 1)], FixedCandidates({"great": candidates}), constraints, search)
    assert short.results[0].adversarial == "grand plot"  # shorter than the window: the lowest loss


def test_sentence_embeddings_do_not_depend_on_the_batch(encoder):
    texts = ["good", "a good movie with great acting , “ bad ” plot", "bad .", "great acting", "movie " * 30]
    together = encoder.encode(texts)
    encoder._cache.clear()
    alone = np.concatenate([encoder.encode([text]) for text in reversed(texts)])[::-1]
    np.testing.assert_allclose(together, alone, atol=1e-5)
