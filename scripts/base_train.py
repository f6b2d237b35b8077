"""Pretrain the base model. One dial, --depth: the width and heads follow from it (gpt.config_from_depth), so do the
horizon (tokens = 10.5 x the parameters in matmuls, compute-optimal) and the total batch; all printed and saved.
Resumable (--resume), exactly. Not wrapped in DDP: the optimizer averages gradients inside its step (optim.py).
"""

import argparse
import os
from dataclasses import asdict

import torch

from nanochat import training
from nanochat.common import BadInput, cli, compute_init, get_base_dir, positive, print0
from nanochat.core_eval import EVAL_BUNDLE_URL, download_eval_bundle, evaluate_core
from nanochat.dataloader import PackedLoader
from nanochat.dataset import data_dir, split_shards
from nanochat.engine import SAMPLE_PROMPTS, sample_greedy
from nanochat.gpt import GPT, RECIPE, config_from_depth
from nanochat.loss_eval import evaluate_bpb
from nanochat.run import Run
from nanochat.tokenizer import get_token_bytes, get_tokenizer

# -----------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Pretrain a base model")
    training.add_training_args(p, eval_every=250)
    p.add_argument("--depth", type=positive(int), default=20, help="transformer layers: the one model-size dial")
    p.add_argument("--aspect-ratio", type=int, default=64, help="model width = depth x aspect ratio")
    p.add_argument("--head-dim", type=int, default=128, help="attention head dimension")
    p.add_argument("--max-seq-len", type=positive(int), default=2048, help="context length")
    p.add_argument("--arch", default="", help="GPTConfig overrides, for ablations: e.g. 'smear=0,window_pattern=L'")
    p.add_argument("--muon", default="", help="Muon group overrides, for ablations: e.g. 'polar=0,beta2=0,cautious=0'")
    p.add_argument("--auto-batch", type=int, default=1, help="on CUDA, halve --device-batch-size until a step fits "
                   "in memory (the total batch is kept through gradient accumulation); 0: off")
    p.add_argument("--total-batch-size", type=int, default=-1, help="tokens per optimizer step (-1: derived)")
    p.add_argument("--data-param-ratio", type=float, default=10.5, help="training tokens per parameter in matmuls")
    p.add_argument("--decay-per-run", type=float, default=training.DECAY_PER_RUN, help="Muon's total weight "
                   "decay over the run (sum of lr x weight decay over the steps), from which the weight decay follows")
    p.add_argument("--weight-decay", type=float, default=-1, help="Muon weight decay per unit lr (-1: derived)")
    p.add_argument("--warmup-ratio", type=float, default=0.0, help="fraction of training with lr warmup")
    p.add_argument("--eval-tokens", type=int, default=10 * 524288, help="tokens per validation bpb evaluation")
    p.add_argument("--sample-every", type=int, default=2000, help="print samples every N steps (-1: never)")
    p.add_argument("--model-tag", default="", help="checkpoint subdirectory (default d<depth>)")
    p.add_argument("--compile", type=int, default=-1, help="torch.compile the model (1/0; -1: on for CUDA)")
    p.add_argument("--fp8", action="store_true", help="blocks' matmuls in fp8 (torchao, compute capability 8.9+)")
    p.add_argument("--core-every", type=int, default=-1, help="CORE every N steps and at the end; -1: at the end "
                   "only; 0: never (offline runs without an eval bundle)")
    p.add_argument("--core-max-per-task", type=int, default=500, help="CORE examples per task (-1: all)")
    p.add_argument("--eval-bundle", default="", help="CORE eval bundle: URL, zip or directory (default: downloaded)")
    args = p.parse_args(argv)
    try:
        args.arch = parse_overrides(args.arch, RECIPE, "--arch")
        args.muon = parse_overrides(args.muon, training.MUON_RECIPE, "--muon")
    except ValueError as e:
        p.error(str(e))
    return args


def parse_overrides(text, defaults, flag):
    """'smear=0,window_pattern=L' -> {'smear': False, 'window_pattern': 'L'}, typed like defaults' entries."""
    overrides = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in defaults:
            raise ValueError(f"{flag} {item!r}: expected key=value with key one of {sorted(defaults)}")
        kind = type(defaults[key])
        try:
            overrides[key] = bool(int(value)) if kind is bool else kind(value)
        except ValueError:
            raise ValueError(f"{flag} {item!r}: {value!r} is not a {kind.__name__}") from None
    return overrides


def train(args):
    compute = compute_init(args.device_type, seed=args.seed)
    base_dir = get_base_dir()
    tokenizer = get_tokenizer(base_dir)
    token_bytes = get_token_bytes(base_dir, device=compute.device)

    # ---- the model, and everything derived from its size
    config = config_from_depth(args.depth, tokenizer.get_vocab_size(), args.max_seq_len,
                               aspect_ratio=args.aspect_ratio, head_dim=args.head_dim, **args.arch)
    model = GPT(config).to(compute.device)
    model.init_weights()
    if args.fp8:
        if compute.device_type != "cuda" or torch.cuda.get_device_capability() < (8, 9):
            raise BadInput("--fp8 needs a CUDA GPU with fp8 matmuls (compute capability 8.9+: H100, L40S, 4090); "
                           "leave it out to train in bf16")
        print0(f"fp8: {len(training.convert_to_fp8(model))} Linear layers train in fp8 (torchao, tensorwise scaling)")
    num_params = model.num_params()
    scaling_params = model.num_scaling_params()  # lookups (embeddings) are not FLOPs
    flops_per_token = model.estimate_flops()
    target_tokens = training.horizon_tokens(scaling_params, args.data_param_ratio)
    if args.auto_batch:
        args.device_batch_size = training.fit_batch(lambda b: training.probe_step(model, b, args.max_seq_len, compute),
                                                    args.device_batch_size, compute)
    total_batch, accum, num_iterations = training.base_schedule(
        flops_per_token, target_tokens, args.total_batch_size, args.device_batch_size, args.max_seq_len,
        compute.world_size, args.num_iterations)
    steps_from_budget = args.time_budget > 0 and args.num_iterations <= 0
    if steps_from_budget:
        num_iterations = 10 ** 9   # the time budget decides when to stop
    model_tag = args.model_tag or f"d{args.depth}"
    ckpt_dir = os.path.join(base_dir, "base_checkpoints", model_tag)
    schedule = (args.warmup_ratio, args.warmdown_ratio, args.final_lr_frac)
    weight_decay = args.weight_decay if args.weight_decay >= 0 else \
        training.muon_weight_decay(args.decay_per_run, args.matrix_lr, num_iterations, *schedule)
    resolved = {**vars(args), "total_batch_size": total_batch, "num_iterations": num_iterations,
                "weight_decay": weight_decay, "grad_accum_steps": accum, "world_size": compute.world_size,
                "model_tag": model_tag}
    print0(f"model: {asdict(config)}")
    print0(f"compute dtype: {compute.dtype} matmuls{' (fp8 in the blocks)' if args.fp8 else ''}, fp32 weights")
    print0(f"parameters: {num_params:,} ({scaling_params:,} in matmuls); FLOPs/token: {flops_per_token:.3e}")
    print0(f"batch: {total_batch:,} tokens = {args.device_batch_size} seqs x {args.max_seq_len} tokens "
           f"x {compute.world_size} processes x {accum} accumulation steps")
    print0(f"horizon: {num_iterations:,} steps" + (f" or {args.time_budget:.0f}s" if args.time_budget > 0 else "")
           + f" (target {target_tokens:,} tokens = {args.data_param_ratio:g} x params); Muon weight decay "
           + ("from the budget's steps" if steps_from_budget and args.weight_decay < 0 else f"{weight_decay:.4g}")
           + (f" ({args.decay_per_run:g} over the run)" if args.weight_decay < 0 else ""))

    optimizer = training.build_optimizer(model, args.matrix_lr, args.embedding_lr, args.unembedding_lr,
                                         args.scalar_lr, weight_decay=weight_decay, muon=args.muon)
    val_paths = split_shards(data_dir(base_dir), "val")
    loader = PackedLoader(tokenizer, split_shards(data_dir(base_dir), "train"), args.device_batch_size,
                          args.max_seq_len, compute.rank, compute.world_size, compute.device)

    use_compile = args.compile == 1 or (args.compile == -1 and compute.device_type == "cuda")
    run = Run("base_train", args, compute, base_dir, ckpt_dir, model, optimizer, loader, num_iterations,
              config=resolved, report_section="Base model training", wandb_project="nanochat-base",
              metrics={"val_bpb": float("nan"), "core": None, "smooth_loss": 0.0}, metric="val_bpb",
              compiled=use_compile)
    if run.finished:
        return run.finished
    fwd = torch.compile(model, dynamic=False) if use_compile else model
    eval_fwd = model if args.fp8 else fwd   # fp8 layers are swapped out for evaluation: the plain model
    peak = training.peak_flops(compute.device_type)
    eval_steps = max(1, args.eval_tokens // (args.device_batch_size * args.max_seq_len * compute.world_size))
    while True:
        # Evaluation is outside the step timer: train_time is the leaderboard's total_training_time.
        if run.due(args.eval_every):
            val_loader = PackedLoader(tokenizer, val_paths, args.device_batch_size, args.max_seq_len,
                                      compute.rank, compute.world_size, compute.device)
            with training.evaluating(model):
                run.evaluated({"val bpb": evaluate_bpb(eval_fwd, val_loader, eval_steps, token_bytes,
                                                       compute.autocast)})
        if args.core_every and run.step > 0 and run.due(args.core_every):   # due(-1): at the end only
            measure_core(run, model, tokenizer, base_dir, args, compute)
        if compute.master and args.sample_every > 0 and run.due(args.sample_every) and run.step > 0:
            with training.evaluating(model):
                for prompt in SAMPLE_PROMPTS:
                    print0("  sample: " + repr(sample_greedy(model, tokenizer, prompt, 16, compute.autocast)))
        if run.last:
            break

        # ---- one optimizer step
        step = run.step
        if steps_from_budget and args.weight_decay < 0:
            # the horizon is known only as it goes: decay for the number of steps the budget now promises
            weight_decay = training.muon_weight_decay(args.decay_per_run, args.matrix_lr, step / run.progress(),
                                                      *schedule) if run.progress() > 0 else 0.0
        lrm = training.lr_multiplier(run.progress(), *schedule)
        with run.timing():
            training.set_schedule(optimizer, lrm, training.muon_momentum(step), weight_decay)
            loss_sum = 0.0
            for _ in range(accum):
                x, y = next(loader)
                with compute.autocast():
                    loss = fwd(x, y)
                (loss / accum).backward()
                loss_sum += loss.detach()
            optimizer.step()
            model.zero_grad(set_to_none=True)
            train_loss = (loss_sum / accum).item()
        smooth = run.metrics["smooth_loss"] = train_loss if step == 0 else \
            0.9 * run.metrics["smooth_loss"] + 0.1 * train_loss
        tok_per_s = total_batch / run.dt
        mfu = f"{100 * flops_per_token * tok_per_s / (peak * compute.world_size):.1f}%" if peak else "n/a"
        run.end_step(f"loss {train_loss:.4f} (smooth {smooth:.4f}) | lrm {lrm:.3f} | {tok_per_s:,.0f} tok/s "
                     f"| mfu {mfu}", {"train loss": train_loss, "train/tok_per_s": tok_per_s})

    tokens = run.step * total_batch
    print0(f"total_training_time: {run.train_time:.1f}s (training steps only) | total_training_flops: "
           f"{flops_per_token * tokens:.3e}" + (f" | CORE {run.metrics['core']:.4f}" if run.metrics["core"] else ""))
    print0(f"peak_memory_mib: {compute.peak_memory() / 2**20:.0f}")   # GPU memory on CUDA, else peak RSS
    return run.finish({
        "parameters": num_params, "flops_per_token": flops_per_token, "tokens": tokens,
        "tokens_per_param": round(tokens / scaling_params, 2),
        "total_training_flops": f"{flops_per_token * tokens:.3e}", "total_training_time": round(run.train_time, 1),
    })


def measure_core(run, model, tokenizer, base_dir, args, compute):
    """Record the CORE of the model now (bf16 matmuls even under --fp8); skipped without an eval bundle (a missing
    bundle must not cost a finished run)."""
    try:
        bundle = download_eval_bundle(base_dir, args.eval_bundle or EVAL_BUNDLE_URL)
    except (OSError, RuntimeError, ValueError) as e:
        print0(f"CORE skipped: no eval bundle ({e}); pass --eval-bundle=PATH, or --core-every=0 offline")
        return
    with training.evaluating(model):
        results = evaluate_core(model, tokenizer, bundle, compute.device, args.core_max_per_task, compute.rank,
                                compute.world_size, autocast=compute.autocast)
    print0(f"CORE: {results['core']:.4f}")
    run.evaluated({"CORE": results["core"]})
    run.metrics["core"] = results["core"]


def main(argv=None):
    with cli("base_train"):
        return train(parse_args(argv))


if __name__ == "__main__":
    main()
