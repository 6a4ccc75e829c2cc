"""What a word is (one segmenter for attacks and synonym sources), how words are looked up
(NFKC, lower case, apostrophes, accent-stripped fallback), and WordNet synonyms as a property of
the word, with several instances and variants of each."""

import pytest
from tiny_models import BagOfWords
from transformers import BertTokenizerFast

from rift_fast.attacks import (
    PWWS,
    Constraints,
    GeneticAttack,
    SynonymSwap,
    UntargetedClassification,
    VictimModel,
    build_target,
    run_attack,
)
from rift_fast.attacks.text import WordSpans
from rift_fast.attacks.transformation import substitution_candidates
from rift_fast.core.records import Example
from rift_fast.core.words import accent_stripped, is_single_word, lookup_form, lookup_forms, vocabulary
from rift_fast.synonyms import SynonymIndex

# ------------------------------------------------------------------------------------ segmenter
WORDS_OF = [
    ("Her résumé is thin.", ("Her", "résumé", "is", "thin")),  # the instance
    ("A naïve plot.", ("A", "naïve", "plot")),  # the instance
    ("Her re\u0301sume\u0301 is thin.", ("Her", "re\u0301sume\u0301", "is", "thin")),  # combining accents
    ("Кот спит, а пёс — нет.", ("Кот", "спит", "а", "пёс", "нет")),  # Cyrillic, an em dash
    ("Η γάτα κοιμάται.", ("Η", "γάτα", "κοιμάται")),  # Greek
    ("我喜欢这部电影。很好！", ("我喜欢这部电影", "很好")),  # CJK: a run between punctuation is a word
    ("كتاب جميل، حقا", ("كتاب", "جميل", "حقا")),  # Arabic, Arabic comma
    ("मुझे फ़िल्म पसंद है", ("मुझे", "फ़िल्म", "पसंद", "है")),  # Devanagari vowel signs (marks) inside words
    ("می\u200cخواهم", ("می\u200cخواهم",)),  # Persian zero-width non-joiner inside a word
    ("I don’t know, it´s fine; rock'n'roll", ("I", "don’t", "know", "it´s", "fine", "rock'n'roll")),
    ("She said ‘word’ and 'tis over' now", ("She", "said", "word", "and", "tis", "over", "now")),  # quotes, edges
    ("the 2nd 3D film, 3.5 stars, 42 min", ("the", "2nd", "3D", "film", "3", "5", "stars", "42", "min")),
    (
        "a well-made, non‑stop film -- good--bad, good—bad - ok",
        ("a", "well-made", "non‑stop", "film", "good", "bad", "good", "bad", "ok"),
    ),  # hyphens join, dashes split
    ("great😀 movie ❤️ 👍🏽fun snake_case", ("great", "movie", "fun", "snake", "case")),  # emoji, underscores
    ("ＧＲＥＡＴ ﬁlm", ("ＧＲＥＡＴ", "ﬁlm")),  # compatibility characters stay as written
    # Default-ignorable characters (invisible; many tokenizers delete them) join a word, never end one.
    ("A won\xadder\xadful film.", ("A", "won\xadder\xadful", "film")),  # soft hyphens
    ("A good\u200bmovie.", ("A", "good\u200bmovie")),  # zero-width space: BERT reads "goodmovie"
    ("\u200bgood movie\u200b.", ("good", "movie")),  # at a word's edge: not part of it
    ("the\u2060end, \ufeffHello\u200e world", ("the\u2060end", "Hello", "world")),  # word joiner, BOM, LRM
    ("don\xad’t well-\u200bmade 3\u200b5", ("don\xad’t", "well-\u200bmade", "3\u200b5")),
    ("Кот\xadик γά\u200dτα", ("Кот\xadик", "γά\u200dτα")),  # other scripts
    ("\u3164 \u200b\xad \ufe0f", ()),  # a Hangul filler and other invisible characters alone: no word
    ("", ()),
    ("... !!! ’’", ()),
]


@pytest.mark.parametrize("text,words", WORDS_OF)
def test_words_of_a_text(text, words):
    assert WordSpans(text).words == words
    assert len(WordSpans(text)) == len(words)


@pytest.mark.parametrize("text", [text for text, words in WORDS_OF if words])
def test_replacing_any_word_keeps_the_rest_of_the_text_and_never_merges(text):
    spans = WordSpans(text)
    for position, (start, end) in enumerate(spans.spans):
        for substitute in ("X", "ok'd", "ho-hum", "2nd"):
            replaced, new_spans = spans.replace_with_spans({position: substitute})
            assert replaced == text[:start] + substitute + text[end:]
            again = WordSpans(replaced)
            assert again.spans == tuple(new_spans)  # same words, none merged with a neighbour
            assert again.words[position] == substitute


def test_long_text():
    sentence = "Her résumé isn’t thin; the naïve 2nd plot of Кот — well-made! "
    text = sentence * 5000
    spans = WordSpans(text)
    assert len(spans) == 11 * 5000
    assert spans.words[:11] == (
        "Her",
        "résumé",
        "isn’t",
        "thin",
        "the",
        "naïve",
        "2nd",
        "plot",
        "of",
        "Кот",
        "well-made",
    )
    assert spans.replace({11 * 4999 + 1: "CV"}) == sentence * 4999 + sentence.replace("résumé", "CV")


@pytest.mark.parametrize(
    "text,single",
    [
        ("naïve", True),
        ("ho-hum", True),
        ("don't", True),
        ("3d", True),
        ("not_bad", False),
        ("ice cream", False),
        ("good,", False),
        ("-ish", False),
        ("", False),
    ],
)
def test_single_word(text, single):
    assert is_single_word(text) is single


def test_vocabulary_is_the_lookup_forms_of_the_words():
    assert vocabulary(["A great, boring film.", "GREAT! Naïve don’t"]) == [
        "a",
        "boring",
        "don't",
        "film",
        "great",
        "naïve",
    ]


# ------------------------------------------------------------------------------- lookup rule
@pytest.mark.parametrize(
    "word,forms",
    [
        ("naïve", ("naïve", "naive")),
        ("NAÏVE", ("naïve", "naive")),
        ("nai\u0308ve", ("naïve", "naive")),
        ("Film", ("film",)),
        ("don’t", ("don't",)),
        ("it´s", ("it's",)),
        ("ＧＲＥＡＴ", ("great",)),
        ("ﬁlm", ("film",)),
        ("Кот", ("кот",)),
        ("пёс", ("пёс", "пес")),
        ("ø", ("ø",)),
        ("won\xadder\xadful", ("wonderful",)),  # default-ignorable characters removed
        ("Good\u200bMovie", ("goodmovie",)),
        ("Na\xadïve", ("naïve", "naive")),
        ("do\u2060n’t", ("don't",)),
    ],
)
def test_lookup_forms(word, forms):
    assert lookup_forms(word) == forms
    assert lookup_form(word) == forms[0] and accent_stripped(word) == forms[-1]


def test_index_lookup_normalises_both_sides():
    index = SynonymIndex(
        {
            "naive": ["gullible"],
            "cafe\u0301": ["bistro"],
            "don't": ["do"],
            "US": ["America"],
            "us": [],
            "élite": [],
            "elite": ["select"],
        }
    )
    assert index.synonyms("NAÏVE") == ["gullible"]  # accent-stripped fallback
    assert index.synonyms("Café") == ["bistro"]  # the entry written with a combining accent
    assert index.synonyms("DON’T") == ["do"]
    assert index.synonyms("US") == ["America"] and index.synonyms("Us") == []  # as given first
    assert index.synonyms("Élite") == []  # an entry in lookup form wins over the fallback
    assert index.synonyms("ÉLITE") == [] and index.synonyms("Elite") == ["select"]
    assert index.synonyms("qwerty") == []


def test_words_with_invisible_characters_find_their_synonyms():
    index = SynonymIndex({"wonderful": ["marvellous", "won\xadder\xadful"], "good": ["fine"]})
    assert index.synonyms("won\xadder\xadful") == index.synonyms("WON\u200bDER\u200dFUL") == index["wonderful"]
    assert substitution_candidates("Won\xadder\xadful", index) == ["Marvellous"]  # itself left out
    assert substitution_candidates("go\u2060od", index) == ["fine"]
    assert vocabulary(["A won\xadder\xadful, \u200bgood film."]) == ["a", "film", "good", "wonderful"]


def test_candidates_keep_case_and_drop_the_word_itself_and_multiword_entries():
    index = SynonymIndex({"naïve": ["gullible", "naive", "Naïve", "ice cream", "good,", "ho-hum"]})
    assert substitution_candidates("naïve", index) == ["gullible", "ho-hum"]
    assert substitution_candidates("Naïve", index) == ["Gullible", "Ho-hum"]
    assert substitution_candidates("NAÏVE", index) == ["GULLIBLE", "HO-HUM"]


def test_real_neighbour_json_lookup(counterfitted_neighbours_path):
    index = SynonymIndex.from_neighbour_json(counterfitted_neighbours_path)
    assert index.synonyms("naïve") == ["gullible", "unsuspecting", "naive"]  # the instance
    assert index.synonyms("Nai\u0308ve") == index.synonyms("NAÏVE") == ["gullible", "unsuspecting", "naive"]
    assert substitution_candidates("Naïve", index) == ["Gullible", "Unsuspecting"]
    assert index.synonyms("élite") == ["elitist", "elites", "marksman"]  # only "elite" is in the file
    assert index.synonyms("RÔLE") == ["rolle", "roles"]
    assert index.synonyms("coöperate") == index.synonyms("cooperate")
    assert index.synonyms("résumé") == []  # in the file, without neighbours: not those of "resume"
    example = Example("Her résumé is thin.", 1)
    assert (
        build_target(0, example, SynonymSwap(index), Constraints()).attackable == []
    )  # "thin" is a scikit-learn stop word
    target = build_target(0, example, SynonymSwap(index), Constraints([]))
    assert target.spans.words == ("Her", "résumé", "is", "thin")
    assert target.choices == [
        ["Her", "His", "Sa"],
        ["résumé"],
        ["is"],
        ["thin", "darn", "geez", "golly", "slender", "blimey"],
    ]
    assert target.attackable == [0, 3]


# ------------------------------------------------------------------------- attack on real text
ACCENT_SCORES = {
    "resume": 1.0,
    "naive": 1.0,
    "cv": -0.5,
    "gullible": -0.5,
    "her": 0.0,
    "looks": 0.0,
    "next": 0.0,
    "to": 0.0,
    "the": 0.0,
    "menu": 0.0,
    "r": 3.0,
    "x": -9.0,
    "sum": 3.0,
    "quantity": -9.0,
    "is": 0.0,
    "thin": 0.0,
}
# "r" and "sum" are the fragments the ASCII segmenter attacked in "résumé": they must never be touched.
ACCENT_SYNONYMS = SynonymIndex({"résumé": ["cv"], "naïve": ["naive", "gullible"], "r": ["x"], "sum": ["quantity"]})


@pytest.fixture(scope="module")
def accent_tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("accent_vocab")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *ACCENT_SCORES]) + "\n")
    return BertTokenizerFast(str(folder / "vocab.txt"))  # lower case, accents stripped


@pytest.mark.parametrize(
    "search",
    [PWWS(UntargetedClassification(), "[UNK]"), GeneticAttack(UntargetedClassification(), population=6, generations=5)],
)
def test_attack_changes_only_whole_words_in_their_case(accent_tokenizer, search):
    victim = VictimModel(BagOfWords(accent_tokenizer, ACCENT_SCORES), accent_tokenizer, batch_size=4)
    examples = [Example("Her RÉSUMÉ looks Naïve next to the café’s menu.", 1), Example("Her résumé is thin.", 1)]
    report = run_attack(
        examples,
        victim,
        SynonymSwap(ACCENT_SYNONYMS),
        search,
        Constraints([]),
        UntargetedClassification(),
        {"test": True},
        progress=False,
    )
    two_swaps, one_swap = report.results
    assert two_swaps.status == "success" and two_swaps.words_changed == 2 and two_swaps.num_words == 9
    assert two_swaps.adversarial == "Her CV looks Gullible next to the café’s menu."
    assert one_swap.status == "success" and one_swap.words_changed == 1 and one_swap.num_words == 4
    assert one_swap.adversarial == "Her cv is thin."  # the whole word; never "rséquantityé"
    for result in report.results:
        original, adversarial = WordSpans(result.original), WordSpans(result.adversarial or result.original)
        changed = [i for i, (a, b) in enumerate(zip(original.words, adversarial.words)) if a != b]
        assert len(original) == len(adversarial) and len(changed) == result.words_changed
        unchanged = dict(enumerate(original.words))
        assert adversarial.replace({i: unchanged[i] for i in changed}) == result.original


INVISIBLE_SCORES = {"a": 0.0, "wonderful": 1.0, "awful": -1.0, "film": 0.0, "won": 3.0, "earn": -9.0, "der": 0.0}
# "won", "der" and "ful" are the fragments the soft hyphens once cut "won\xadder\xadful" into: never touched.
INVISIBLE_SYNONYMS = SynonymIndex({"wonderful": ["awful"], "won": ["earn"], "der": ["dir"], "ful": ["full"]})


@pytest.mark.parametrize(
    "search",
    [PWWS(UntargetedClassification(), "[UNK]"), GeneticAttack(UntargetedClassification(), population=6, generations=5)],
)
@pytest.mark.parametrize(
    "text,adversarial",
    [
        ("A won\xadder\xadful film.", "A awful film."),  # the instance
        ("A Won\xadder\xadful\u200b film.", "A Awful\u200b film."),
        ("a won\u200bder\u2060ful film", "a awful film"),
    ],
)
def test_a_word_with_invisible_characters_is_attacked_whole(tmp_path, search, text, adversarial):
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", ".", *INVISIBLE_SCORES]) + "\n")
    tokenizer = BertTokenizerFast(str(tmp_path / "vocab.txt"))  # its normaliser deletes the invisible characters
    assert tokenizer.tokenize(text.replace("Won", "won")) == tokenizer.tokenize("a wonderful film") + (
        ["."] if text.endswith(".") else []
    )
    victim = VictimModel(BagOfWords(tokenizer, INVISIBLE_SCORES), tokenizer, batch_size=4)
    goal = UntargetedClassification()
    report = run_attack(
        [Example(text, 1)], victim, SynonymSwap(INVISIBLE_SYNONYMS), search, Constraints([]), goal, {}, progress=False
    )
    (result,) = report.results
    assert result.num_words == 3 and result.words_changed == 1 and result.adversarial == adversarial


# ------------------------------------------------------------------------------------ WordNet
BORING = [
    "drilling",
    "bore",
    "tire",
    "drill",
    "deadening",
    "dull",
    "ho-hum",
    "irksome",
    "slow",
    "tedious",
    "tiresome",
    "wearisome",
]


def test_wordnet_synonyms_are_a_property_of_the_word():
    from rift_fast.synonyms.wordnet import wordnet_relations

    synonyms, antonyms = wordnet_relations(["boring", "Naïve", "Movies", "great,"])
    assert synonyms["boring"] == BORING  # noun, verb, adjective senses in WordNet's order; lemma order within
    assert synonyms["Naïve"] == ["naif", "primitive", "uninstructed", "unenlightened", "uninitiate", "uninitiated"]
    assert synonyms["Movies"] == ["movie", "film", "picture", "pic", "flick"]  # multi-word lemmas left out
    assert "great," not in synonyms  # callers pass words, not pieces of text
    assert antonyms == {"Naïve": ["sophisticated"]}


def test_wordnet_index_from_a_pool_that_lacks_the_synonyms():
    words = vocabulary(["A great, boring film."])  # the pool the attack and training CLIs ask about
    index = SynonymIndex.from_wordnet(words)
    assert index["boring"] == BORING[:8]
    assert index.synonyms("Great")[:3] == ["outstanding", "bang-up", "bully"]  # "great," looked up as "great"
    assert index["a"] == []  # a stop word
    assert SynonymIndex.from_wordnet(words, k=20)["boring"] == BORING
