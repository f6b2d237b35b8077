"""Evaluate a chat model on the chat tasks and compute ChatCORE (nanochat/chat_eval.py does the scoring).
Real datasets come from the Hugging Face hub, or with --data-dir from local files in the hub's row format;
SpellingBee and the Synthetic* tasks are generated with EVAL_SEED, so they differ from what training sees.
Writes eval/chat_<source>.json and .csv and the report section "Chat evaluation <source>".
"""

import argparse
import csv
import io
import os

from nanochat.chat_eval import run_chat_eval
from nanochat.checkpoint import add_checkpoint_args, load_model
from nanochat.common import atomic_write_json, atomic_write_text, cli, compute_init, get_base_dir, positive, print0
from nanochat.report import get_report
from nanochat.training import fit_batch, probe_step
from tasks.common import DatasetUnavailableError
from tasks.registry import DEFAULT_TASKS, EVAL_SEED, TASKS, TINY_TASKS, build_tasks, parse_task_names


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Evaluate a chat model on the chat tasks and compute ChatCORE")
    add_checkpoint_args(p, use="to evaluate", flags=("-i", "--source"))
    p.add_argument("-a", "--tasks", default=DEFAULT_TASKS, help=f"comma-separated tasks, from {', '.join(TASKS)}; "
                   f"offline: {TINY_TASKS}")
    p.add_argument("--max-problems", type=positive(int), default=None, help="problems per task (default: all)")
    p.add_argument("--batch-size", type=positive(int), default=8, help="questions per forward pass (multiple choice), "
                   "problems sampled together (generative)")
    p.add_argument("--num-samples", type=positive(int), default=1, help="replies per problem (the k of pass@k)")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (0: greedy)")
    p.add_argument("--top-k", type=int, default=50, help="sample among the k most likely tokens (0: all)")
    p.add_argument("--max-new-tokens", type=positive(int), default=512, help="longest generated reply, in tokens")
    p.add_argument("--data-dir", default="", help="directory of local task files named <task>.jsonl etc. "
                   "(default: load from the Hugging Face hub)")
    p.add_argument("--seed", type=int, default=42, help="sampling seed")
    p.add_argument("--eval-seed", type=int, default=EVAL_SEED, help="the generated tasks' problems (the research "
                   "harness passes a seed of its own, so a candidate cannot train on what it is judged on)")
    p.add_argument("--device-type", default="", help="cuda|cpu|mps (default: autodetect)")
    args = p.parse_args(argv)
    try:
        args.task_names = parse_task_names(args.tasks)
    except ValueError as e:
        p.error(f"--tasks: {e}")
    if args.top_k < 0 or args.temperature < 0:
        p.error("--top-k and --temperature must be >= 0")
    if args.data_dir and not os.path.isdir(args.data_dir):
        p.error(f"--data-dir {args.data_dir!r} is not a directory")
    return args


def results_csv(per_task, chatcore):
    """CSV text: one row per task ({name: {"eval_type", "accuracy", ...}}), then the ChatCORE row."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["task", "eval_type", "accuracy", "baseline", "centered", "correct", "total"])
    for name, r in per_task.items():
        writer.writerow([name, r["eval_type"], *(f"{r[k]:.6f}" for k in ("accuracy", "baseline", "centered")),
                         r["correct"], r["total"]])
    writer.writerow(["ChatCORE", "", "", "", f"{chatcore:.6f}", "", ""])
    return buf.getvalue()


def evaluate(args):
    compute = compute_init(args.device_type, seed=args.seed)
    base_dir = get_base_dir()
    try:
        tasks = build_tasks(args.task_names, args.data_dir or None, args.eval_seed)
    except DatasetUnavailableError as e:
        raise DatasetUnavailableError(f"{e}\n(or leave that task out with -a/--tasks)") from e  # a BadInput
    model, tokenizer, meta = load_model(args.source, compute.device, args.model_tag, args.step, dtype=compute.dtype)
    T = model.config.sequence_len   # a forward of b x num_samples full rows outweighs b questions and their KV cache
    args.batch_size = fit_batch(lambda b: probe_step(model, b * args.num_samples, T, compute, train=False),
                                args.batch_size, compute, "--batch-size")
    model_tag = os.path.basename(meta["checkpoint_dir"])
    print0(f"{args.source} model {model_tag} at step {meta['step']} ({meta['checkpoint_dir']}); "
           f"tasks: {', '.join(f'{n} ({len(t)})' for n, t in tasks.items())}")
    results = run_chat_eval(model, tokenizer, tasks, device=compute.device, max_problems=args.max_problems,
                            batch_size=args.batch_size, num_samples=args.num_samples, temperature=args.temperature,
                            top_k=args.top_k or None, max_new_tokens=args.max_new_tokens, seed=args.seed,
                            rank=compute.rank, world_size=compute.world_size, autocast=compute.autocast, log=print0)

    settings = {"source": args.source, "model_tag": model_tag, "step": meta["step"], "tasks": ",".join(tasks),
                "max_problems": args.max_problems, "num_samples": args.num_samples, "temperature": args.temperature,
                "top_k": args.top_k, "max_new_tokens": args.max_new_tokens, "eval_seed": args.eval_seed,
                "world_size": compute.world_size}
    if compute.master:
        per_task = {name: {"eval_type": t.eval_type, **{key: results[key][name] for key in
                    ("accuracy", "baseline", "centered", "correct", "total")}} for name, t in tasks.items()}
        path = os.path.join(base_dir, "eval", f"chat_{args.source}")
        # "tasks" in the JSON holds the per-task results; the report section keeps the names list
        atomic_write_json(path + ".json", {**settings, "tasks": per_task, "chatcore": results["chatcore"]})
        atomic_write_text(path + ".csv", results_csv(per_task, results["chatcore"]))
        print0(f"wrote {path}.json and .csv")
    get_report(base_dir).log(f"Chat evaluation {args.source}", [
        settings, {name: round(acc, 4) for name, acc in results["accuracy"].items()},
        {"ChatCORE": round(results["chatcore"], 4)}])
    print0(f"chatcore: {results['chatcore']:.6f}")
    return results


def main(argv=None):
    with cli("chat_eval"):
        return evaluate(parse_args(argv))


if __name__ == "__main__":
    main()
