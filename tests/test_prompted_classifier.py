"""Prompted classifiers: a tiny random causal LM, a template with a {text} slot and label words; the class
scores against log-probabilities computed by hand, every recipe attacking the slot only (the template
reaches every model query untouched), the command line end to end, and the refusals."""

from __future__ import annotations

import json

import pytest
import torch
import transformers as hf
from test_encoders import SYNONYMS, WORDS, _examples, every_recipe_options
from tiny_models import tiny_decoder_config
from tiny_tokenizers import gpt2_style_bpe, sentencepiece_byte_fallback_bpe

from rift_fast.attacks import RECIPES, RecipeOptions, VictimModel, build_attack
from rift_fast.cli import attack
from rift_fast.core.records import Example
from rift_fast.models import load_tokenizer
from rift_fast.models.prompted import PromptedClassifier, load_prompted_classifier

TEMPLATE = "Review: {text} Sentiment:"
TEMPLATE_WORDS = ("Review", "Sentiment")
LABEL_WORDS = (" bad", " good plot")  # the second of two tokens


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def lm_folder(request, tmp_path_factory):
    """A saved tiny random causal LM with a tokenizer of its family (no padding token)."""
    folder = tmp_path_factory.mktemp(f"lm-{request.param}")
    words = [*WORDS, *(w.lower() for w in TEMPLATE_WORDS)]
    tokenizer = sentencepiece_byte_fallback_bpe(words) if request.param == "llama" else gpt2_style_bpe(words)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = tiny_decoder_config(request.param, len(tokenizer), None, tokenizer.bos_token_id, tokenizer.eos_token_id)
    hf.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return str(folder)


def test_a_class_score_is_the_summed_log_probability_of_its_label_word_after_the_prompt(lm_folder):
    model, tokenizer = load_prompted_classifier(lm_folder, TEMPLATE, LABEL_WORDS)
    texts = ["the movie was good", "a plot"]
    scores = {}
    for side in ("left", "right"):
        tokenizer.padding_side = side
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            scores[side] = model(**batch)[0]
    torch.testing.assert_close(scores["left"], scores["right"])
    assert len(model.label_ids[1]) == 2
    for row, text in enumerate(texts):
        for label, word_ids in enumerate(model.label_ids):
            ids = model.prompt_ids(tokenizer(text, add_special_tokens=False)["input_ids"]) + word_ids
            with torch.no_grad():
                log_probs = torch.log_softmax(model.lm(torch.tensor([ids])).logits[0].float(), dim=-1)
            start = len(ids) - len(word_ids) - 1
            expected = sum(log_probs[start + j, token] for j, token in enumerate(word_ids))
            torch.testing.assert_close(scores["right"][row, label], expected)
    rendered = tokenizer.decode(model.prompt_ids(tokenizer("a plot", add_special_tokens=False)["input_ids"]))
    assert rendered.endswith("Review: a plot Sentiment:")


def test_every_recipe_edits_the_slot_and_every_query_holds_the_template_untouched(lm_folder, tiny_model_dir, tmp_path):
    model, tokenizer = load_prompted_classifier(lm_folder, TEMPLATE, LABEL_WORDS)
    model.reuse_prefix = False  # whole prompts reach the model (the reuse is checked apart)
    table = model.get_input_embeddings()
    with torch.no_grad():
        fixed = {"prefix": table(torch.tensor(model.fixed_ids[0])), "suffix": table(torch.tensor(model.fixed_ids[-1]))}
    queries = []

    def check_template(module, args, kwargs):
        embeds, mask = kwargs["inputs_embeds"].detach(), kwargs["attention_mask"]
        prefix = fixed["prefix"].shape[0]
        for row, length in zip(embeds, mask.sum(1).tolist()):
            torch.testing.assert_close(row[:prefix], fixed["prefix"])
            tail = row[:length][: length - 1]  # before the last label token: ... suffix label[:-1]
            assert any(torch.equal(tail[end - fixed["suffix"].shape[0] : end], fixed["suffix"]) for end in (
                length - len(label) for label in model.label_ids))  # fmt: skip
        queries.append(embeds.shape[0])

    handle = model.lm.register_forward_pre_hook(check_template, with_kwargs=True)
    victim = VictimModel(model, tokenizer, max_length=16, batch_size=8)
    examples = _examples(3)
    predictions = victim.probabilities([(e.text, None) for e in examples]).argmax(1)
    examples = [Example(e.text, int(p)) for e, p in zip(examples, predictions)]
    options = every_recipe_options(tmp_path, tiny_model_dir)
    try:
        for name in sorted(RECIPES):
            report = build_attack(name, victim, SYNONYMS, False, options).run(examples, victim, {}, progress=False)
            assert len(report.results) == len(examples) and all(r.queries > 0 for r in report.results), name
            for result in report.results:
                text = result.adversarial or ""
                assert not any(word in text for word in TEMPLATE_WORDS), (name, text)
    finally:
        handle.remove()
    assert sum(queries) > 0


def test_a_prompted_classifier_is_attacked_from_the_command_line(lm_folder, tmp_path):
    output = tmp_path / "attack.json"
    argv = ["--model", lm_folder, "--prompt-template", TEMPLATE, "--label-words", "|".join(LABEL_WORDS)]
    argv += ["--num-examples", "4", "--attack", "pwws", "--output", str(output)]
    assert attack.main(argv) == 0
    record = json.loads(output.read_text())
    assert record["settings"]["prompt_template"] == TEMPLATE
    assert record["settings"]["label_words"] == list(LABEL_WORDS)
    assert record["summary"]["examples"] == 4
    for result in record["results"]:
        for text in (result.get("adversarial") or "", result.get("perturbed_text") or ""):
            assert not any(word in text for word in TEMPLATE_WORDS)


@pytest.mark.parametrize(
    "template,words,message",
    [
        ("Review: {text} Sentiment:", (" bad", ""), "--label-words: '' tokenises to no token at all"),
        ("Review: Sentiment:", (" bad", " good"), "must hold the slot \\{text\\} exactly once \\(found 0\\)"),
        ("{text} {text}", (" bad", " good"), "exactly once \\(found 2\\)"),
        ("{text} {text_pair} {text_pair}", (" bad", " good"), "at most once \\(found 2\\)"),
        ("{text}", (" bad",), "one word per class \\(at least 2\\)"),
    ],
)
def test_bad_prompts_are_refused_naming_the_problem(lm_folder, template, words, message):
    with pytest.raises(ValueError, match=message):
        PromptedClassifier(
            hf.AutoModelForCausalLM.from_pretrained(lm_folder), load_tokenizer(lm_folder), template, words
        )


def test_the_command_line_refuses_label_words_that_do_not_fit_the_task(lm_folder, tmp_path, capsys):
    argv = ["--model", lm_folder, "--prompt-template", TEMPLATE, "--output", str(tmp_path / "a.json")]
    with pytest.raises(SystemExit, match="gives 3 words; the task has 2 labels \\(negative, positive\\)"):
        attack.main([*argv, "--label-words", " bad| good| fine"])
    with pytest.raises(SystemExit, match="--prompt-template needs --label-words"):
        attack.main(argv)
    pair_template = ["--prompt-template", "{text} / {text_pair}", "--label-words", " bad| good"]
    with pytest.raises(SystemExit, match="is a single-text task; the \\{text_pair\\} slot would stay empty"):
        attack.main([*argv, *pair_template])


@pytest.mark.parametrize("recipe", ["pwws", "gradient"])
def test_a_bfloat16_prompted_victim_is_attacked_from_the_command_line(lm_folder, tmp_path, recipe):
    output = tmp_path / "attack.json"
    argv = ["--model", lm_folder, "--prompt-template", TEMPLATE, "--label-words", "|".join(LABEL_WORDS)]
    argv += ["--num-examples", "3", "--attack", recipe, "--model-dtype", "bfloat16", "--output", str(output)]
    assert attack.main(argv) == 0
    record = json.loads(output.read_text())
    assert record["settings"]["model_dtype"] == "bfloat16" and record["summary"]["examples"] == 3


def test_a_pair_template_scores_both_slots_and_attacks_the_pair_only(lm_folder, tmp_path):
    template = "Premise: {text} Hypothesis: {text_pair} Relation:"
    model, tokenizer = load_prompted_classifier(lm_folder, template, (" good", " bad", " plot"))
    pairs = [("the movie was good", "a plot"), ("a bad plot", "the movie")]
    batch = tokenizer([p for p, _ in pairs], [h for _, h in pairs], padding=True, return_tensors="pt")
    assert "token_type_ids" in batch
    with torch.no_grad():
        scores = model(**batch)[0]
    for row, (premise, hypothesis) in enumerate(pairs):
        plain = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in (premise, hypothesis)]
        ids = model.prompt_ids(*plain) + model.label_ids[0]
        with torch.no_grad():
            log_probs = torch.log_softmax(model.lm(torch.tensor([ids])).logits[0].float(), dim=-1)
        torch.testing.assert_close(scores[row, 0], log_probs[len(ids) - 2, model.label_ids[0][0]])
    victim = VictimModel(model, tokenizer, max_length=24)
    examples = [Example(p, int(label), h) for (p, h), label in zip(pairs, victim.probabilities(pairs).argmax(1))]
    report = build_attack("pwws", victim, SYNONYMS, True, RecipeOptions()).run(examples, victim, {}, progress=False)
    for example, result in zip(examples, report.results):
        assert result.premise == example.text  # the premise is never edited
        assert not any(word in (result.adversarial or "") for word in ("Premise", "Hypothesis", "Relation"))


@pytest.mark.parametrize("template", [TEMPLATE, "{text} is", "A long instruction. Review of a movie: {text} So:"])
def test_reusing_the_prefix_keys_and_values_gives_the_same_scores(lm_folder, template):
    model, tokenizer = load_prompted_classifier(lm_folder, template, LABEL_WORDS)
    tokenizer.padding_side = "left"
    batch = tokenizer(["the movie was good", "a plot", "bad"], padding=True, return_tensors="pt")
    with torch.no_grad():
        reused = model(**batch)[0]
        model.reuse_prefix = False
        whole = model(**batch)[0]
    torch.testing.assert_close(reused, whole, atol=1e-5, rtol=1e-5)
