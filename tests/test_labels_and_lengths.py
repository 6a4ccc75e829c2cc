"""A classifier's own label order (mapped to the task's by name, by id for
generic names, refused otherwise) and the input length a model can take (RoBERTa's reserved
positions, tokenizer limits, relative positions), on tiny models built from configs."""

import json
import logging
import re

import pytest
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    BertTokenizerFast,
    DebertaV2Config,
    DebertaV2Model,
    RobertaConfig,
    RobertaForSequenceClassification,
    RobertaModel,
    RobertaTokenizerFast,
)

from rift_fast.attacks import PWWS, Constraints, SynonymSwap, UntargetedClassification, VictimModel, run_attack
from rift_fast.cli import attack, train
from rift_fast.core.records import Example
from rift_fast.data.tasks import NLI_LABELS, SENTIMENT_LABELS
from rift_fast.models import (
    LabelMismatchError,
    TaskOrderedClassifier,
    checked_max_length,
    load_sequence_classifier,
    load_tokenizer,
    map_labels,
    usable_max_length,
)
from rift_fast.models.classifier import RobustClassifier
from rift_fast.synonyms import SynonymIndex
from rift_fast.training.loop import encode_examples

TINY = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}
# Gold labels of the issue's three SNLI pairs; a model that always says "entailment" gets 2 of 3.
SNLI_PAIRS = [
    ("A man plays a guitar.", "A man makes music.", "entailment"),
    ("Two dogs run on the grass.", "Animals are outside.", "entailment"),
    ("A child sleeps in a bed.", "The child is running a race.", "contradiction"),
]
LONG_TEXT = " ".join(["the film is good and the plot is fine"] * 30)


@pytest.fixture(scope="module")
def wordpiece(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wordpiece")
    load_tokenizer("embedded").save_pretrained(folder)
    return folder


def _constant_classifier(folder, tokenizer_folder, id2label: dict[int, str], predicted: str):
    """A tiny BERT classifier with labels ``id2label`` whose logits are always one-hot on ``predicted``."""
    config = BertConfig(
        vocab_size=30522,
        max_position_embeddings=64,
        id2label=id2label,
        label2id={name: index for index, name in id2label.items()},
        **TINY,
    )
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([5.0 if name == predicted else 0.0 for name in id2label.values()]))
    model.save_pretrained(folder)
    BertTokenizerFast.from_pretrained(tokenizer_folder).save_pretrained(folder)
    return folder


def _predicted_task_labels(folder, task_labels, queries):
    model, tokenizer, mapping = load_sequence_classifier(str(folder), task_labels)
    probabilities = VictimModel(model, tokenizer, batch_size=2).probabilities(queries)
    return [task_labels[i] for i in probabilities.argmax(1)], mapping


def _write_snli(folder):
    folder.mkdir()
    lines = [
        json.dumps({"sentence1": p, "sentence2": h, "gold_label": g, "pairID": str(i)})
        for i, (p, h, g) in enumerate(SNLI_PAIRS)
    ]
    for split in ("train", "dev", "test"):
        (folder / f"snli_1.0_{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


# --------------------------------------------------------------------------------------------- labels
def test_issue_instance_nli_model_in_its_own_order_scores_two_of_three(tmp_path, wordpiece):
    model_dir = _constant_classifier(
        tmp_path / "nli", wordpiece, {0: "contradiction", 1: "neutral", 2: "entailment"}, predicted="entailment"
    )
    synonyms = tmp_path / "synonyms.json"
    synonyms.write_text(json.dumps({"music": ["song"], "outside": ["outdoors"], "running": ["jogging"]}))
    output = tmp_path / "attack.json"
    snli = _write_snli(tmp_path / "snli")
    assert (
        attack.main(
            [
                "--model",
                str(model_dir),
                "--dataset",
                "snli",
                "--data-source",
                str(snli),
                "--num-examples",
                "3",
                "--synonyms",
                str(synonyms),
                "--output",
                str(output),
            ]
        )
        == 0
    )
    report = json.loads(output.read_text())
    assert report["summary"]["clean_accuracy"] == pytest.approx(2 / 3)
    assert report["settings"]["labels"] == {
        "rule": "names",
        "model_labels": ["contradiction", "neutral", "entailment"],
        "task_labels": list(NLI_LABELS),
        "model_output_of_task_label": {"entailment": 2, "neutral": 1, "contradiction": 0},
    }


def test_upper_case_names_match_the_task_names(tmp_path, wordpiece):
    model_dir = _constant_classifier(
        tmp_path / "nli", wordpiece, {0: "CONTRADICTION", 1: "Neutral", 2: "ENTAILMENT"}, predicted="ENTAILMENT"
    )
    predicted, mapping = _predicted_task_labels(model_dir, NLI_LABELS, [(p, h) for p, h, _ in SNLI_PAIRS])
    assert predicted == ["entailment"] * 3 and mapping.model_index == (2, 1, 0)


def test_permuted_sentiment_model_is_scored_in_the_task_order(tmp_path, wordpiece):
    model_dir = _constant_classifier(
        tmp_path / "sentiment", wordpiece, {0: "POSITIVE", 1: "NEGATIVE"}, predicted="POSITIVE"
    )
    model, tokenizer, mapping = load_sequence_classifier(str(model_dir), SENTIMENT_LABELS)
    assert isinstance(model, TaskOrderedClassifier) and mapping.model_index == (1, 0)
    victim = VictimModel(model, tokenizer, batch_size=2)
    assert victim.probabilities([("a fine film", None)]).argmax(1).tolist() == [SENTIMENT_LABELS.index("positive")]
    # The wrapper is what every consumer uses: embeddings, config, parameters, eval, to, gradients.
    assert model.get_input_embeddings() is model.model.get_input_embeddings()
    assert model.config.id2label == {0: "POSITIVE", 1: "NEGATIVE"}
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in model.model.parameters())
    assert model.to(torch.float64).eval() is model and not model.model.training
    (batch,) = victim.embedding_gradients([("a fine film", None)], [1], attacked_side=0)
    assert batch.grad.abs().sum() < 1e-6  # the task's "positive" is the model's confident answer: no loss to push


def test_generic_names_map_by_id_with_one_warning(tmp_path, wordpiece, caplog):
    model_dir = _constant_classifier(
        tmp_path / "generic", wordpiece, {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, predicted="LABEL_1"
    )
    with caplog.at_level(logging.WARNING, logger="rift_fast.models"):
        predicted, mapping = _predicted_task_labels(model_dir, NLI_LABELS, [(p, h) for p, h, _ in SNLI_PAIRS])
    assert predicted == ["neutral"] * 3 and mapping.rule == "ids" and mapping.is_identity
    notes = [r.getMessage() for r in caplog.records if r.name.startswith("rift_fast.models")]
    assert len(notes) == 1 and "LABEL_0" in notes[0] and "output i is taken as task label i" in notes[0]


def test_label_count_mismatch_names_both_counts_and_lists(tmp_path, wordpiece):
    model_dir = _constant_classifier(tmp_path / "two", wordpiece, {0: "negative", 1: "positive"}, predicted="positive")
    with pytest.raises(LabelMismatchError) as raised:
        load_sequence_classifier(str(model_dir), NLI_LABELS)
    message = str(raised.value)
    assert "the model has 2 labels ['negative', 'positive']" in message
    assert "the task has 3 labels ['entailment', 'neutral', 'contradiction']" in message


def test_generic_names_in_another_count_are_refused_too(tmp_path, wordpiece):
    model_dir = _constant_classifier(tmp_path / "two", wordpiece, {0: "LABEL_0", 1: "LABEL_1"}, predicted="LABEL_0")
    expected = "label counts differ: the model has 2 labels ['LABEL_0', 'LABEL_1']"
    with pytest.raises(LabelMismatchError, match=re.escape(expected)):
        load_sequence_classifier(str(model_dir), NLI_LABELS)


@pytest.mark.parametrize("model_labels", [("pos", "neg"), ("negative", "LABEL_1"), ("negative", "negative")])
def test_real_names_that_do_not_match_are_refused(model_labels):
    expected = (
        f"label names do not match (case-insensitive): the model has 2 labels {list(model_labels)}, "
        "the task has 2 labels ['negative', 'positive']"
    )
    with pytest.raises(LabelMismatchError, match=re.escape(expected)):
        map_labels(model_labels, SENTIMENT_LABELS)


def test_an_encoder_without_head_gets_a_new_head_in_the_task_order(tmp_path, wordpiece):
    BertModel(BertConfig(vocab_size=30522, max_position_embeddings=64, **TINY)).save_pretrained(tmp_path)
    BertTokenizerFast.from_pretrained(wordpiece).save_pretrained(tmp_path)
    model, _, mapping = load_sequence_classifier(str(tmp_path), NLI_LABELS)
    assert mapping.rule == "new head" and model.config.id2label == dict(enumerate(NLI_LABELS))


# --------------------------------------------------------------------------------------------- lengths
@pytest.fixture(scope="module")
def byte_level_bpe(tmp_path_factory):
    """A RoBERTa tokenizer (byte-level BPE, leading-space markers) without model_max_length."""
    folder = tmp_path_factory.mktemp("bpe")
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(
        [LONG_TEXT, "a man plays a guitar and makes music"],
        vocab_size=300,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    trainer.save_model(str(folder))
    return RobertaTokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt"))


def _tiny_roberta_config(tokenizer):
    return RobertaConfig(vocab_size=len(tokenizer), max_position_embeddings=66, pad_token_id=1, **TINY)


def test_roberta_reserves_padding_idx_plus_one_positions(byte_level_bpe):
    assert byte_level_bpe.model_max_length > 10**20  # unset: the issue's instance
    model = RobertaForSequenceClassification(_tiny_roberta_config(byte_level_bpe))
    assert usable_max_length(model, byte_level_bpe) == 64
    assert usable_max_length(_tiny_roberta_config(byte_level_bpe), byte_level_bpe) == 64  # from the config alone
    victim = VictimModel(model, byte_level_bpe, batch_size=2)
    assert victim.max_length == 64
    assert victim.probabilities([(LONG_TEXT, None), ("a short one", None)]).shape == (2, 2)
    report = run_attack(
        [Example(LONG_TEXT, 1)],
        victim,
        SynonymSwap(SynonymIndex({"good": ["fine"], "film": ["movie"]})),
        PWWS(UntargetedClassification(), byte_level_bpe.unk_token),
        Constraints(),
        UntargetedClassification(),
        {"test": True},
        progress=False,
    )
    assert report.results[0].truncated


def test_a_length_above_the_usable_one_is_refused_naming_both(byte_level_bpe):
    model = RobertaForSequenceClassification(_tiny_roberta_config(byte_level_bpe))
    with pytest.raises(ValueError, match=r"max length 66 is outside 1\.\.64: .* at most 64 tokens"):
        VictimModel(model, byte_level_bpe, max_length=66)
    assert VictimModel(model, byte_level_bpe, max_length=30).max_length == 30


def test_bert_uses_all_its_positions(wordpiece):
    tokenizer = BertTokenizerFast.from_pretrained(wordpiece, model_max_length=10**30)
    model = BertModel(BertConfig(vocab_size=30522, max_position_embeddings=40, **TINY))
    assert usable_max_length(model, tokenizer) == 40


def test_a_tokenizer_limit_below_the_positions_wins(wordpiece):
    tokenizer = BertTokenizerFast.from_pretrained(wordpiece, model_max_length=20)
    model = BertModel(BertConfig(vocab_size=30522, max_position_embeddings=40, **TINY))
    assert usable_max_length(model, tokenizer) == 20 == checked_max_length(None, model, tokenizer)


def test_relative_positions_fall_back_to_tokenizer_then_config(wordpiece):
    model = DebertaV2Model(
        DebertaV2Config(
            vocab_size=30522,
            max_position_embeddings=128,
            relative_attention=True,
            position_buckets=32,
            position_biased_input=False,
            **TINY,
        )
    )
    unset = BertTokenizerFast.from_pretrained(wordpiece, model_max_length=10**30)
    assert usable_max_length(model, unset) == 128
    assert usable_max_length(model, BertTokenizerFast.from_pretrained(wordpiece, model_max_length=50)) == 50


def test_training_encodes_with_the_same_rule(tmp_path, byte_level_bpe):
    RobertaModel(_tiny_roberta_config(byte_level_bpe)).save_pretrained(tmp_path)
    byte_level_bpe.save_pretrained(tmp_path)
    with pytest.raises(SystemExit, match=r"--max-length 65 .*max length 65 is outside 1\.\.64"):
        train.main(["--model", str(tmp_path), "--max-length", "65", "--output-dir", str(tmp_path / "run")])
    length = checked_max_length(None, RobertaModel.config_class.from_pretrained(tmp_path), byte_level_bpe)
    split = encode_examples(byte_level_bpe, [Example(LONG_TEXT, 1), Example("a good film", 0)], length)
    assert max(len(row) for row in split.input_ids) == 64
    model = RobustClassifier.from_pretrained(str(tmp_path), 2).eval()
    ids = torch.tensor(split.input_ids[:1])
    logits, _ = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert logits.shape == (1, 2)


# ------------------------------------------------------------------- label names as people type them
def _labelled_csv(path, labels):
    """A CSV with one distinct review per label in ``labels`` (in order; row i is file line i + 2)."""
    rows = [f'"review number {i} of the file",{label}' for i, label in enumerate(labels)]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _load(path, label_names=None):
    from rift_fast.data.sources import DatasetOptions, load_data

    return load_data(DatasetOptions(dataset=str(path), label_names=label_names), seed=0)


def test_the_issue_typo_and_trailing_space_name_the_typo_its_lines_and_the_option(tmp_path):
    labels = ["positive", "negative"] * 40 + ["Positive "] * 3
    labels[10], labels[50] = "postive", "postive"
    path = _labelled_csv(tmp_path / "reviews.csv", labels)
    expected = (
        f"label 'postive' (2 rows: {path} line 12, {path} line 52) is 1 edit(s) from 'positive' (41 rows): a typo "
        "would make a class of its own. Correct those lines, or name the classes with --label-names negative,positive"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        _load(path)


@pytest.mark.parametrize(
    ("typo", "near", "distance"),
    [
        ("negativ", "negative", 1),
        ("nagetive", "negative", 2),
        ("Postivie", "positive", 2),
        ("neg ative", "negative", 1),
    ],
)
def test_rare_names_a_few_edits_from_a_frequent_one_are_refused_as_typos(tmp_path, typo, near, distance):
    labels = ["positive", "negative"] * 30 + [typo]
    path = _labelled_csv(tmp_path / "data.csv", labels)
    with pytest.raises(
        ValueError, match=rf"label '{typo}' \(1 rows: {re.escape(str(path))} line 62\) is {distance} edit"
    ):
        _load(path)


def test_spellings_that_differ_in_case_space_or_unicode_form_are_one_class_reported_with_their_lines(tmp_path, caplog):
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "négatif"), unicodedata.normalize("NFD", "négatif")
    labels = [nfc, "positif"] * 20 + [nfd, "POSITIF", "  Positif", "positif\u00a0", "ｐｏｓｉｔｉｆ"]
    path = _labelled_csv(tmp_path / "avis.csv", labels)
    with caplog.at_level(logging.WARNING, logger="rift_fast"):
        task = _load(path)
    assert task.label_names == (nfc, "positif")  # the most frequent spelling names the class
    everything = task.train + task.dev + task.test
    assert sorted(e.label for e in everything) == [0] * 21 + [1] * 24
    assert "one label written 2 ways" in caplog.text and f"{nfd!r} (1 rows: {path} line 42)" in caplog.text
    # the no-break space is outer whitespace: "positif\u00a0" is spelled "positif"
    assert "one label written 4 ways" in caplog.text and f"'POSITIF' (1 rows: {path} line 43)" in caplog.text


def test_given_label_names_match_any_spelling_and_name_a_typo_by_line(tmp_path):
    labels = ["negative", "positive"] * 20 + ["NEGATIVE", " Positive"]
    task = _load(_labelled_csv(tmp_path / "ok.csv", labels), label_names=("negative", "positive"))
    assert task.label_names == ("negative", "positive")
    assert sorted(e.label for e in task.train + task.dev + task.test) == [0] * 21 + [1] * 21
    path = _labelled_csv(tmp_path / "typo.csv", [*labels, "postive"])
    expected = f"{path} line 44: label 'postive' is not in the label set (a typo of 'positive'?)"
    with pytest.raises(ValueError, match=re.escape(expected)):
        _load(path, label_names=("negative", "positive"))


def test_frequent_names_one_edit_apart_are_distinct_classes(tmp_path, caplog):
    path = _labelled_csv(tmp_path / "classes.csv", ["class1", "class2", "class3"] * 20)
    with caplog.at_level(logging.WARNING, logger="rift_fast"):
        task = _load(path)
    assert task.label_names == ("class1", "class2", "class3") and "typo" not in caplog.text


def test_a_small_class_is_reported_by_name_with_its_lines(tmp_path, caplog):
    labels = ["positive", "negative"] * 40 + ["neutral"] * 3
    path = _labelled_csv(tmp_path / "three.csv", labels)
    with caplog.at_level(logging.WARNING, logger="rift_fast"):
        task = _load(path)
    assert task.label_names == ("negative", "neutral", "positive")
    assert f"label 'neutral' has only 3 of 83 rows ({path} line 82, {path} line 83, {path} line 84)" in caplog.text
    assert "--label-names" in caplog.text


def test_a_class_too_small_to_split_is_named_in_the_stratification_error(tmp_path):
    path = _labelled_csv(tmp_path / "one.csv", ["positive", "negative"] * 40 + ["mixed"])
    with pytest.raises(ValueError, match=r"counts per label id: \{0: 1, 1: 40, 2: 40\}.*label ids: 0 = 'mixed'"):
        _load(path)


def test_label_names_option_and_model_label_mapping_compare_canonical_forms():
    from argparse import ArgumentTypeError

    from rift_fast.core.words import levenshtein
    from rift_fast.data.sources import label_names_option
    from rift_fast.models.labels import canonical_label

    with pytest.raises(ArgumentTypeError, match="regardless of case"):
        label_names_option("pos,POS")
    assert label_names_option(" negative , positive") == ("negative", "positive")
    mapping = map_labels(["POSITIVE", "Negative "], ["negative", "positive"])
    assert mapping.model_index == (1, 0) and mapping.rule == "names"
    assert canonical_label("  Très\u00a0 BIEN ") == "très bien" and canonical_label("ＡＢＣ") == "abc"
    assert [levenshtein(a, b) for a, b in [("postive", "positive"), ("", "abc"), ("kitten", "sitting")]] == [1, 3, 3]
