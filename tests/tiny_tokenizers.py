"""Tiny tokenizers of the three families users bring, built offline in the test: WordPiece (BERT),
byte-level BPE with leading-space markers (RoBERTa, ``Ġ``) and SentencePiece-style Unigram with
``▁`` markers (ALBERT, XLM-R, DeBERTa-v3). Every word of ``words`` is one token of each, after a space
and at the start of a text, in lower case and capitalised; any other word falls apart into pieces."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertTokenizerFast, PreTrainedTokenizerFast

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
PUNCTUATION = ".,!?'’\"-"


def _forms(words: list[str]) -> list[str]:
    return sorted({form for w in words for form in (w, w[:1].upper() + w[1:])})


def wordpiece(words: list[str], folder: Path) -> BertTokenizerFast:
    """Uncased BERT WordPiece with ``words`` whole (as its normaliser leaves them: lower case, accents
    stripped, so ``café`` is the token ``cafe`` as in bert-base-uncased)."""
    normalise = normalizers.BertNormalizer(lowercase=True).normalize_str
    words = [normalise(w) for w in words]
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *PUNCTUATION,
        *LETTERS.lower(),
        *(f"##{c}" for c in LETTERS.lower()),
        *sorted(set(words) - set(LETTERS.lower())),
    ]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    return BertTokenizerFast(str(folder / "vocab.txt"))


def byte_level_bpe(words: list[str]) -> PreTrainedTokenizerFast:
    """Cased byte-level BPE as RoBERTa's (``Ġ`` marks a preceding space), with ``words`` whole."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: i for i, token in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", *sorted(alphabet)])}
    merges = []
    # Merges of the space-prefixed forms rank first, so that "Ġmovie" is not cut into "Ġ" + "movie";
    # merges join byte-level characters ("é" is the two bytes "Ã©").
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str
    for prefixed in [byte_level(text)[0][0] for text in [f" {form}" for form in _forms(words)] + _forms(words)]:
        current = prefixed[0]
        for char in prefixed[1:]:
            merges.append((current, char))
            current += char
            vocab.setdefault(current, len(vocab))
    tokenizer = Tokenizer(models.BPE(vocab, list(dict.fromkeys(merges))))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        sep_token="</s>",
        cls_token="<s>",
    )


def sentencepiece_unigram(words: list[str]) -> PreTrainedTokenizerFast:
    """Cased Unigram with Metaspace ``▁`` markers as SentencePiece models, with ``words`` whole."""
    pieces = [("<pad>", 0.0), ("<unk>", 0.0), ("[CLS]", 0.0), ("[SEP]", 0.0), ("▁", -5.0)]
    pieces += [(f"▁{form}", -1.0) for form in _forms(words)]
    pieces += [(char, -10.0) for char in LETTERS + PUNCTUATION]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=1, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>", cls_token="[CLS]", sep_token="[SEP]"
    )
