"""The math every training stage shares: the optimizer from a model's param groups, lr/momentum schedules,
gradient accumulation, fp8, micro-batch fitting, peak FLOP/s for MFU, and the depth dial's pure functions.
The loop around it is nanochat/run.py; this module never parses argv.
"""

import math
import os
from contextlib import contextmanager

import torch
import torch.nn as nn

from nanochat.common import BadInput, all_ranks_max, positive, print0
from nanochat.optim import MuonAdamW

# bf16 dense peak of the GPUs people rent for this, for MFU; unknown GPUs report no MFU
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}

# How Muon updates every new run's matrices (nanochat/optim.py); each entry is measured in docs/LOG.md.
MUON_RECIPE = dict(momentum=0.95, polar=True, beta2=0.95, cautious=True)   # cautious: only where decay is on


def build_optimizer(model, matrix_lr=0.02, embedding_lr=0.2, unembedding_lr=0.004, scalar_lr=0.02,
                    weight_decay=0.0, adam_betas=(0.8, 0.95), muon=None):
    """Muon for the hidden matrices, AdamW for the rest, in one MuonAdamW. `muon` overrides MUON_RECIPE entries.
    AdamW lrs were tuned at width 768 and scale by (768 / n_embd) ** 0.5 (the 1/sqrt(width) rule for Adam on
    embedding-like parameters); Muon's orthogonalised update needs no rescaling. Value embeddings share wte's
    lr; gates (32 channels) and scalars need no width scaling: an Adam step moves each by about scalar_lr.
    """
    groups = model.param_groups()
    scale = (768 / model.config.n_embd) ** 0.5
    adam = {"kind": "adamw", "betas": adam_betas, "eps": 1e-10, "weight_decay": 0.0}
    specs = [
        ("matrix", {"kind": "muon", "lr": matrix_lr, "weight_decay": weight_decay, **MUON_RECIPE, **(muon or {})}),
        ("embedding", {**adam, "lr": embedding_lr * scale}),
        ("value_embedding", {**adam, "lr": embedding_lr * scale}),
        ("unembedding", {**adam, "lr": unembedding_lr * scale}),
        ("gate", {**adam, "lr": scalar_lr}),
        ("scalar", {**adam, "lr": scalar_lr}),
    ]
    param_groups = [dict(params=groups[name], name=name, **spec) for name, spec in specs if groups.get(name)]
    return MuonAdamW(param_groups)


def convert_to_fp8(model):
    """Convert the blocks' big Linears (sides multiples of 16, the fp8 kernels' rule, and >= 128) to torchao
    float8 training (tensorwise), in place; returns their names. Gates, lm_head (logits want the precision) and
    non-block modules stay bf16; weights stay fp32, so checkpoints do not change. Needs compute capability 8.9+."""
    from torchao.float8 import Float8LinearConfig, convert_to_float8_training

    def eligible(module, name):
        return (name.startswith("blocks.") and module.in_features % 16 == 0 and module.out_features % 16 == 0
                and min(module.in_features, module.out_features) >= 128)
    convert_to_float8_training(model, config=Float8LinearConfig.from_recipe_name("tensorwise"),
                               module_filter_fn=eligible)
    return [name for name, m in model.named_modules() if type(m).__name__ == "Float8Linear"]


@contextmanager
def evaluating(model):
    """Inside: the model in eval mode, and every fp8-trained Linear computing a plain (autocast bf16) matmul, as
    evaluation should not depend on the training precision; back in train mode after. Use the uncompiled model
    inside: a compiled graph would not see the swap."""
    fp8 = [m for m in model.modules() if type(m).__name__ == "Float8Linear"]
    model.eval()
    for m in fp8:
        m.forward = nn.Linear.forward.__get__(m)  # an instance attribute shadows the class's fp8 forward
    try:
        yield
    finally:
        for m in fp8:
            del m.forward
        model.train()


def add_training_args(p, eval_every=None):
    """The flags every training stage (base, mid, SFT, RL) takes alike: the optimizer's learning rates, the
    time budget, checkpoints kept, resume, device and wandb. With `eval_every` (every stage but RL, which has its
    own) also the step loop's: micro-batch, horizon, warmdown, eval and save cadence, seed. Each script adds its own."""
    p.add_argument("--matrix-lr", type=float, default=0.02, help="Muon learning rate")
    p.add_argument("--embedding-lr", type=float, default=0.2, help="AdamW lr of the embeddings (at width 768)")
    p.add_argument("--unembedding-lr", type=float, default=0.004, help="AdamW lr of lm_head (at width 768)")
    p.add_argument("--scalar-lr", type=float, default=0.02, help="AdamW lr of the gates and per-layer scalars")
    p.add_argument("--time-budget", type=float, default=-1, help="stop after this many seconds of training "
                   "(the lr schedule then follows time); -1: off")
    p.add_argument("--keep-last", type=int, default=2, help="checkpoints to keep")
    p.add_argument("--resume", action="store_true", help="continue from this stage's newest complete checkpoint")
    p.add_argument("--device-type", default="", help="cuda|cpu|mps (default: autodetect)")
    p.add_argument("--run", default="", help="wandb run name (empty: no wandb)")
    if eval_every is None:
        return
    p.add_argument("--device-batch-size", type=positive(int), default=32, help="rows per micro-batch per process")
    p.add_argument("--num-iterations", type=int, default=-1, help="optimizer steps (-1: the stage's own horizon)")
    p.add_argument("--warmdown-ratio", type=float, default=0.2, help="fraction of training with lr warmdown")
    p.add_argument("--final-lr-frac", type=float, default=0.0, help="lr at the end, as a fraction of the peak")
    p.add_argument("--eval-every", type=positive(int), default=eval_every, help="eval every N steps (and at the end)")
    p.add_argument("--save-every", type=positive(int), default=1000, help="checkpoint every N steps (and at the end)")
    p.add_argument("--seed", type=int, default=42, help="torch seed (and the mixtures' shuffle)")


def lr_multiplier(progress, warmup_ratio=0.0, warmdown_ratio=0.2, final_lr_frac=0.0):
    """Trapezoid schedule over training progress in [0, 1]: linear warmup, flat, linear warmdown."""
    if warmup_ratio > 0 and progress < warmup_ratio:
        return (progress + 1e-8) / warmup_ratio
    if progress <= 1.0 - warmdown_ratio:
        return 1.0
    frac = min(1.0, (1.0 - progress) / max(warmdown_ratio, 1e-8))
    return frac + (1.0 - frac) * final_lr_frac


def muon_momentum(step, warmup_steps=300, start=0.85, end=0.95):
    """Muon momentum ramps up over the first steps: a lower momentum is more stable at the start."""
    frac = min(step / warmup_steps, 1.0) if warmup_steps > 0 else 1.0
    return (1 - frac) * start + frac * end


def set_schedule(optimizer, lrm, momentum=None, muon_weight_decay=None):
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * lrm
        if momentum is not None and group["kind"] == "muon":
            group["momentum"] = momentum
        if muon_weight_decay is not None and group["kind"] == "muon":
            group["weight_decay"] = muon_weight_decay


def grad_accum_steps(total_batch_tokens, device_batch_size, seq_len, world_size):
    """Micro-steps per optimizer step so that every step sees exactly `total_batch_tokens` tokens."""
    per_micro = device_batch_size * seq_len * world_size
    if total_batch_tokens <= 0 or total_batch_tokens % per_micro != 0:
        valid = max(per_micro, round(total_batch_tokens / per_micro) * per_micro)
        raise BadInput(
            f"--total-batch-size={total_batch_tokens} is not a multiple of --device-batch-size={device_batch_size} "
            f"x sequence length {seq_len} x {world_size} processes = {per_micro} tokens; "
            f"use e.g. --total-batch-size={valid}")
    return total_batch_tokens // per_micro


def base_schedule(flops_per_token, target_tokens, total_batch_size, device_batch_size, seq_len, world_size,
                  num_iterations=-1):
    """Pretraining's (total batch in tokens, accumulation steps, steps); flags <= 0 are derived: the batch from the
    run's FLOPs in whole micro-batches, the steps from target_tokens. scripts/plan.py calls it too."""
    total = total_batch_size
    if total <= 0:
        per_micro = device_batch_size * seq_len * world_size
        total = max(per_micro, optimal_batch_tokens(flops_per_token * target_tokens) // per_micro * per_micro)
    accum = grad_accum_steps(total, device_batch_size, seq_len, world_size)
    return total, accum, num_iterations if num_iterations > 0 else max(1, target_tokens // total)


def probe_step(model, rows, seq_len, compute, train=True):
    """One forward/backward (without `train`: a forward to logits) of `rows` rows of seq_len tokens: raises
    torch.cuda.OutOfMemoryError if they do not fit. The tokens' values do not matter: zeros leave the RNG alone."""
    x = torch.zeros((rows, seq_len + 1), dtype=torch.long, device=compute.device)
    try:
        with torch.set_grad_enabled(train), compute.autocast():
            out = model(x[:, :-1], x[:, 1:]) if train else model(x[:, :-1])   # the loss, or logits
            if train:
                out.backward()
    finally:
        model.zero_grad(set_to_none=True)


def fit_batch(probe, requested, compute, flag="--device-batch-size"):
    """The largest of requested, requested/2, ... (divisors of requested) for which `probe(b)`, a real step of b
    rows, does not run out of GPU memory; the smallest over ranks. A divisor, so a total batch that was a multiple
    of the requested size stays a multiple: the stage keeps it through more accumulation steps. Only on CUDA, or
    with NANOCHAT_SIMULATE_GPU_ROWS=N on any device (tests): then a batch over N rows also runs out of memory."""
    cap = int(os.environ.get("NANOCHAT_SIMULATE_GPU_ROWS", 0))
    if compute.device_type != "cuda" and not cap:
        return requested
    b = requested
    while True:
        try:
            if cap and b > cap:
                raise torch.cuda.OutOfMemoryError(f"{b} rows > NANOCHAT_SIMULATE_GPU_ROWS={cap}")
            probe(b)
            break
        except torch.cuda.OutOfMemoryError:
            if b == 1:
                raise
            b = max(d for d in range(1, b // 2 + 1) if requested % d == 0)
            torch.cuda.empty_cache()   # a no-op without CUDA
    fitted = -int(all_ranks_max(-b, compute.device))   # every rank uses the smallest that fits anywhere
    if fitted != requested:
        print0(f"{flag} {requested} does not fit in GPU memory: using {fitted}")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()   # peak memory reports the stage, not the probes that ran out
    return fitted


def peak_flops(device_type):
    """bf16 peak FLOP/s of the current GPU, or None when unknown (CPU, unlisted GPU)."""
    if device_type != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


# -----------------------------------------------------------------------------
# The depth dial: hyperparameters derived from the model size (tests/test_training.py)

def horizon_tokens(num_params, ratio=10.5):
    """Training tokens for a compute-optimal run: `ratio` tokens per parameter in matmuls. Chinchilla's 20
    (Hoffmann et al. 2022) counts every parameter of a plain transformer. For this architecture (value embeddings,
    windows, ...), counting the matmul parameters (lm_head included, lookups not), nanochat's isoFLOP sweeps at
    1e18..1e19 FLOPs found a steady optimum of ~10.5 (its dev/LOG.md, "engram-lite" scaling laws); a run aiming at
    a capability, not at optimality, passes its own ratio (the full profile: 8, where nanochat's d24 passed
    GPT-2's CORE)."""
    return int(ratio * num_params)


def optimal_batch_tokens(flops):
    """Total batch size in tokens for a run of `flops` FLOPs, rounded to a power of two: DeepSeek LLM (arXiv
    2401.02954) fits B_opt = 0.292 * C^0.3271 tokens. For a GPT-2-grade run (C ~ 4e19) that gives ~2^19 = 524,288
    tokens, the batch size GPT-2-class speedruns use."""
    return 2 ** round(math.log2(0.292 * flops ** 0.3271))


# Off by default: at the horizons a CPU can reach (0.5-4 tokens per parameter) it measured worse (docs/LOG.md,
# 2026-12-02). The full profile passes nanochat's measured value, 4.3 (its d8-d20 sweeps, d24 record).
DECAY_PER_RUN = 0.0


def muon_weight_decay(decay_per_run, lr, num_iterations, warmup_ratio=0.0, warmdown_ratio=0.2, final_lr_frac=0.0):
    """Muon's weight decay for a run: the lambda whose total decay over the run, the sum over steps of
    lr_t * lambda, is decay_per_run.

    Decoupled decay (p -= lr * lambda * p each step, on top of the update) makes the weights an average of
    recent updates over about 1 / (lr * lambda) steps. Wang & Aitchison (arXiv 2405.13698) find the best such
    window a fixed fraction of the run across model and dataset sizes, so lambda follows from that fraction,
    the lr and the horizon: with the batch fixed it falls as 1/tokens. nanochat's rule (lambda grows as
    sqrt(batch) / tokens with the lr as sqrt(batch)) keeps the same sum, about 4.3 at its d24 record."""
    n = max(1, min(int(num_iterations), 1000))   # the steps themselves, or 1000 evenly spaced ones
    mean_lrm = sum(lr_multiplier(i / n, warmup_ratio, warmdown_ratio, final_lr_frac) for i in range(n)) / n
    return decay_per_run / (lr * num_iterations * mean_lrm)
