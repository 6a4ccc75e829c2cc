"""Tiny tokenizers of the families users bring, built offline in the test: WordPiece (BERT),
byte-level BPE with leading-space markers (RoBERTa, ``Ġ``), SentencePiece-style Unigram with
``▁`` markers (ALBERT, XLM-R, DeBERTa-v3) and SentencePiece-style BPE with byte fallback (Llama,
Mistral). Every word of ``words`` is one token of each, after a space and at the start of a text, in
lower case and capitalised; any other word falls apart into pieces (in ``word_vocabulary``, the
vocabulary of the toy victim, it is ``[UNK]``). With ``bare_pieces`` (and always for the BPE with
byte fallback) the SentencePiece vocabularies also hold each word without ``▁``, the piece that a word
right after punctuation (``(movie``) is, as in real SentencePiece vocabularies."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertTokenizerFast, PreTrainedTokenizerFast

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
PUNCTUATION = ".,!?'’\"-"
BRACKETS = "()[]"


def _forms(words: list[str]) -> list[str]:
    return sorted({form for w in words for form in (w, w[:1].upper() + w[1:])})


# The three families a test runs over, named by the builders below.
FAMILIES = ("wordpiece", "byte_level_bpe", "sentencepiece_unigram")


def tokenizer_of_family(family: str, words: list[str], folder: Path) -> PreTrainedTokenizerFast:
    """The tokenizer of ``family`` (one of ``FAMILIES``; KeyError for another) with ``words`` whole;
    WordPiece writes its vocabulary file to ``folder``."""
    builders = {
        "wordpiece": lambda: wordpiece(words, folder),
        "byte_level_bpe": lambda: byte_level_bpe(words),
        "sentencepiece_unigram": lambda: sentencepiece_unigram(words),
    }
    return builders[family]()


def word_vocabulary(words: list[str], folder: Path, strip_accents: bool | None = None) -> BertTokenizerFast:
    """Uncased BERT WordPiece whose vocabulary is the five special tokens then ``words``, in this order,
    written to ``folder``: a word outside it is ``[UNK]``, as the toy victim wants. ``strip_accents``:
    BERT's (None: with the lower-casing; False keeps ``naïve``)."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertTokenizerFast(str(folder / "vocab.txt"), strip_accents=strip_accents)


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


def sentencepiece_unigram(words: list[str], bare_pieces: bool = False) -> PreTrainedTokenizerFast:
    """Cased Unigram with Metaspace ``▁`` markers as SentencePiece models, with ``words`` whole (and, with
    ``bare_pieces``, each word without ``▁`` and ``▁`` + each bracket, as real vocabularies have them)."""
    pieces = [("<pad>", 0.0), ("<unk>", 0.0), ("[CLS]", 0.0), ("[SEP]", 0.0), ("▁", -5.0)]
    pieces += [(f"▁{form}", -1.0) for form in _forms(words)]
    if bare_pieces:
        pieces += [(form, -2.0) for form in _forms(words) if form not in LETTERS]
        pieces += [(f"▁{bracket}", -2.0) for bracket in BRACKETS]
    pieces += [(char, -10.0) for char in LETTERS + PUNCTUATION + (BRACKETS if bare_pieces else "")]
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


def _bpe_merges(pieces: list[str], vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Left-to-right merges that join each of ``pieces`` (adding every prefix to ``vocab``)."""
    merges = []
    for piece in pieces:
        current = piece[0]
        for char in piece[1:]:
            merges.append((current, char))
            current += char
            vocab.setdefault(current, len(vocab))
    return list(dict.fromkeys(merges))


def gpt2_style_bpe(words: list[str]) -> PreTrainedTokenizerFast:
    """Cased byte-level BPE as GPT-2's and Qwen's: ``<|endoftext|>`` (id 0) is its beginning- and
    end-of-sequence token, it adds no special tokens and has NO padding token; ``words`` are whole."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: i for i, token in enumerate(["<|endoftext|>", *sorted(alphabet)])}
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str
    pieces = [byte_level(text)[0][0] for text in [f" {form}" for form in _forms(words)] + _forms(words)]
    tokenizer = Tokenizer(models.BPE(vocab, _bpe_merges(pieces, vocab)))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_input_names=["input_ids", "attention_mask"],
    )


def sentencepiece_byte_fallback_bpe(words: list[str], pad: bool = False) -> PreTrainedTokenizerFast:
    """Cased SentencePiece-style BPE with byte fallback as Llama's, Mistral's and Gemma's: ``▁`` marks
    a preceding space, a character outside the vocabulary becomes its UTF-8 bytes ``<0x..>``, ``<s>``
    (id 1) starts every input (and each side of a pair), ``</s>`` (id 2) ends none. A padding token
    ``<pad>`` only when ``pad`` (Gemma's tokenizer has one, Llama's and Mistral's have none)."""
    specials = ["<unk>", "<s>", "</s>", *(["<pad>"] if pad else [])]
    byte_tokens = [f"<0x{value:02X}>" for value in range(256)]
    characters = sorted({"▁", *LETTERS, *PUNCTUATION, *"".join(words)})
    vocab = {token: i for i, token in enumerate([*specials, *byte_tokens, *characters])}
    pieces = [f"▁{form}" for form in _forms(words)] + [form for form in _forms(words) if len(form) > 1]
    tokenizer = Tokenizer(models.BPE(vocab, _bpe_merges(pieces, vocab), unk_token="<unk>", byte_fallback=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_input_names=["input_ids", "attention_mask"],
        **({"pad_token": "<pad>"} if pad else {}),
    )


def sentencepiece_bpe_byte_fallback(words: list[str]) -> PreTrainedTokenizerFast:
    """Cased BPE with a ``▁`` marker before the first word and every space and byte fallback (an unknown
    character is its UTF-8 bytes, ``<0xE6>``), as Llama's and Mistral's SentencePiece models; ``words``
    whole with ``▁`` and bare, and ``▁`` + each bracket and punctuation mark; pads with ``<unk>``."""
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{value:02X}>" for value in range(256)]
    symbols = ["▁", *LETTERS, *PUNCTUATION, *BRACKETS]
    vocab = {token: i for i, token in enumerate([*specials, *byte_tokens, *symbols])}
    # The marked forms' merges rank first, so that "▁movie" is not cut into "▁" + "movie".
    chains = [f"▁{form}" for form in _forms(words)] + _forms(words) + [f"▁{mark}" for mark in PUNCTUATION + BRACKETS]
    model = models.BPE(vocab, _bpe_merges(chains, vocab), unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=False)
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<unk>"
    )
