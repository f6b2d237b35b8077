"""
The slow, obviously-correct byte-level BPE trainer that rustbpe is tested against.

Same rule as rustbpe: split each text with the pattern, count the distinct chunks, then repeat:
recount *every* adjacent pair from scratch, take the most frequent (ties go to the smallest pair),
merge it everywhere (non-overlapping, left to right) into the next token id.

Deliberately missing: incremental counts, parallelism, an encoder, any speed at all. Its cost is
(merges x total length of the distinct chunks), so use it on small corpora only.
"""

from collections import Counter

import regex


def count_chunks(texts, pattern):
    """Counter: each distinct chunk (a tuple of byte values) -> how often it occurs. Empty matches are skipped."""
    compiled = regex.compile(pattern)
    chunks = Counter()
    for text in texts:
        for match in compiled.finditer(text):
            if match.group():
                chunks[tuple(match.group().encode("utf-8"))] += 1
    return chunks


def count_pairs(words):
    """Counter: adjacent pair -> sum over words of (word count x occurrences, overlaps included)."""
    pairs = Counter()
    for ids, n in words.items():
        for pair in zip(ids, ids[1:]):
            pairs[pair] += n
    return pairs


def merge(ids, pair, new_id):
    """ids with every non-overlapping occurrence of pair, scanning left to right, replaced by new_id."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return tuple(out)


def train(texts, vocab_size, pattern):
    """[(token bytes, rank)] in rank order, the same shape as rustbpe's get_mergeable_ranks()."""
    words = count_chunks(texts, pattern)
    vocab = [bytes([b]) for b in range(256)]
    while len(vocab) < vocab_size:
        pairs = count_pairs(words)
        if not pairs:
            break  # every chunk is a single token: nothing left to merge
        # Highest count first; among equal counts the smallest pair, hence the negated ids.
        best = max(pairs, key=lambda p: (pairs[p], -p[0], -p[1]))
        new_id = len(vocab)
        merged = Counter()
        for ids, n in words.items():
            merged[merge(ids, best, new_id)] += n
        words = merged
        vocab.append(vocab[best[0]] + vocab[best[1]])
    return [(token, rank) for rank, token in enumerate(vocab)]
