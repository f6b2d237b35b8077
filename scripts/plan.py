"""The plan of a speedrun before paying for it (nanochat/plan.py): per stage the model's shape, batch, steps, tokens,
FLOPs, memory per GPU, time and cost, on the named (--gpus) or detected hardware. speedrun.sh passes each stage's
argument string and THAT stage's own parse_args reads it; base_train's batch and horizon come from the function
base_train calls (training.base_schedule). This is the one script allowed to read other stages' flags, precisely
so that it cannot drift from them. Nothing is downloaded or allocated (meta-device models). Steps that depend on
data not downloaded yet are estimates, marked '~'; eval, SFT and RL rows count whole-context rows (upper bounds on
their tokens). CORE is not planned: its bundle's size is unknown until downloaded.
"""

import argparse
import math
import shlex
from dataclasses import replace

from nanochat import plan, training
from nanochat.common import cli
from nanochat.report import get_report
from scripts import base_eval, base_train, chat_eval, chat_rl, chat_sft, mid_train
from tasks.registry import GENERATED_SIZE

# Examples in the full mixtures (tasks/mixtures.py), from the datasets' hub cards: smol-smoltalk train ~460K
# (rounded, as karpathy/nanochat's tasks/smoltalk.py gives it); MMLU auxiliary_train 99,842; GSM8K train 7,473;
# ARC-Easy train 2,251; ARC-Challenge train 1,119; identity conversations (1,000) and SpellingBee as sized there.
GSM8K_TRAIN = 7_473   # also chat_rl's --task=gsm8k problems
SFT_EXAMPLES = 2_251 + 1_119 + GSM8K_TRAIN + 10_000 + 1_000 + 300
# midtraining's horizon is one pass over its mixture's tokens: 400 per conversation is an ASSUMED mean, not measured
MID_TOKENS = (460_000 + 99_842 + GSM8K_TRAIN + 2 * 1_000 + 80_000) * 400
# Test problems per chat eval task, from the hub cards; generated tasks have GENERATED_SIZE
TEST_SIZES = {"ARC-Easy": 2_376, "ARC-Challenge": 1_172, "MMLU": 14_042, "GSM8K": 1_319, "HumanEval": 164}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Print the plan of a speedrun: nothing is trained")
    p.add_argument("--gpus", default="", help="hardware, e.g. 8xH100, 2xA100-40GB or cpu (default: this machine's)")
    p.add_argument("--depth", type=int, required=True, help="base_train's --depth")
    p.add_argument("--vocab-size", type=int, required=True, help="tok_train's --vocab-size")
    p.add_argument("--seq-len", type=int, required=True, help="base_train's --max-seq-len")
    p.add_argument("--nproc", type=int, default=0, help="GPUs (processes) each stage uses (0: all of --gpus)")
    for stage in ("base", "base-eval", "mid", "sft", "rl", "eval", "chat-tasks", "rl-tasks"):
        p.add_argument(f"--{stage}", default="", help=f"speedrun.sh's argument string for the {stage} stage(s)")
    p.add_argument("--report", action="store_true", help="also keep the plan in this run's report (Report.log_plan)")
    return p.parse_args(argv)


def stage_rows(args, hw):
    """The plan's rows, one per stage speedrun.sh runs, from each stage's own parsed flags."""
    W, T, split = hw.count, args.seq_len, shlex.split
    compiled = (lambda a: a.compile == 1 or (a.compile == -1 and hw.name != "CPU"))   # as the stages decide
    base = base_train.parse_args([f"--depth={args.depth}", f"--max-seq-len={T}", *split(args.base)])
    model = plan.meta_model(args.depth, args.vocab_size, T, aspect_ratio=base.aspect_ratio, head_dim=base.head_dim,
                            **base.arch)

    def row(stage, batch, batch_tokens, steps, estimated=False, **kw):
        return dict(plan.plan_row(stage, model, hw, batch, batch_tokens, steps, **kw), estimated=estimated)

    target = training.horizon_tokens(model.num_scaling_params(), base.data_param_ratio)
    total, _, steps = training.base_schedule(model.estimate_flops(), target, base.total_batch_size,
                                             base.device_batch_size, T, W, base.num_iterations)
    rows = [row("base_train", base.device_batch_size, total, steps, compiled=compiled(base))]
    ev = base_eval.parse_args(split(args.base_eval))
    B = ev.device_batch_size
    rows.append(row("base_eval", B, B * T * W, 2 * max(1, ev.eval_tokens // (B * T * W)), train=False))
    mid = mid_train.parse_args(split(args.mid))
    steps = mid.num_iterations if mid.num_iterations > 0 else round(MID_TOKENS / mid.total_batch_size)
    rows.append(row("mid_train", mid.device_batch_size, mid.total_batch_size, max(1, steps),
                    mid.num_iterations <= 0, compiled=compiled(mid)))
    sft = chat_sft.parse_args(split(args.sft))
    steps = sft.num_iterations if sft.num_iterations > 0 else \
        math.ceil(sft.num_epochs * SFT_EXAMPLES / sft.examples_per_step)
    rows.append(row("sft_train", sft.device_batch_size, sft.examples_per_step * T, steps, sft.num_iterations <= 0))
    rl = chat_rl.parse_args(split(args.rl))
    problems = chat_rl.SYNTHETIC_TRAIN_SIZE if rl.task == "synthetic" else GSM8K_TRAIN
    steps = rl.num_steps if rl.num_steps > 0 else max(1, int(rl.num_epochs * problems) // rl.examples_per_step)
    rows.append(row("rl_train", rl.device_batch_size, rl.examples_per_step * rl.num_samples * T, steps,
                    rl.num_steps <= 0 and rl.task == "gsm8k"))
    for source, tasks in (("mid", args.chat_tasks), ("sft", args.chat_tasks), ("rl", args.rl_tasks)):
        ev = chat_eval.parse_args(["-i", source, "-a", tasks, *split(args.eval)])
        sizes = [min(ev.max_problems or 10 ** 9, TEST_SIZES.get(t, GENERATED_SIZE)) for t in ev.task_names]
        rows.append(row(f"{source}_eval", ev.batch_size, ev.batch_size * T * W,
                        sum(math.ceil(n / (ev.batch_size * W)) for n in sizes),
                        ev.max_problems is None and any(t in TEST_SIZES for t in ev.task_names), train=False))
    return rows


def main(argv=None):
    with cli("plan"):
        args = parse_args(argv)
        hw = plan.parse_gpus(args.gpus) if args.gpus else plan.detect_hardware()
        hw = replace(hw, count=args.nproc or hw.count)
        result = plan.make_plan(stage_rows(args, hw), hw)
        print(plan.format_plan(result))
        if args.report:
            get_report().log_plan(result)
        return result


if __name__ == "__main__":
    main()
