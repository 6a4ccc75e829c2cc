"""The synonym index shared by attacks (word -> synonyms) and training (token id -> synonym ids).

Sources:

- :meth:`SynonymIndex.from_neighbour_json`: the ``{word: [neighbours]}`` JSON of Jia et al. (2019)
  built from counter-fitted vectors (the published GA/PWWS evaluations);
- :meth:`SynonymIndex.from_word_vectors`: any word vectors, K nearest within a Euclidean bound
  (FAISS), stop words excluded (defaults K=8, 0.5: how the counter-fitted sets were made);
- :meth:`SynonymIndex.from_wordnet`: WordNet synonyms (PWWS's original source), optionally ranked
  by similarity of word vectors;
- :func:`embedded_index`: the embedded default, GloVe 6B-50d counter-fitted to WordNet synonym and
  antonym constraints, then the K nearest within the bound.

Built indexes are cached on disk (:func:`cached_index`), keyed by source and settings.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import torch

from rift_fast.core.atomic_io import write_text_atomically
from rift_fast.core.words import accent_stripped, lookup_form, lookup_forms
from rift_fast.synonyms.knn import bounded_knn
from rift_fast.synonyms.vectors import WordVectors

logger = logging.getLogger(__name__)


def default_stop_words() -> frozenset[str]:
    """scikit-learn's English stop words (318 words): they neither get nor serve as synonyms."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


class SynonymIndex(Mapping[str, list[str]]):
    """An ordered mapping ``word -> [synonyms, nearest or most relevant first]``.

    Words without synonyms may be present with an empty list (the neighbour JSON keeps them).
    """

    def __init__(self, neighbours: Mapping[str, list[str]], source: str = "custom"):
        self._neighbours = {word: list(others) for word, others in neighbours.items()}
        self.source = source

    def __getitem__(self, word: str) -> list[str]:
        return self._neighbours[word]

    def __iter__(self):
        return iter(self._neighbours)

    def __len__(self) -> int:
        return len(self._neighbours)

    def synonyms(self, word: str) -> list[str]:
        """Synonyms of ``word``: the entry of ``word`` as given, else that of the first of its
        :func:`~rift_fast.core.words.lookup_forms` that matches an entry (see ``_entry_of_form``);
        [] for an unknown word."""
        found = self._neighbours.get(word)
        if found is not None:
            return found
        for form in lookup_forms(word):
            entry = self._entry_of_form.get(form)
            if entry is not None:
                return self._neighbours[entry]
        return []

    @cached_property
    def _entry_of_form(self) -> dict[str, str]:
        """form -> the entry it matches: the entry written as the form, else the first entry (in the
        index's order) whose lookup form it is, else the first whose accent-stripped form it is."""
        entry_of_form = {word: word for word in self._neighbours}
        for word in self._neighbours:
            entry_of_form.setdefault(lookup_form(word), word)
        for word in self._neighbours:
            entry_of_form.setdefault(accent_stripped(word), word)
        return entry_of_form

    def num_words_with_synonyms(self) -> int:
        return sum(1 for others in self._neighbours.values() if others)

    def to_json(self) -> dict[str, list[str]]:
        return dict(self._neighbours)

    def content_digest(self) -> str:
        """SHA-256 of the index's canonical JSON (words sorted, each word's synonyms in order): equal
        for equal content whatever the source (JSON, vectors, WordNet, embedded) or file name."""
        canonical = json.dumps(self._neighbours, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    # ----------------------------------------------------------------------------------- sources
    @classmethod
    def from_neighbour_json(cls, path: str | Path) -> "SynonymIndex":
        """Load the ``{word: [neighbour, ...]}`` JSON of the counter-fitted neighbour sets (Jia et al. 2019)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"neighbour JSON not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        _validate_neighbour_mapping(data, str(path))
        return cls(data, source=f"neighbour-json:{path.name}")

    @classmethod
    def from_word_vectors(
        cls,
        vectors: WordVectors,
        k: int = 8,
        max_distance: float = 0.5,
        stop_words: Iterable[str] | None = None,
        source: str = "word-vectors",
    ) -> "SynonymIndex":
        """K nearest words within Euclidean ``max_distance``; stop words neither get nor give synonyms."""
        stop = default_stop_words() if stop_words is None else frozenset(stop_words)
        allowed = np.array([word not in stop for word in vectors.words])
        found = bounded_knn(vectors.vectors, k, max_distance, candidates=allowed)
        neighbours = {
            word: ([vectors.words[j] for j in rows] if allowed[i] else [])
            for i, (word, rows) in enumerate(zip(vectors.words, found))
        }
        return cls(neighbours, source=source)

    @classmethod
    def from_wordnet(
        cls, words: list[str], k: int = 8, ranking: WordVectors | None = None, stop_words: Iterable[str] | None = None
    ) -> "SynonymIndex":
        """WordNet synonyms of each of ``words`` (whatever the other words: see
        :func:`~rift_fast.synonyms.wordnet.wordnet_relations`), the ``k`` first; stop words get none.
        With ``ranking``, synonyms that have a vector are ordered most cosine-similar first and
        those without one dropped (for words that have a vector)."""
        from rift_fast.synonyms.wordnet import wordnet_relations

        stop = default_stop_words() if stop_words is None else frozenset(stop_words)
        content = [w for w in words if lookup_form(w) not in stop]
        synonyms, _ = wordnet_relations(content)
        if ranking is not None:
            row_of = {word: i for i, word in enumerate(ranking.words)}
            unit = ranking.vectors / np.maximum(np.linalg.norm(ranking.vectors, axis=1, keepdims=True), 1e-12)
            for word, others in synonyms.items():
                if word in row_of:
                    known = [o for o in others if o in row_of]
                    similarity = unit[[row_of[o] for o in known]] @ unit[row_of[word]]
                    synonyms[word] = [known[i] for i in np.argsort(-similarity, kind="stable")]
        return cls({word: synonyms.get(word, [])[:k] for word in words}, source="wordnet")

    # ------------------------------------------------------------------------ training-side table
    def vocab_table(self, tokenizer, k: int = 8) -> torch.Tensor:
        """[V, k] int64 synonym token ids over ``tokenizer``'s vocabulary, -1 padded (see
        :meth:`vocab_table_with_coverage`)."""
        return self.vocab_table_with_coverage(tokenizer, k)[0]

    def vocab_table_with_coverage(self, tokenizer, k: int = 8) -> tuple[torch.Tensor, TableCoverage]:
        """([V, k] int64 synonym token ids over ``tokenizer``'s vocabulary, -1 padded; its coverage).

        Row v lists the synonyms of token v when v is a whole word of the index and both the word
        and the synonym are a single token of the tokenizer, neither of them a special token such as
        the unknown token (sub-word pieces get no synonyms). Words are tokenised in each form a word
        takes in running text (:data:`WORD_FORMS`: after a space, at the start of a text and right
        after punctuation, lower case and capitalised), and a token's synonyms are taken in the same
        form, so WordPiece, byte-level BPE (``Ġfilm`` after a space, ``film`` at the start or after
        ``(``) and SentencePiece (``▁film`` after a space, the bare piece ``film`` after ``(``)
        vocabularies, cased or not, get rows for every form; a row keeps the first form that filled it.
        The coverage is logged. Raises ValueError for ``k`` below 1.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        words = sorted(
            {w for w, others in self._neighbours.items() if others}
            | {o for others in self._neighbours.values() for o in others}
        )
        table = torch.full((len(tokenizer), k), -1, dtype=torch.long)
        covered: set[str] = set()
        for form in WORD_FORMS:
            token_of = _single_token_ids(tokenizer, words, form)
            for word, others in self._neighbours.items():
                row = token_of.get(word)
                if row is None or not others:
                    continue
                ids = list(dict.fromkeys(token_of[o] for o in others if o in token_of and token_of[o] != row))[:k]
                if ids:
                    covered.add(word)
                    if table[row, 0] < 0:
                        table[row, : len(ids)] = torch.tensor(ids)
        coverage = TableCoverage(self.num_words_with_synonyms(), len(covered), int((table[:, 0] >= 0).sum()))
        logger.info("one-token synonym table over %s: %s", type(tokenizer).__name__, coverage.describe())
        return table, coverage


@dataclass(frozen=True)
class TableCoverage:
    """How much of a synonym index the one-token table of a tokenizer keeps
    (:meth:`SynonymIndex.vocab_table_with_coverage`).

    ``words_with_synonyms``: words of the index with at least one synonym; ``words_covered``: those
    that are one token with at least one one-token synonym in some form; ``token_rows``: tokenizer
    entries with synonyms.
    """

    words_with_synonyms: int
    words_covered: int
    token_rows: int

    def describe(self) -> str:
        """E.g. ``1,234 of 5,000 words with one-token synonyms (1,300 tokenizer entries)``."""
        return (
            f"{self.words_covered:,} of {self.words_with_synonyms:,} words with one-token synonyms "
            f"({self.token_rows:,} tokenizer entries)"
        )


def two_hop_vocab_table(table: torch.Tensor, width: int) -> torch.Tensor:
    """[V, width] int64 neighbours within two hops of each token of ``table`` [V, K] (a
    :meth:`SynonymIndex.vocab_table`, -1 padded), -1 padded: first the row's own neighbours in order,
    then, neighbour by neighbour, that neighbour's neighbours that are new and not the token itself,
    cut at ``width`` (the two-hop expansion of DNE, Zhou et al. 2021, as its code's ``second_order``
    word searcher builds it). Raises ValueError when ``table`` is not [V, K] or ``width`` is below 1."""
    if table.dim() != 2:
        raise ValueError(f"table must be [V, K], got shape {tuple(table.shape)}")
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    vocab, k = table.shape
    table = table.long()
    second = table[table.clamp_min(0)].masked_fill((table < 0).unsqueeze(-1), -1)  # [V, K, K]
    candidates = torch.cat([table, second.reshape(vocab, k * k)], dim=1)
    token = torch.arange(vocab, device=table.device).unsqueeze(1)
    candidates = candidates.masked_fill(candidates == token, -1)
    # A candidate is kept at its first occurrence: a stable sort puts it first among its equals.
    ordered, order = torch.sort(candidates, dim=1, stable=True)
    repeat_in_order = torch.zeros_like(candidates, dtype=torch.bool)
    repeat_in_order[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    repeat = torch.zeros_like(repeat_in_order).scatter(1, order, repeat_in_order)
    keep = (candidates >= 0) & ~repeat
    columns = candidates.shape[1]
    position = torch.arange(columns, device=table.device).expand(vocab, columns)
    packed = torch.where(keep, position, columns).argsort(dim=1, stable=True)  # kept ones first, in order
    compact = candidates.gather(1, packed).masked_fill(~keep.gather(1, packed), -1)
    out = torch.full((vocab, width), -1, dtype=torch.long, device=table.device)
    out[:, : min(width, columns)] = compact[:, :width]
    return out


def _capitalised(word: str) -> str:
    return word[:1].upper() + word[1:]


# How a word appears in running text: (text before it, case). The first form is inside a sentence,
# lower case; a row of vocab_table keeps the first form that gives it synonyms. Right after punctuation
# (an opening bracket stands for any), SentencePiece tokenizers (ALBERT, XLM-R, DeBERTa-v3, Llama-style
# BPE) give a word as its bare piece, without the ``▁`` that a space or the start of a text gives it.
WORD_FORMS: tuple[tuple[str, Callable[[str], str]], ...] = (
    (" ", str),
    ("", str),
    (" ", _capitalised),
    ("", _capitalised),
    ("(", str),
    ("(", _capitalised),
)


def _single_token_ids(tokenizer, words: list[str], form: tuple[str, Callable[[str], str]]) -> dict[str, int]:
    """``word -> token id`` for the words the tokenizer keeps whole in ``form`` (prefix, case): the
    text ``prefix + word`` is the tokens of the prefix's punctuation alone (none for white space) and
    then one token, the word's; a word that becomes a special token (the unknown token) is not kept whole."""
    prefix, case = form
    special = set(tokenizer.all_special_ids)
    lead = tokenizer(prefix.strip(), add_special_tokens=False)["input_ids"] if prefix.strip() else []
    encoded = tokenizer([prefix + case(w) for w in words], add_special_tokens=False)["input_ids"]
    return {
        word: ids[-1]
        for word, ids in zip(words, encoded)
        if len(ids) == len(lead) + 1 and ids[:-1] == lead and ids[-1] not in special
    }


def _validate_neighbour_mapping(data, where: str) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object {{word: [neighbours]}}, got {type(data).__name__}")
    for word, others in data.items():
        if not isinstance(others, list) or not all(isinstance(o, str) for o in others):
            raise ValueError(f"{where}: the neighbours of {word!r} must be a list of strings, got {others!r:.80}")


# ---------------------------------------------------------------------------------------- cache
def _cache_root() -> Path:
    from rift_fast.core.resources import cache_dir

    folder = cache_dir() / "synonyms"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cache_key(settings: Mapping) -> str:
    """Stable hash of the settings that define an index."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]


def cached_index_path(settings: Mapping, cache_folder: Path | None = None) -> Path:
    """Where :func:`cached_index` keeps the index built with ``settings``."""
    return (cache_folder or _cache_root()) / f"{cache_key(settings)}.json"


def cached_index(
    settings: Mapping, build: Callable[[], SynonymIndex], cache_folder: Path | None = None
) -> SynonymIndex:
    """Load the index built with ``settings`` from the cache, or ``build()`` it and cache it.

    The cache file stores the settings and a SHA-256 of the neighbours; a file that does not parse,
    whose checksum or settings do not match, is reported and rebuilt. The build runs under a file lock
    (``<file>.lock``): processes that share the cache build it once, the others wait and read it.
    """
    from filelock import FileLock

    path = cached_index_path(settings, cache_folder)
    folder = path.parent
    cached = _read_cached_index(path, settings)
    if cached is not None:
        return cached
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        cached = _read_cached_index(path, settings)  # another process built it while this one waited
        if cached is not None:
            return cached
        index = build()
        neighbours = index.to_json()
        payload = {
            "settings": settings,
            "source": index.source,
            "sha256": hashlib.sha256(json.dumps(neighbours, sort_keys=True).encode()).hexdigest(),
            "neighbours": neighbours,
        }
        write_text_atomically(path, json.dumps(payload))
    return index


def _read_cached_index(path: Path, settings: Mapping) -> SynonymIndex | None:
    """The index cached at ``path`` for ``settings``, or None when absent or corrupt (logged)."""
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        neighbours = stored["neighbours"]
        digest = hashlib.sha256(json.dumps(neighbours, sort_keys=True).encode()).hexdigest()
        if stored.get("settings") != json.loads(json.dumps(settings)) or stored.get("sha256") != digest:
            raise ValueError("checksum or settings mismatch")
        _validate_neighbour_mapping(neighbours, str(path))
        return SynonymIndex(neighbours, source=stored["source"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        logger.warning("[rift_fast] synonym cache %s is corrupt (%s); rebuilding it", path, error)
        return None


# ------------------------------------------------------------------------------ embedded default
@dataclass(frozen=True)
class EmbeddedSynonymSettings:
    """How the embedded synonym sets are made from GloVe 6B-50d and WordNet."""

    vocabulary_size: int = 30000  # most frequent alphabetic GloVe words
    k: int = 8
    max_distance: float = 0.5  # Euclidean, on counter-fitted unit vectors
    wordnet_senses: int = 2  # synonym constraints from the most frequent senses only
    method: str = "counter-fitted-glove"


def _embedded_vocabulary(vectors: WordVectors, size: int) -> WordVectors:
    rows = [i for i, w in enumerate(vectors.words) if w.isalpha() and w.isascii()][:size]
    return WordVectors([vectors.words[i] for i in rows], vectors.vectors[rows])


def _within(relations: dict[str, list[str]], words: frozenset[str]) -> dict[str, list[str]]:
    """``relations`` with only the related words among ``words`` (order kept), words left with none dropped."""
    kept = {word: [other for other in others if other in words] for word, others in relations.items()}
    return {word: others for word, others in kept.items() if others}


def _counter_fitted_stem(settings: EmbeddedSynonymSettings) -> Path:
    return _cache_root().parent / "vectors" / f"counter-fitted-{cache_key(asdict(settings))}"


def counter_fitted_cache_exists(settings: EmbeddedSynonymSettings = EmbeddedSynonymSettings()) -> bool:
    """Whether :func:`counter_fitted_vectors` of ``settings`` are cached (no GloVe or WordNet needed)."""
    stem = _counter_fitted_stem(settings)
    return stem.with_suffix(".npy").exists() and stem.with_suffix(".words.json").exists()


def counter_fitted_vectors(settings: EmbeddedSynonymSettings = EmbeddedSynonymSettings()) -> WordVectors:
    """The vectors of the embedded synonym sets: the ``settings.vocabulary_size`` most frequent alphabetic
    GloVe 6B-50d words counter-fitted to WordNet synonyms and antonyms ([N, 50] float32, unit rows).

    Built once (GloVe and WordNet are read: 30 s on a 2-core machine) and cached as ``.npy`` + word list in the
    cache folder; a damaged cache file is rebuilt."""
    from rift_fast.core.atomic_io import write_bytes_atomically

    stem = _counter_fitted_stem(settings)
    words_path, vectors_path = stem.with_suffix(".words.json"), stem.with_suffix(".npy")
    if words_path.exists() and vectors_path.exists():
        try:
            return WordVectors(json.loads(words_path.read_text(encoding="utf-8")), np.load(vectors_path))
        except (ValueError, OSError) as error:
            logger.warning("[rift_fast] counter-fitted vectors cache %s is damaged (%s); rebuilding it", stem, error)
    from rift_fast.synonyms.counterfit import counter_fit
    from rift_fast.synonyms.vectors import load_embedded_glove
    from rift_fast.synonyms.wordnet import wordnet_relations

    logger.info("[rift_fast] counter-fitting GloVe 50-d to WordNet (once; then cached) ...")
    vocabulary = _embedded_vocabulary(
        load_embedded_glove(max_words=4 * settings.vocabulary_size), settings.vocabulary_size
    )
    content_words = [w for w in vocabulary.words if w not in default_stop_words()]
    synonyms, antonyms = wordnet_relations(content_words, max_senses=settings.wordnet_senses)
    # Constraints only between content words of the vocabulary: the vectors know no others.
    content = frozenset(content_words)
    fitted = counter_fit(vocabulary.words, vocabulary.vectors, _within(synonyms, content), _within(antonyms, content))
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(fitted, dtype=np.float32))
    write_bytes_atomically(vectors_path, buffer.getvalue())
    write_text_atomically(words_path, json.dumps(vocabulary.words))
    return WordVectors(vocabulary.words, np.ascontiguousarray(fitted, dtype=np.float32))


def embedded_index(settings: EmbeddedSynonymSettings = EmbeddedSynonymSettings()) -> SynonymIndex:
    """The embedded default synonym sets (cached after the first build, about a minute)."""

    def build() -> SynonymIndex:
        logger.info("[rift_fast] building the embedded synonym sets (counter-fitting GloVe 50-d to WordNet) ...")
        return SynonymIndex.from_word_vectors(
            counter_fitted_vectors(settings),
            k=settings.k,
            max_distance=settings.max_distance,
            stop_words=default_stop_words(),
            source="embedded:" + settings.method,
        )

    return cached_index({"embedded": asdict(settings)}, build)
