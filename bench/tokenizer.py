"""
Benchmark: rustbpe training against HuggingFace `tokenizers`, and rustbpe encoding against tiktoken.

    python -m bench.tokenizer [--mb 25] [--vocab 8192 32768]

The corpus is generated deterministically (no network): documents from nanochat.synthetic when it is
there, interleaved with "wild" text from a Zipf-distributed made-up lexicon in several scripts, plus
numbers, punctuation and whitespace. Synthetic English alone has only a few thousand distinct chunks;
the wild half brings that to the hundreds of thousands that real web text of this size has, which is
what the merge loop's cost depends on.

Each trainer runs in a fresh subprocess so its peak memory (ru_maxrss, minus the process's RSS once
the corpus is loaded) is its own. Both trainers use all cores and the same split pattern; the
`tokenizers` one is made byte-level (ByteLevel without its own regex) so the vocabularies match.
This script prints numbers; it asserts nothing about speed.
"""

import argparse
import json
import os
import pickle
import random
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

# -----------------------------------------------------------------------------
# The corpus

# Syllables per script: words built from them share pairs the way real words do.
SCRIPTS = {
    "latin": "ba be bi bo bu ca co da de di do fa fe fi ga go ha he hi ja ka ke ki la le li lo lu ma me mi mo mu "
             "na ne ni no nu pa pe pi po ra re ri ro ru sa se si so su ta te ti to tu va ve vi wa we xo ya zu "
             "th sh ch st tr pl gr er in an on en ing ion ed ly".split(),
    "accented": "é è ê à â ç ñ ö ü ß ø å í ó ú ő ł ś ž č".split(),
    "cyrillic": "ка ни то ра ли во до ме ст пр ов на ко ре".split(),
    "greek": "κα λο με τα πο νι ρη σε".split(),
    "cjk": [chr(c) for c in range(0x4E00, 0x4E00 + 600)],  # the first 600 CJK ideographs
    "emoji": "🙂 😂 👍 🔥 ❤️ 🎉 🚀 🌍 👍🏽 🇫🇷".split(),
}
SCRIPT_WEIGHTS = {"latin": 0.78, "accented": 0.06, "cyrillic": 0.06, "greek": 0.03, "cjk": 0.06, "emoji": 0.01}
PUNCTUATION = [".", ",", ",", "!", "?", ":", ";", "...", ")", "\"", "'s", "'t", " -", "%"]


def make_lexicon(seed, n_words):
    """n_words made-up words; word i is used with probability proportional to 1 / (i + 2.7) (Zipf)."""
    rng = random.Random(seed)
    names = list(SCRIPT_WEIGHTS)
    scripts = rng.choices(names, weights=[SCRIPT_WEIGHTS[s] for s in names], k=n_words)
    words = []
    for script in scripts:
        n = rng.randint(1, 4)
        if script == "accented":  # accents sit inside Latin words
            parts = rng.choices(SCRIPTS["latin"], k=n)
            parts.insert(rng.randint(0, n), rng.choice(SCRIPTS["accented"]))
        else:
            parts = rng.choices(SCRIPTS[script], k=n)
        words.append("".join(parts))
    weights = 1.0 / (np.arange(n_words) + 2.7)
    return words, np.cumsum(weights) / weights.sum()


def wild_document(rng, words, cdf, n_words):
    """One document: Zipf words with capitals, punctuation, numbers and line breaks."""
    picks = np.searchsorted(cdf, rng.random(n_words))
    decor = rng.random(n_words)
    out = []
    for i, (w, d) in enumerate(zip(picks, decor)):
        word = words[w]
        if d < 0.06:
            word = word.capitalize()
        elif d < 0.10:
            word = str(int(rng.integers(0, 10 ** int(rng.integers(1, 8)))))
        elif d < 0.11:
            word = f"{words[w]}_{words[(w * 7 + 1) % len(words)]}({int(d * 1e4)})"
        out.append(word)
        if d > 0.88:  # the digits of d pick the mark: no extra random draw per word
            out.append(PUNCTUATION[int((d - 0.88) * 1e4) % len(PUNCTUATION)])
        if d > 0.985:
            out.append("\n\n" if d > 0.995 else "\n")
        elif i + 1 < n_words:
            out.append("  " if d < 0.002 else "\t" if d < 0.003 else " ")
    return "".join(out)


def make_corpus(megabytes, seed=0):
    """About `megabytes` MB (UTF-8) of documents, the same for the same arguments."""
    try:
        from nanochat.synthetic import generate_documents
        synthetic = generate_documents(seed)
    except ImportError:
        synthetic = None
    rng = np.random.default_rng(seed)
    words, cdf = make_lexicon(seed, 200_000)
    docs, size, target = [], 0, int(megabytes * 1e6)
    while size < target:
        if synthetic is not None and len(docs) % 2 == 1:
            doc = next(synthetic)
        else:
            doc = wild_document(rng, words, cdf, int(rng.integers(20, 1500)))
        docs.append(doc)
        size += len(doc.encode("utf-8"))
    return docs


# -----------------------------------------------------------------------------
# One measurement per subprocess


def cpu_seconds():
    """User + system CPU time of this process so far, all threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes():
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def train_rustbpe(docs, vocab_size):
    import rustbpe

    tok = rustbpe.Tokenizer()
    tok.train_from_iterator(docs, vocab_size)
    return tok, tok.vocab_size


def train_hf(docs, vocab_size):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    import rustbpe

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(rustbpe.GPT4_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=0, show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs, trainer)
    return tok, tok.get_vocab_size()


def best_of(n, fn):
    """(fastest wall time of n runs, the last result)."""
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def encode_speeds(tok, docs):
    """MB/s of rustbpe.batch_encode and of tiktoken's batch encode with the same ranks, and whether they agree."""
    import tiktoken

    enc = tiktoken.Encoding(name="bench", pat_str=tok.get_pattern(), mergeable_ranks=dict(tok.get_mergeable_ranks()),
                            special_tokens={})
    t_rust, ours = best_of(2, lambda: tok.batch_encode(docs))
    t_tik, theirs = best_of(2, lambda: enc.encode_ordinary_batch(docs, num_threads=os.cpu_count()))
    return t_rust, t_tik, ours == theirs


def worker(trainer, corpus_path, vocab_size, repeat):
    """Runs in a fresh process: load the corpus, train `repeat` times, print one JSON line of numbers
    (the fastest run's times: on a shared machine the minimum is the least disturbed)."""
    with open(corpus_path, "rb") as f:
        docs = pickle.load(f)
    baseline = rss_bytes()
    train = {"rustbpe": train_rustbpe, "tokenizers": train_hf}[trainer]
    seconds = cpu = float("inf")
    for _ in range(repeat):
        tok = None  # free the previous run's tokenizer so it does not count in this run's peak
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        tok, final_vocab = train(docs, vocab_size)
        seconds, cpu = min(seconds, time.perf_counter() - t0), min(cpu, cpu_seconds() - cpu0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    result = {"seconds": seconds, "cpu": cpu, "peak_mb": (peak - baseline) / 1e6, "vocab": final_vocab}
    if trainer == "rustbpe":
        result["encode_rust_s"], result["encode_tiktoken_s"], result["same_ids"] = encode_speeds(tok, docs)
    print(json.dumps(result))


def run_worker(trainer, corpus_path, vocab_size, repeat):
    cmd = [sys.executable, "-m", "bench.tokenizer", "--worker", trainer, "--corpus", corpus_path,
           "--vocab", str(vocab_size), "--repeat", str(repeat)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# -----------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=25.0, help="corpus size in MB of UTF-8 text")
    parser.add_argument("--vocab", type=int, nargs="+", default=[8192, 32768], help="vocab sizes to train")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    parser.add_argument("--repeat", type=int, default=1, help="train this many times, report the fastest")
    parser.add_argument("--worker", choices=["rustbpe", "tokenizers"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.corpus, args.vocab[0], args.repeat)
        return

    import regex

    import rustbpe

    t0 = time.perf_counter()
    docs = make_corpus(args.mb, args.seed)
    mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
    split = regex.compile(rustbpe.GPT4_PATTERN)
    distinct = len({c for d in docs for c in split.findall(d)})
    print(f"corpus: {len(docs):,} documents, {mb:.1f} MB, {distinct:,} distinct chunks "
          f"(generated in {time.perf_counter() - t0:.1f}s); {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory() as tmp:
        corpus_path = os.path.join(tmp, "corpus.pkl")
        with open(corpus_path, "wb") as f:
            pickle.dump(docs, f)
        rows = []
        for vocab_size in args.vocab:
            rust = run_worker("rustbpe", corpus_path, vocab_size, args.repeat)
            hf = run_worker("tokenizers", corpus_path, vocab_size, args.repeat)
            rows.append((vocab_size, rust, hf))

    print()
    print("training")
    print(f"{'vocab':>7} | {'trainer':<10} | {'final vocab':>11} | {'seconds':>7} | {'cpu s':>6} | {'MB/s':>6} "
          f"| {'peak MB':>7} | speedup")
    print("-" * 85)
    for vocab_size, rust, hf in rows:
        for name, r in [("rustbpe", rust), ("tokenizers", hf)]:
            speedup = f"{hf['seconds'] / rust['seconds']:.2f}x" if name == "rustbpe" else ""
            print(f"{vocab_size:>7} | {name:<10} | {r['vocab']:>11} | {r['seconds']:>7.2f} | {r['cpu']:>6.2f} "
                  f"| {mb / r['seconds']:>6.2f} | {r['peak_mb']:>7.0f} | {speedup}")
    print()
    print("encoding the whole corpus (batch, all cores), ranks from rustbpe")
    print(f"{'vocab':>7} | {'rustbpe MB/s':>12} | {'tiktoken MB/s':>13} | same ids")
    print("-" * 50)
    for vocab_size, rust, _ in rows:
        print(f"{vocab_size:>7} | {mb / rust['encode_rust_s']:>12.2f} | {mb / rust['encode_tiktoken_s']:>13.2f} "
              f"| {rust['same_ids']}")


if __name__ == "__main__":
    main()
