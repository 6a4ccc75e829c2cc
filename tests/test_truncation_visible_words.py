"""Words the model never reads: under truncation (right, or left when the tokenizer declares it), words
past the model's window are neither attacked nor counted, in every search and transformation (PWWS, the
GA, the gradient search, the greedy searches of TextFooler / DeepWordBug / BERT-Attack / BAE, character
edits, a transformation that reads the current text), and the modification-ratio budget is taken over the
visible words; each result records its visible words and the summary of every report shows them."""

import csv
import io
import json
import math

import pytest
from tiny_models import BagOfWords
from tiny_tokenizers import word_vocabulary

from rift_fast.attacks import (
    PWWS,
    Constraints,
    GeneticAttack,
    GradientGuidedGreedy,
    MaxModificationRatio,
    SynonymSwap,
    UntargetedClassification,
    VictimModel,
    run_attack,
)
from rift_fast.attacks.character_edits import CharacterEdits
from rift_fast.attacks.reports import to_csv, to_html
from rift_fast.attacks.runner import ExampleResult
from rift_fast.attacks.search import GreedyWordSwap
from rift_fast.attacks.text import WordSpans
from rift_fast.attacks.transformation import PendingChoices, Transformation, visible_positions
from rift_fast.core.records import Example
from rift_fast.synonyms import SynonymIndex

SCORES = {"good": 1.0, "great": 1.0, "fine": 0.6, "poor": -1.0, "dull": -1.0, "movie": 0.1, "film": 0.0, "a": 0.0}
SYNONYMS = SynonymIndex({"good": ["poor"], "great": ["dull"], "fine": ["poor"], "movie": ["film"]})
PATTERN = ["good", "movie", "a", "great", "fine"]


def _text(words: int, offset: int = 0) -> str:
    """``words`` words of the pattern, one WordPiece token each (so a window of n + 2 tokens shows n words)."""
    return " ".join(PATTERN[(offset + k) % len(PATTERN)] for k in range(words))


@pytest.fixture
def tokenizer(tmp_path):
    return word_vocabulary(list(SCORES), tmp_path)


class Recording(Transformation):
    """A transformation that serves another's candidates and records each word position it is asked about."""

    def __init__(self, inner: Transformation, reads_current_text: bool = False):
        self.inner, self.positions = inner, []
        self.reads_current_text = reads_current_text  # type: ignore[misc]  # per instance in this test

    def candidates(self, word):
        return self.inner.candidates(word)

    def candidates_at(self, sites):
        self.positions += [site.position for site in sites]
        return self.inner.candidates_at(sites)

    def describe(self):
        return {"recording": self.inner.describe()}


def _attack(tokenizer, example, search_name, window, ratio=None, side="right"):
    """(report, recorded positions) of one attack with a window of ``window`` words."""
    tokenizer.truncation_side = side
    victim = VictimModel(BagOfWords(tokenizer, SCORES), tokenizer, max_length=window + 2, batch_size=8)
    goal = UntargetedClassification()
    constraints = Constraints([MaxModificationRatio(ratio)] if ratio is not None else [])
    inner = CharacterEdits(seed=0) if search_name == "deepwordbug" else SynonymSwap(SYNONYMS)
    transformation = Recording(inner, reads_current_text=search_name == "pending")
    searches = {
        "pwws": lambda: PWWS(goal, "[UNK]"),
        "ga": lambda: GeneticAttack(goal, population=8, generations=6, seed=0),
        "gradient": lambda: GradientGuidedGreedy(
            goal, victim, SYNONYMS.vocab_table(tokenizer, k=2), candidates=4, backend="reference"
        ),
        "textfooler": lambda: GreedyWordSwap(goal, "delete"),
        "bert-attack": lambda: GreedyWordSwap(goal, "unk", unknown_token="[UNK]"),
        "deepwordbug": lambda: GreedyWordSwap(goal, "combined"),
        "pending": lambda: GreedyWordSwap(goal, "delete", pending=PendingChoices(transformation, constraints)),
    }
    report = run_attack(
        [example], victim, transformation, searches[search_name](), constraints, goal, {}, progress=False
    )
    return report, transformation.positions


def _changed(result: ExampleResult) -> list[int]:
    before, after = WordSpans(result.original).words, WordSpans(result.adversarial or result.original).words
    assert len(before) == len(after)
    return [k for k, (a, b) in enumerate(zip(before, after)) if a != b]


SEARCHES = ["pwws", "ga", "gradient", "textfooler", "bert-attack", "deepwordbug", "pending"]


@pytest.mark.parametrize("search_name", SEARCHES)
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("words,window", [(59, 13), (30, 9), (12, 5)])
def test_only_visible_words_are_attacked_and_counted(tokenizer, search_name, side, words, window):
    report, asked = _attack(tokenizer, Example(_text(words), 1), search_name, window, side=side)
    (result,) = report.results
    visible = range(0, window) if side == "right" else range(words - window, words)
    assert result.truncated and result.num_words == words and result.visible_words == window
    assert set(asked) <= set(visible), "a word the model never reads was offered to the transformation"
    assert set(_changed(result)) <= set(visible)
    assert result.status == "success"  # every visible window holds enough words to flip
    assert result.modification_rate == result.words_changed / window
    summary = report.summary()
    assert (summary["words"], summary["visible_words"]) == (words, window)
    assert summary["mean_modification_rate"] == pytest.approx(result.words_changed / window)


@pytest.mark.parametrize("search_name", SEARCHES)
@pytest.mark.parametrize("side", ["right", "left"])
def test_the_modification_ratio_is_taken_over_the_visible_words(tokenizer, search_name, side):
    # The instance: under a 10% cap, 9 visible words of 59 allow one change (not six).
    report, _ = _attack(tokenizer, Example(_text(59), 1), search_name, 9, ratio=0.1, side=side)
    (result,) = report.results
    assert result.visible_words == 9 and result.words_changed <= math.ceil(0.1 * 9) == 1
    # 9 visible words need more than one change to flip: the attack fails within its budget.
    assert result.status == "failed" and result.words_changed <= 1


@pytest.mark.parametrize("search_name", ["pwws", "ga", "textfooler"])
def test_a_ratio_over_the_visible_words_allows_what_it_should(tokenizer, search_name):
    # 30% of 9 visible words: three changes, enough to flip these 9 words.
    report, _ = _attack(tokenizer, Example(_text(59), 1), search_name, 9, ratio=0.3)
    (result,) = report.results
    assert result.status == "success" and 1 < result.words_changed <= math.ceil(0.3 * 9) == 3


def test_an_untruncated_text_reads_every_word(tokenizer):
    report, asked = _attack(tokenizer, Example(_text(7), 1), "pwws", 20)
    (result,) = report.results
    assert not result.truncated and result.visible_words == result.num_words == 7
    assert sorted(set(asked)) == list(range(7))  # every word is offered


def test_a_word_cut_by_the_window_is_not_visible():
    spans = WordSpans("a wonderful film")
    assert visible_positions(spans, (0, 6)) == [0]  # "wonderful" is cut after "wo": not read whole
    assert visible_positions(spans, (5, 16)) == [2]  # left truncation inside "wonderful"
    assert visible_positions(spans, (0, 16)) == [0, 1, 2] == visible_positions(spans, None)
    assert visible_positions(spans, (0, 0)) == []


def test_the_visible_span_of_a_word_split_into_pieces(tmp_path):
    # "wonderful" is three pieces: a window that keeps only some of them does not show the word.
    tokenizer = word_vocabulary(["a", "film", "won", "##der", "##ful"], tmp_path)
    victim = VictimModel(BagOfWords(tokenizer, {"film": 1.0}), tokenizer, max_length=5, batch_size=2)
    text = "a wonderful film"  # [CLS] a won ##der ##ful film [SEP]: 7 tokens
    assert victim.visible_span((text, None), 0) == ((0, 8), True)  # a won ##der
    assert visible_positions(WordSpans(text), (0, 8)) == [0]
    tokenizer.truncation_side = "left"
    assert victim.visible_span((text, None), 0) == ((5, 16), True)  # ##der ##ful film
    assert visible_positions(WordSpans(text), (5, 16)) == [2]


def test_visible_words_in_every_report(tokenizer):
    report, _ = _attack(tokenizer, Example(_text(59), 1), "pwws", 13)
    (result,) = report.results
    summary = report.to_json()["summary"]
    assert (summary["words"], summary["visible_words"]) == (59, 13)
    assert json.loads(json.dumps(report.to_json()))["results"][0]["visible_words"] == 13
    assert "Words the model reads (visible words, over which modification rates are taken): 13 of 59" in (
        report.to_markdown()
    )
    (row,) = csv.DictReader(io.StringIO(to_csv(report)))
    assert (row["num_words"], row["visible_words"]) == ("59", "13")
    page = to_html(report, b"")
    assert f"{result.words_changed} of 13 visible words changed" in page and "13 of 59" in page


def test_records_without_visible_words_read_as_every_word():
    # Checkpoints written before visible words were recorded: every word counts, as then.
    old = ExampleResult(0, 1, "success", "good movie", "poor movie", 1, 0, 1, 2, 3, False)
    assert old.visible_words is None and old.words_read == 2 and old.modification_rate == 0.5
    nothing_read = ExampleResult(0, 1, "failed", "good", None, 1, 1, 0, 1, 1, True, visible_words=0)
    assert nothing_read.modification_rate == 0.0
