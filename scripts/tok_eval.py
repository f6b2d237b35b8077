"""Evaluate the trained tokenizer: compression (bytes per token, higher is better) on several kinds of text, next to
GPT-2's and GPT-4's when tiktoken can load them (it fetches them on first use; offline they are skipped with a note).
"""

import argparse
import os

from nanochat.common import BadInput, atomic_write_json, cli, get_base_dir, positive
from nanochat.dataset import data_dir, iter_texts
from nanochat.report import get_report
from nanochat.tokenizer import get_tokenizer

# Small hand-written samples of different kinds of text.
SAMPLES = {
    "news": (
        "The city council voted on Tuesday to extend the night bus service through the winter, after a "
        "survey found that nearly a third of late-shift workers had no other way home. The extension will "
        "cost about $1.2 million and runs until March 31, the transport office said in a statement."
    ),
    "korean": (
        "오늘 아침에는 비가 조금 내렸지만 오후가 되자 하늘이 맑아졌다. 우리는 공원에 가서 오래된 나무 아래에 "
        "앉아 책을 읽었고, 저녁에는 시장에서 산 채소로 국을 끓였다."
    ),
    "code": (
        "def moving_average(values, window):\n"
        "    if window <= 0:\n"
        "        raise ValueError(f'window must be positive, got {window}')\n"
        "    out, total = [], 0.0\n"
        "    for i, v in enumerate(values):\n"
        "        total += v\n"
        "        if i >= window:\n"
        "            total -= values[i - window]\n"
        "        out.append(total / min(i + 1, window))\n"
        "    return out\n"
    ),
    "math": (
        "Let $f(x) = \\sum_{n=0}^{\\infty} \\frac{x^n}{n!}$. Then $f'(x) = f(x)$ and $f(0) = 1$, so "
        "$f(x) = e^x$. For $x = 2$ we get $e^2 \\approx 7.389$, and $\\int_0^1 f(t)\\,dt = e - 1$."
    ),
    "science": (
        "Photosynthesis converts light energy into chemical energy: in the chloroplast, water is split, "
        "oxygen is released, and carbon dioxide is fixed into sugars by the Calvin cycle. Roughly 6 CO2 + "
        "6 H2O -> C6H12O6 + 6 O2 summarises the overall reaction."
    ),
}


def load_reference_encodings():
    """GPT-2 and GPT-4 (cl100k_base) tokenizers, or a note saying why they were skipped."""
    import tiktoken
    refs, notes = {}, []
    for label, name in (("gpt2", "gpt2"), ("gpt4", "cl100k_base")):
        try:
            refs[label] = tiktoken.get_encoding(name).encode_ordinary
        except Exception as e:  # offline: tiktoken cannot fetch the rank file
            notes.append(f"skipped {label} ({name}): tiktoken could not load it ({type(e).__name__}); "
                         "it needs internet on first use")
    return refs, notes


def evaluate(args):
    base_dir = get_base_dir()
    tok = get_tokenizer(base_dir)
    texts = dict(SAMPLES)
    for split in ("train", "val"):   # the first documents of the split, up to sample_chars
        texts[split] = "\n".join(iter_texts(data_dir(base_dir), split, max_chars=args.sample_chars))

    refs, notes = load_reference_encodings()
    encoders = {"ours": tok.encode, **refs}
    encoded = {name: {label: enc(text) for label, text in texts.items()} for name, enc in encoders.items()}
    for label, ids in encoded["ours"].items():   # a compression that loses text is no compression
        if tok.decode(ids) != texts[label] or not all(0 <= i < tok.get_vocab_size() for i in ids):
            raise BadInput(f"the tokenizer in {base_dir}/tokenizer does not encode the {label} text losslessly "
                           "into ids below its vocab size; retrain it with `python -m scripts.tok_train`")
    results = {name: {label: round(len(texts[label].encode("utf-8")) / max(1, len(ids)), 4)
                      for label, ids in by_label.items()} for name, by_label in encoded.items()}

    header = f"{'text':<10} {'bytes':>10}" + "".join(f" {n + ' B/tok':>12}" for n in encoders)
    print(f"tokenizer vocab {tok.get_vocab_size():,}; bytes per token (higher = better compression)")
    print(header)
    print("-" * len(header))
    for label, text in texts.items():
        print(f"{label:<10} {len(text.encode('utf-8')):>10,}"
              + "".join(f" {results[n][label]:>12.3f}" for n in encoders))
    for note in notes:
        print(note)

    atomic_write_json(os.path.join(base_dir, "eval", "tokenizer.json"),
                      {"vocab_size": tok.get_vocab_size(), "bytes_per_token": results, "notes": notes})
    get_report(base_dir).log("Tokenizer evaluation", [
        {"vocab_size": tok.get_vocab_size()},
        *[{f"{n}_{label}_bytes_per_token": v for label, v in r.items()} for n, r in results.items()],
        *notes,
    ])
    print(f"val_bytes_per_token: {results['ours']['val']:.4f}")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description="Evaluate tokenizer compression")
    parser.add_argument("--sample-chars", type=positive(int), default=2_000_000,
                        help="characters sampled from each split")
    args = parser.parse_args(argv)
    with cli("tok_eval"):
        return evaluate(args)


if __name__ == "__main__":
    main()
