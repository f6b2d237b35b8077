"""
Pretraining recipe, side by side with nanochat's current code, on the same real text.

    apt-get install python3.11-doc       # real prose: the Python docs' reStructuredText sources
    python -m bench.recipe --nanochat /path/to/nanochat-checkout --depths 4,8 --steps 300

Both projects get the same parquet shards (the corpus cut into documents, the last shard held out
for validation), train their own tokenizer at the same vocab size, then pretrain with their own
defaults at the same depth, sequence length, batch and number of steps; every project is compiled.
bits per byte does not depend on the tokenizer, so the two val bpb columns compare directly.
Prints val bpb at equal steps, s/step, and each one's bpb at the other's wall-clock.

The nanochat checkout is run from where it is (never copied into this repo), on this venv's torch;
the PyPI packages it needs that we lack (its `rustbpe`, `filelock`) go into a private folder that
only its processes see. `--only ours` skips nanochat (for ablations: `--ours-args "--smear 0"`).
Small models and small batches are not where either recipe is tuned: read the table as a smoke
test of the recipe's direction, not as its value at scale.

    python -m bench.recipe --flops       # the full profile's compute, from the FLOPs formula
"""

import argparse
import json
import os
import random
import re
import shlex
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CORPUS = "/usr/share/doc/python3.11/html/_sources"


TEXT_SUFFIXES = (".txt", ".rst", ".md", ".py")


def corpus_documents(corpus, doc_chars=4000):
    """Every text file (TEXT_SUFFIXES) under the comma-separated folders `corpus`, cut at blank lines into
    documents of about doc_chars characters."""
    docs = []
    walk = (entry for folder in corpus.split(",") for entry in sorted(os.walk(folder)))
    for root, _, files in walk:
        for name in sorted(f for f in files if f.endswith(TEXT_SUFFIXES)):
            with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
                text = f.read()
            piece = ""
            for para in text.split("\n\n"):
                piece += para + "\n\n"
                if len(piece) >= doc_chars:
                    docs.append(piece.strip())
                    piece = ""
            if piece.strip():
                docs.append(piece.strip())
    return docs


def write_shards(docs, directory, num_shards, seed=0):
    """Shuffle documents and write num_shards parquet shards (column `text`); the last is validation."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    os.makedirs(directory, exist_ok=True)
    docs = list(docs)
    random.Random(seed).shuffle(docs)
    per = -(-len(docs) // num_shards)
    for i in range(num_shards):
        table = pa.table({"text": docs[i * per:(i + 1) * per]})
        pq.write_table(table, os.path.join(directory, f"shard_{i:05d}.parquet"), row_group_size=1024,
                       compression="zstd")


def run(cmd, env, cwd, log_path):
    """Run a command, teeing its output into log_path; return the output."""
    print(f"$ {' '.join(shlex.quote(c) for c in cmd)}   (log: {log_path})", flush=True)
    t0 = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    out = open(log_path).read()
    if proc.returncode != 0:
        sys.exit(f"command failed with exit code {proc.returncode}; last lines of {log_path}:\n{out[-3000:]}")
    print(f"  done in {time.time() - t0:.0f}s", flush=True)
    return out


# Log formats: ours prints "step 00050 | val bpb 1.2345" and "step 00051/300 (...) | ... | 1234 ms | ...";
# nanochat prints "Step 00050 | Validation bpb: 1.234567" and "step 00051/00300 ... | dt: 1234.56ms | ...".
# MFU as each one reports it on a GPU (its own FLOPs formula and peak): "mfu 41.2%" / "bf16_mfu: 41.20".
PATTERNS = {
    "ours": (r"^step (\d+) \| val bpb ([\d.]+)", r"^step (\d+)/\d+ .*\| (\d+) ms \|", r"\| mfu ([\d.]+)%"),
    "nanochat": (r"^Step (\d+) \| Validation bpb: ([\d.]+)", r"^step (\d+)/\d+ .*\| dt: ([\d.]+)ms",
                 r"\| bf16_mfu: ([\d.]+)"),
}


def parse(log, who):
    bpb_re, dt_re, mfu_re = PATTERNS[who]
    bpb = {int(m[1]): float(m[2]) for m in re.finditer(bpb_re, log, re.M)}
    dts = [float(m[2]) / 1000 for m in re.finditer(dt_re, log, re.M)]
    mfus = [float(m[1]) for m in re.finditer(mfu_re, log, re.M)]
    return bpb, dts, mfus


def steady_step_time(dts, skip=3):
    """Median step time after the first few steps (which include compilation)."""
    rest = sorted(dts[skip:]) or sorted(dts)
    return rest[len(rest) // 2]


def bpb_at_time(bpb, sec_per_step, seconds):
    """Linear interpolation of the val bpb curve at a wall-clock of `seconds` training time."""
    points = sorted((step * sec_per_step, v) for step, v in bpb.items())
    if seconds >= points[-1][0]:
        return points[-1][1]
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t0 <= seconds <= t1:
            return v0 + (v1 - v0) * (seconds - t0) / (t1 - t0)
    return points[0][1]


def flops_table(ratio=8.0, vocab_size=32768, seq_len=2048, depths=(12, 20, 24, 26)):
    """Training compute of the recipe at each depth, from GPT.estimate_flops() on meta-device models."""
    import torch

    from nanochat.gpt import GPT, config_from_depth
    from nanochat.training import PEAK_BF16_FLOPS, horizon_tokens
    print(f"vocab {vocab_size:,}, sequence {seq_len}, {ratio:g} tokens per parameter in matmuls")
    print("depth | params (matmul) | FLOPs/token | tokens | training FLOPs | hours on 8xH100 at 40% MFU")
    for depth in depths:
        with torch.device("meta"):
            model = GPT(config_from_depth(depth, vocab_size, seq_len))
        n, f = model.num_scaling_params(), model.estimate_flops()
        tokens = horizon_tokens(n, ratio)
        hours = f * tokens / (8 * PEAK_BF16_FLOPS["H100"] * 0.40) / 3600
        print(f"{depth:5d} | {model.num_params() / 1e6:6.0f}M ({n / 1e6:.1f}M) | {f:.3e} | {tokens / 1e9:.2f}B | "
              f"{f * tokens:.3e} | {hours:.2f}")


def main(argv=None):
    p = argparse.ArgumentParser(description="Our pretraining recipe vs nanochat's, same text, same steps")
    p.add_argument("--flops", action="store_true", help="only print the recipe's training compute by depth")
    p.add_argument("--ratio", type=float, default=8.0, help="tokens per parameter for --flops")
    p.add_argument("--nanochat", default="", help="path of a nanochat checkout (required unless --only ours)")
    p.add_argument("--only", default="", choices=["", "ours", "nanochat"], help="run one side only")
    p.add_argument("--corpus", default=DEFAULT_CORPUS, help="folders of real text files, comma-separated")
    p.add_argument("--work", default="/tmp/bench_recipe", help="scratch folder: shards, tokenizers, logs")
    p.add_argument("--depths", default="4,8")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--eval-tokens", type=int, default=65536)
    p.add_argument("--max-seq-len", type=int, default=512)
    p.add_argument("--device-batch-size", type=int, default=16)
    p.add_argument("--total-batch-size", type=int, default=8192)
    p.add_argument("--vocab-size", type=int, default=8192)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--tok-chars", type=int, default=2_000_000_000, help="characters each tokenizer trains on")
    p.add_argument("--fp8", action="store_true", help="both sides train with --fp8 (CUDA GPUs with fp8 only)")
    p.add_argument("--prepare-only", action="store_true", help="write the shards and tokenizers, then stop "
                   "(e.g. on a CPU machine, before carrying --work to a GPU one)")
    p.add_argument("--ours-args", default="", help="extra base_train flags for our side (ablations)")
    p.add_argument("--tag", default="", help="name of this run's logs and results (default: derived)")
    args = p.parse_args(argv)
    if args.flops:
        return flops_table(args.ratio)
    sides = [args.only] if args.only else ["ours", "nanochat"]
    if "nanochat" in sides and not os.path.isfile(os.path.join(args.nanochat, "scripts", "base_train.py")):
        p.error(f"--nanochat {args.nanochat!r} is not a nanochat checkout (no scripts/base_train.py); "
                "clone github.com/karpathy/nanochat and pass its path")
    depths = [int(d) for d in args.depths.split(",")]
    args.work = os.path.abspath(args.work)  # nanochat runs from its checkout: a relative path would move
    os.makedirs(args.work, exist_ok=True)

    # ---- the shared shards, written once
    shard_dir = os.path.join(args.work, "shards")
    if not os.path.isdir(shard_dir):
        for folder in args.corpus.split(","):
            if not os.path.isdir(folder):
                p.error(f"--corpus: {folder!r} is not a folder; `apt-get install python3.11-doc` provides the default")
        docs = corpus_documents(args.corpus)
        write_shards(docs, shard_dir + ".tmp", args.shards)
        os.replace(shard_dir + ".tmp", shard_dir)
        print(f"corpus: {len(docs):,} documents, {sum(map(len, docs)):,} chars from {args.corpus}")
    python = sys.executable
    homes = {"ours": (REPO, os.path.join(args.work, "ours"), "base_data"),
             "nanochat": (args.nanochat, os.path.join(args.work, "nanochat"), "base_data_climbmix")}
    envs = {}
    for who in sides:
        cwd, base, data_name = homes[who]
        env = {**os.environ, "NANOCHAT_BASE_DIR": base, "PYTHONUNBUFFERED": "1"}
        if who == "nanochat":
            site = os.path.join(args.work, "nanochat_site")
            if not os.path.isdir(site):
                subprocess.run([os.path.join(os.path.dirname(python), "uv"), "pip", "install", "--python", python,
                                "--target", site, "--no-deps", "rustbpe", "filelock"], check=True)
            if subprocess.run([python, "-c", "import wandb"], capture_output=True).returncode != 0:
                # its base_train imports wandb at the top and only uses it with --run; a machine without it
                # (a bare GPU box) gets an empty module in the private folder
                with open(os.path.join(site, "wandb.py"), "w") as f:
                    f.write('"""Empty stand-in: nanochat imports wandb but this benchmark never logs to it."""\n')
            env["PYTHONPATH"] = site + os.pathsep + cwd   # its rustbpe shadows ours in its processes only
        envs[who] = env
        data = os.path.join(base, data_name)
        if not os.path.isdir(data):
            os.makedirs(base, exist_ok=True)
            os.symlink(os.path.relpath(shard_dir, base), data)  # relative: --work can be copied elsewhere
        if not os.path.isdir(os.path.join(base, "tokenizer")):
            run([python, "-m", "scripts.tok_train", "--vocab-size", str(args.vocab_size),
                 "--max-chars", str(args.tok_chars)], env, cwd, os.path.join(args.work, f"{who}_tok_train.log"))
    if args.prepare_only:
        return None

    common = ["--max-seq-len", str(args.max_seq_len), "--device-batch-size", str(args.device_batch_size),
              "--total-batch-size", str(args.total_batch_size), "--num-iterations", str(args.steps),
              "--eval-every", str(args.eval_every), "--eval-tokens", str(args.eval_tokens), "--sample-every", "-1",
              *(["--fp8"] if args.fp8 else [])]
    extra = {"ours": ["--compile", "1", "--save-every", str(args.steps), "--core-every", "0",
                      *shlex.split(args.ours_args)],
             "nanochat": ["--core-metric-every", "-1"]}
    results = {}
    for depth in depths:
        for who in sides:
            tag = args.tag or ("ours" + re.sub(r"[^\w]+", "_", args.ours_args) if who == "ours" else who)
            log_path = os.path.join(args.work, f"d{depth}_{tag}.log")
            cmd = [python, "-m", "scripts.base_train", "--depth", str(depth), *common, *extra[who]]
            if who == "ours":
                cmd += ["--model-tag", f"d{depth}_{tag}"]
            log = run(cmd, envs[who], homes[who][0], log_path)
            bpb, dts, mfus = parse(log, who)
            results[(depth, who)] = {"bpb": bpb, "sec_per_step": steady_step_time(dts), "tag": tag,
                                     "mfu": steady_step_time(mfus) if mfus else None}

    # ---- the table
    print(f"\nreal text: the shards in {shard_dir}; seq {args.max_seq_len}, batch {args.total_batch_size} tokens, "
          f"vocab {args.vocab_size}, {args.steps} steps; both compiled, torch {_torch_version()}")
    for depth in depths:
        rows = [results[(depth, who)] for who in sides]
        steps = sorted(set.intersection(*(set(r["bpb"]) for r in rows)))
        print(f"\ndepth {depth}: " + " | ".join(
            f"{who} {r['sec_per_step']:.3f} s/step, {args.total_batch_size / r['sec_per_step']:,.0f} tok/s"
            + (f", mfu {r['mfu']:.1f}% (its own formula)" if r["mfu"] else "") for who, r in zip(sides, rows)))
        print("  step | " + " | ".join(f"{who:>10s}" for who in sides))
        for s in steps:
            print(f"  {s:4d} | " + " | ".join(f"{r['bpb'][s]:10.4f}" for r in rows))
        if len(rows) == 2:
            ours, ref = rows
            t_end = min(args.steps * ours["sec_per_step"], args.steps * ref["sec_per_step"])
            at = [bpb_at_time(r["bpb"], r["sec_per_step"], t_end) for r in (ours, ref)]
            print(f"  at equal wall-clock ({t_end:.0f}s of training): ours {at[0]:.4f} | nanochat {at[1]:.4f}")
    out = os.path.join(args.work, "results.json")
    with open(out + ".tmp", "w") as f:
        json.dump({f"d{d}_{w}": r for (d, w), r in results.items()}, f, indent=1)
    os.replace(out + ".tmp", out)
    return results


def _torch_version():
    import torch
    return torch.__version__


if __name__ == "__main__":
    main()
