"""
The stages research/autoresearch.py can improve, each with its command, its protected evaluation, the
metric that evaluation writes, what the agent may edit, and what must exist first.
"""

import contextlib
import fnmatch
import glob
import json
import os
from dataclasses import dataclass, field


@dataclass
class Stage:
    """Commands get {python} {budget} {run_dir} {slot} {metrics} {eval_seed} filled in (literal braces: {{ }})."""
    name: str
    command: str    # the stage's own run (e.g. training), code the agent may edit; "" for none
    evaluate: str   # runs after it, only `protected` code, and writes `metrics`
    metrics: str    # a JSON file relative to the experiment's NANOCHAT_BASE_DIR
    metric: str     # key in it; a dot goes one level down: "tasks.SyntheticMath.accuracy" (also for guard)
    higher_is_better: bool
    editable: list                                  # globs relative to the repo root
    protected: list = field(default_factory=list)   # the evaluation's code: never editable
    needs: dict = field(default_factory=dict)       # artifact under NANOCHAT_BASE_DIR -> the command that makes it
    guard: str = ""      # key whose value must equal the baseline's (e.g. a digest of generated tokens)
    memory: str = ""     # "<glob under the base dir>:<key>" of the stage's own peak memory (MiB); else peak RSS
    held_out: str = ""   # a `needs` folder of shards whose last (validation) only the evaluation may read
    grace: float = 60.0  # seconds past the budget (startup, compile, evaluation) before a run is killed


DATA = "python -m nanochat.dataset -n 8   (offline: python -m nanochat.dataset --embedded)"
TOKENIZER = "python -m scripts.tok_train"
# What the chat stages are judged with: chat evaluation on generated problems (offline), through the engine.
CHAT_EVAL = ["scripts/chat_eval.py", "nanochat/chat_eval.py", "nanochat/engine.py", "nanochat/execution.py",
             "nanochat/checkpoint.py", "nanochat/tokenizer.py", "nanochat/gpt.py", "nanochat/synthetic/*",
             *(f"tasks/{name}.py" for name in ("registry", "common", "synthetic", "spellingbee", "gsm8k", "arc",
                                               "mmlu", "humaneval"))]
STAGES = {s.name: s for s in [
    # The crate is rebuilt per experiment and loaded from the worktree: `rustbpe.so` there shadows the venv's.
    # Compression is measured by tok_eval through tokenizer.py (tiktoken), which checks it is lossless.
    Stage("tokenizer", "cargo build --release --quiet --manifest-path rustbpe/Cargo.toml --features "
          "pyo3/extension-module --target-dir {run_dir}/cargo{slot} && cp {run_dir}/cargo{slot}/release/librustbpe.so"
          " rustbpe.so && {python} -m scripts.tok_train --vocab-size=32768 --max-chars=200000000",
          "{python} -m scripts.tok_eval", "eval/tokenizer.json", "bytes_per_token.ours.val", True,
          ["rustbpe/src/*", "scripts/tok_train.py"],
          protected=["scripts/tok_eval.py", "nanochat/tokenizer.py", "nanochat/dataset.py"],
          needs={"base_data": DATA}, held_out="base_data", grace=300),
    # val bpb by base_eval, which first checks the (editable) model is causal and reports its true loss.
    Stage("base", "{python} -m scripts.base_train --time-budget={budget} --depth=12 --max-seq-len=1024 "
          "--eval-every=1000000 --eval-tokens=65536 --sample-every=-1 --save-every=1000000 --keep-last=1 "
          "--core-every=0",
          "{python} -m scripts.base_eval --skip-core --eval-tokens=2097152 --sample-tokens=0", "eval/base.json",
          "val_bpb", False,
          ["nanochat/gpt.py", "nanochat/optim.py", "nanochat/training.py", "nanochat/run.py", "scripts/base_train.py"],
          protected=["scripts/base_eval.py", "nanochat/loss_eval.py", "nanochat/dataloader.py", "nanochat/dataset.py",
                     "nanochat/checkpoint.py", "nanochat/tokenizer.py"],
          needs={"base_data": DATA, "tokenizer": TOKENIZER}, memory="base_checkpoints/*/metrics.json:peak_memory_mib",
          held_out="base_data", grace=300),
    Stage("sft", "{python} -m scripts.chat_sft --mixture=synthetic --time-budget={budget} --eval-every=1000000 "
          "--eval-every-chatcore=-1 --save-every=1000000 --keep-last=1",
          "{python} -m scripts.chat_eval -i sft -a SyntheticMathChoice,SyntheticMath,SpellingBee --max-problems=256 "
          "--eval-seed={eval_seed}",
          "eval/chat_sft.json", "chatcore", True,
          ["scripts/chat_sft.py", "nanochat/finetune.py", "nanochat/chat_data.py", "tasks/mixtures.py",
           "nanochat/training.py", "nanochat/optim.py", "nanochat/run.py"],
          protected=CHAT_EVAL, needs={"tokenizer": TOKENIZER, "mid_checkpoints": "python -m scripts.mid_train"},
          memory="chatsft_checkpoints/*/metrics.json:peak_memory_mib", grace=600),
    Stage("rl", "{python} -m scripts.chat_rl --task=synthetic --time-budget={budget} --eval-every=1000000 "
          "--save-every=1000000 --keep-last=1",
          "{python} -m scripts.chat_eval -i rl -a SyntheticMath --max-problems=256 --eval-seed={eval_seed}",
          "eval/chat_rl.json",
          "tasks.SyntheticMath.accuracy", True,
          ["scripts/chat_rl.py", "nanochat/training.py", "nanochat/optim.py", "nanochat/run.py"],
          protected=CHAT_EVAL, needs={"tokenizer": TOKENIZER, "chatsft_checkpoints": "python -m scripts.chat_sft"},
          grace=600),
    # Decode speed of a random model; the digest of its seeded samples must not change (same outputs, faster).
    # 256 timed steps: run-to-run spread ~3% on an H200, against ~13% with the bench's default 64.
    Stage("engine", "", "{python} -m bench.engine --device-type= --batch-sizes 1 16 --decode-steps 256 "
          "--json {metrics}", "eval/engine.json", "decode_tokens_per_s", True,
          ["nanochat/engine.py", "nanochat/gpt.py"], protected=["bench/engine.py"],
          guard="outputs_sha256", grace=120),
]}


def lookup(data, key):
    """data["a"]["b"] for the key "a.b"; None when any level is missing."""
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def matches(path, globs):
    return any(fnmatch.fnmatchcase(path, g) for g in globs)


def read_memory(base, spec):
    """The largest value of `key` in the JSON files matching `glob` under base, for spec "glob:key"."""
    pattern, _, key = spec.rpartition(":")
    values = []
    for path in glob.glob(os.path.join(base, pattern)):
        with contextlib.suppress(OSError, ValueError, TypeError):  # a file cut short by a kill, or without the key
            values.append(float(lookup(json.load(open(path)), key)))
    return max(values, default=None)
