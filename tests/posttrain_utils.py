"""A tiny base checkpoint for the midtraining and SFT tests, made by the real stages, in-process.

`make_base_dir(path)` writes a small embedded corpus, trains a BPE tokenizer (vocab 512) with
scripts/tok_train.py and pretrains a depth-2 model for a few steps with scripts/base_train.py,
tag "base". Call it with NANOCHAT_BASE_DIR pointing at `path` (the stages read it from there).
The model is barely trained: enough to start from, far from what chat data teaches.
"""

import os
import subprocess
import sys

from nanochat.synthetic import write_embedded_corpus
from tests.dist_utils import REPO_ROOT

BASE_TAG = "base"
SEQ_LEN = 128
MODEL = ["--depth=2", "--aspect-ratio=64", "--head-dim=64", f"--max-seq-len={SEQ_LEN}"]
# common flags of mid_train and chat_sft for a quick run on the embedded tasks
POSTTRAIN = [f"--model-tag={BASE_TAG}", "--mixture=synthetic", "--synthetic-size=400", f"--max-seq-len={SEQ_LEN}",
             "--device-batch-size=4", "--device-type=cpu"]


def make_base_dir(path):
    from scripts import base_train, tok_train
    write_embedded_corpus(os.path.join(path, "base_data"), num_shards=2, chars_per_shard=200_000)
    tok_train.main(["--vocab-size=512", "--max-chars=200000"])
    base_train.main([*MODEL, "--device-batch-size=4", "--total-batch-size=512", "--num-iterations=15",
                     "--eval-every=100", "--eval-tokens=1024", "--sample-every=-1", "--compile=0",
                     "--device-type=cpu", f"--model-tag={BASE_TAG}", "--core-every=0"])
    return path


def env_for(base_dir):
    return {**os.environ, "NANOCHAT_BASE_DIR": str(base_dir), "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO_ROOT}


def run_module(base_dir, module, *args, timeout=300):
    """`python -m module args` in a subprocess; returns the CompletedProcess (the caller asserts)."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=env_for(base_dir),
                          capture_output=True, text=True, timeout=timeout)
