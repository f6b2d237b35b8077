"""
Benchmark: evaluation throughput (examples per second) of a small randomly initialised model, for CORE
(nanochat/core_eval.py) and for categorical chat eval (nanochat/chat_eval.py: one forward per question).

    python -m bench.eval [--depth 4] [--seq-len 512] [--examples 16] [--chat-examples 64] \
        [--batch-sizes 1 8 32]

Everything is generated here, offline and deterministically: a BPE tokenizer trained on the embedded
corpus (nanochat.synthetic), and an eval bundle in the real layout whose three tasks mimic the shape
of the real ones: multiple choice with 4 choices and 10 few-shot examples (like HellaSwag), schema
with 2 options and 5 few-shot (like Winogrande), language modelling with 10 few-shot (like LAMBADA).
The chat benchmark asks SyntheticMathChoice questions (tasks/synthetic.py: four choices, the MMLU prompt
format). The model's answers are meaningless; only the time matters. Timings cover rendering/tokenization,
padding and the forward passes, i.e. all of evaluate_task, per task. Prints numbers, asserts nothing.
"""

import argparse
import csv
import itertools
import json
import os
import random
import tempfile
import time

import torch
import yaml

from nanochat.chat_eval import evaluate_task as evaluate_chat_task
from nanochat.common import autodetect_device_type
from nanochat.core_eval import evaluate_task, load_core_tasks
from nanochat.gpt import GPT, config_from_depth
from nanochat.synthetic import generate_documents
from nanochat.tokenizer import Tokenizer
from tasks.synthetic import SyntheticMathChoice


def sentences(n, seed=0):
    """n sentences of at least 6 words from the embedded corpus."""
    out = []
    for doc in generate_documents(seed):
        for s in doc.replace("\n", " ").split(". "):
            if len(s.split()) >= 6:
                out.append(s.strip() + ".")
        if len(out) >= n:
            return out[:n]


def halves(s):
    words = s.split()
    return " ".join(words[:len(words) // 2]), " ".join(words[len(words) // 2:])


def write_bench_bundle(root, n, seed=0):
    """An eval bundle with one task of each type, n examples each."""
    rng = random.Random(seed)
    sents = sentences(4 * n, seed)
    split = [halves(s) for s in sents]
    mc, schema, lm = [], [], []
    for i in range(n):
        query, ending = split[i]
        choices = [ending] + [split[rng.randrange(len(split))][1] for _ in range(3)]
        rng.shuffle(choices)
        mc.append({"query": query, "choices": choices, "gold": choices.index(ending)})
        first, second = split[n + i]
        other = split[rng.randrange(len(split))][0]
        gold = rng.randrange(2)
        schema.append({"context_options": [first, other] if gold == 0 else [other, first],
                       "continuation": second, "gold": gold})
        words = sents[2 * n + i].split()
        lm.append({"context": " ".join(words[:-1]), "continuation": words[-1]})
    tasks = [("bench_mc", "multiple_choice", 10, 25.0, mc), ("bench_schema", "schema", 5, 50.0, schema),
             ("bench_lm", "language_modeling", 10, 0.0, lm)]
    os.makedirs(os.path.join(root, "eval_data"), exist_ok=True)
    config = {"icl_tasks": [{"label": label, "dataset_uri": f"{label}.jsonl", "num_fewshot": [shots],
                             "icl_task_type": kind} for label, kind, shots, _, _ in tasks]}
    with open(os.path.join(root, "core.yaml"), "w") as f:
        yaml.safe_dump(config, f)
    with open(os.path.join(root, "eval_meta_data.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Eval Task", "Random baseline"])
        w.writerows([label, baseline] for label, _, _, baseline, _ in tasks)
    for label, _, _, _, examples in tasks:
        with open(os.path.join(root, "eval_data", f"{label}.jsonl"), "w") as f:
            f.writelines(json.dumps(ex) + "\n" for ex in examples)
    return root


def main(argv=None):
    p = argparse.ArgumentParser(description="CORE evaluation throughput of a random model")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary trained for the benchmark")
    p.add_argument("--examples", type=int, default=16, help="examples per CORE task")
    p.add_argument("--chat-examples", type=int, default=64, help="multiple-choice questions for the chat eval")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32], help="rows per forward pass")
    p.add_argument("--device-type", default="cpu", help="cpu|cuda|mps ('' autodetects)")
    args = p.parse_args(argv)
    device = torch.device(args.device_type or autodetect_device_type())

    t0 = time.time()
    docs = itertools.islice(generate_documents(1), 3000)
    tokenizer = Tokenizer.train_from_iterator(docs, args.vocab_size)
    print(f"tokenizer: vocab {tokenizer.get_vocab_size()} trained in {time.time() - t0:.1f}s")
    torch.manual_seed(0)
    config = config_from_depth(args.depth, tokenizer.get_vocab_size(), args.seq_len)
    model = GPT(config).to(device).eval()
    print(f"model: depth {config.n_layer}, width {config.n_embd}, {model.num_params():,} parameters, "
          f"context {config.sequence_len}, device {device}, torch threads {torch.get_num_threads()}")

    with tempfile.TemporaryDirectory() as tmp:
        tasks = load_core_tasks(write_bench_bundle(tmp, args.examples))
        for meta, examples in tasks:   # warm-up: allocator, kernels
            evaluate_task(model, tokenizer, examples, meta, device, max_examples=2)
        for bs in args.batch_sizes:
            rates = {}
            for meta, examples in tasks:
                t0 = time.time()
                evaluate_task(model, tokenizer, examples, meta, device, batch_size=bs)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                rates[meta["label"]] = (len(examples), time.time() - t0)
            overall = sum(n for n, _ in rates.values()) / sum(t for _, t in rates.values())
            per_task = " | ".join(f"{label} {n / t:6.1f}" for label, (n, t) in rates.items())
            print(f"CORE batch {bs:3d} rows: {overall:6.1f} examples/s overall | {per_task}")

    task = SyntheticMathChoice(size=args.chat_examples, seed=0)
    evaluate_chat_task(task, model, tokenizer, device=device, max_problems=2)  # warm-up
    for bs in args.batch_sizes:
        t0 = time.time()
        evaluate_chat_task(task, model, tokenizer, device=device, batch_size=bs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        print(f"chat categorical batch {bs:3d} questions: {len(task) / (time.time() - t0):6.1f} examples/s")

if __name__ == "__main__":
    main()
