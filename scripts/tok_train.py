"""Train the tokenizer on the training shards of base_data and save it to $NANOCHAT_BASE_DIR/tokenizer. The text
streams from parquet into rustbpe (memory grows with distinct pre-token chunks, not the corpus); val is never read.
"""

import argparse
import time

from nanochat.common import get_base_dir, positive
from nanochat.dataset import data_dir, iter_texts
from nanochat.report import get_report
from nanochat.tokenizer import SPECIAL_TOKENS, Tokenizer, tokenizer_dir


def main(argv=None):
    p = argparse.ArgumentParser(description="Train the BPE tokenizer")
    p.add_argument("--vocab-size", type=positive(int), default=32768, help="vocabulary size including special tokens")
    p.add_argument("--max-chars", type=positive(int), default=2_000_000_000, help="characters of training text to use")
    p.add_argument("--doc-cap", type=positive(int), default=10_000, help="crop each document to this many characters")
    args = p.parse_args(argv)

    base_dir = get_base_dir()
    t0 = time.time()
    texts = iter_texts(data_dir(base_dir), "train", max_chars=args.max_chars, doc_cap=args.doc_cap)
    seen = {"chars": 0}

    def counted(it):
        for t in it:
            seen["chars"] += len(t)
            yield t

    tok = Tokenizer.train_from_iterator(counted(texts), args.vocab_size)
    train_time = time.time() - t0
    out = tokenizer_dir(base_dir)
    tok.save(out)
    token_bytes = tok.token_bytes()
    nonzero = token_bytes[token_bytes > 0].float()
    print(f"trained on {seen['chars']:,} chars in {train_time:.1f}s -> vocab {tok.get_vocab_size():,} "
          f"(incl. {len(SPECIAL_TOKENS)} special); saved to {out}")
    if tok.get_vocab_size() < args.vocab_size:
        print(f"note: the corpus ran out of pairs to merge before reaching --vocab-size {args.vocab_size}")
    get_report(base_dir).log("Tokenizer training", [vars(args), {
        "train_chars": seen["chars"], "train_time_s": round(train_time, 2),
        "trained_vocab_size": tok.get_vocab_size(),   # below --vocab-size if the corpus ran out of pairs
        "num_special_tokens": len(SPECIAL_TOKENS), "token_bytes_min": int(nonzero.min()),
        "token_bytes_max": int(nonzero.max()), "token_bytes_mean": round(float(nonzero.mean()), 3),
    }])


if __name__ == "__main__":
    main()
