"""How close the embedded synonym sets come to the real counter-fitted neighbour sets.

    python benchmarks/synonym_overlap.py --reference counterfitted_neighbors.json

On the words both sources give synonyms to: precision (share of our synonyms that are real ones),
recall (share of the real ones we find) and Jaccard, for the embedded default (counter-fitted
GloVe 50-d) and for the alternative (WordNet synonyms ranked by GloVe similarity).
"""

import argparse
import time

import numpy as np
from measure import neighbours_file  # beside this script

from rift_fast.synonyms import SynonymIndex, embedded_index, load_embedded_glove
from rift_fast.synonyms.index import EmbeddedSynonymSettings, _embedded_vocabulary


def overlap(ours: SynonymIndex, real: SynonymIndex) -> dict:
    common = [w for w in ours if ours[w] and real.synonyms(w)]
    shared = [len(set(ours[w]) & set(real[w])) for w in common]
    return {
        "words_with_synonyms": ours.num_words_with_synonyms(),
        "words_in_both": len(common),
        "precision": float(np.mean([s / len(ours[w]) for s, w in zip(shared, common)])),
        "recall": float(np.mean([s / len(real[w]) for s, w in zip(shared, common)])),
        "jaccard": float(np.mean([s / len(set(ours[w]) | set(real[w])) for s, w in zip(shared, common)])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--reference",
        default=neighbours_file(),
        help="counterfitted_neighbors.json (default: the file $RIFT_FAST_NEIGHBOURS names)",
    )
    args = parser.parse_args()
    if args.reference is None:
        parser.error("give --reference counterfitted_neighbors.json, or set $RIFT_FAST_NEIGHBOURS to it")
    real = SynonymIndex.from_neighbour_json(args.reference)
    settings = EmbeddedSynonymSettings()
    started = time.perf_counter()
    embedded = embedded_index(settings)
    print(f"embedded index ready in {time.perf_counter() - started:.1f} s (cached after the first build)")
    vocabulary = _embedded_vocabulary(
        load_embedded_glove(max_words=4 * settings.vocabulary_size), settings.vocabulary_size
    )
    wordnet_ranked = SynonymIndex.from_wordnet(vocabulary.words, k=settings.k, ranking=vocabulary)
    print(f"reference: {args.reference} ({real.num_words_with_synonyms()} words with synonyms)")
    print("| source | words with synonyms | words in both | precision | recall | Jaccard |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, index in [("counter-fitted GloVe-50d (default)", embedded), ("WordNet ranked by GloVe", wordnet_ranked)]:
        o = overlap(index, real)
        print(
            f"| {name} | {o['words_with_synonyms']} | {o['words_in_both']} | {o['precision']:.3f} | "
            f"{o['recall']:.3f} | {o['jaccard']:.3f} |"
        )
    for word in ["terrible", "good", "movie", "boring"]:
        print(f"{word}: ours {embedded.synonyms(word)} | real {real.synonyms(word)}")


if __name__ == "__main__":
    main()
