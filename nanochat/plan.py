"""The plan of a run before paying for it: per stage the model's shape, batch, steps, tokens, FLOPs, and estimated
peak memory per GPU, time and cost on named or detected hardware. Built on meta-device models and the functions the
stages call (grad_accum_steps, estimate_flops, the batch-fitting rule), so it follows the code. Estimates, not
measurements: time is FLOPs / (GPUs x bf16 peak x MFU), MFU an input; memory a sum of terms calibrated on CPU.
"""

import re
from dataclasses import asdict, dataclass

import torch

from nanochat.common import BadInput
from nanochat.gpt import GPT, config_from_depth
from nanochat.training import PEAK_BF16_FLOPS, grad_accum_steps

GB = 1e9   # memory is sold and printed in decimal GB
MFU = 0.40   # fraction of the bf16 peak a well-tuned bf16 run reaches on these GPUs; an assumption, not measured
# name: (memory GB, bf16 dense peak FLOP/s, $ per GPU-hour on demand, late 2025: rough, check your provider)
GPUS = {"H100": (80, PEAK_BF16_FLOPS["H100"], 3.00), "H200": (141, PEAK_BF16_FLOPS["H200"], 3.80),
        "A100-80GB": (80, PEAK_BF16_FLOPS["A100"], 1.80), "A100-40GB": (40, PEAK_BF16_FLOPS["A100"], 1.30),
        "L40S": (48, PEAK_BF16_FLOPS["L40S"], 1.00), "RTX4090": (24, PEAK_BF16_FLOPS["4090"], 0.40)}
# compiled -> (activations one block saves for backward, in n_embd-sized vectors per token: q, k, v, their rotary and
# normed copies, the MLP's 4x-wide hidden before and after ReLU^2, ...; copies of the (B, T, vocab) fp32 logits at
# the loss: softcapped, log-softmax, gradient). Eager: fitted to the peak RSS of fp32 steps on CPU over 12 shapes.
# Compiled (Inductor recomputes pointwise ops, fuses the loss; the stages compile on CUDA only): fitted to one H200
# step, depth 12, 32 x 2048 tokens, vocab 32,768, bf16, whose allocator peaked at 35,000 MiB (docs/LOG.md,
# 2026-12-04); this formula then gives 34,763 MiB before its overhead term.
SAVED = {False: (37, 3.0), True: (16, 1.5)}


@dataclass
class Hardware:
    name: str
    count: int           # GPUs (or 1 for a CPU)
    memory: float        # bytes per device
    flops: float | None  # bf16 peak FLOP/s per device; None: unknown (a CPU, an unlisted GPU), no time estimate
    hourly: float | None   # $ per device-hour
    dtype_bytes: int = 2   # the compute dtype: bf16 on GPUs, fp32 on a CPU
    overhead: float = 1 * GB   # beside the tensors: CUDA context, cuBLAS workspace, allocator slack


def cpu_hardware():
    import psutil
    # fp32 compute. The overhead is the process's own: Python and torch's libraries (~0.56 GB resident), and
    # torch's allocations at first use (~0.26 GB): so the estimate compares with the peak RSS a stage reports.
    return Hardware("CPU", 1, psutil.virtual_memory().total, None, 0.0, dtype_bytes=4, overhead=0.82 * GB)


def parse_gpus(spec):
    """'8xH100', 'H200' (one), '2xA100-40GB' or 'cpu' -> Hardware; names as in GPUS, any case."""
    m = re.fullmatch(r"(?:([1-9]\d*)x)?([\w-]+)", spec.strip(), re.IGNORECASE)
    name = next((n for n in [*GPUS, "CPU"] if m and n.upper() == m[2].upper()), None)
    if name is None:
        raise BadInput(f"--gpus {spec!r}: expected COUNTxNAME with NAME one of {', '.join(GPUS)} (or cpu), "
                       "e.g. --gpus 8xH100")
    if name == "CPU":
        return cpu_hardware()
    memory, flops, hourly = GPUS[name]
    return Hardware(name, int(m[1] or 1), memory * GB, flops, hourly)


def detect_hardware():
    """The GPUs of this machine (their real memory; FLOP/s and price from GPUS when listed), else the CPU."""
    if not torch.cuda.is_available():
        return cpu_hardware()
    props = torch.cuda.get_device_properties(0)
    squashed = props.name.upper().replace(" ", "")   # 'NVIDIA A100-SXM4-40GB' matches 'A100-40GB'
    name = next((n for n in GPUS if all(part in squashed for part in n.split("-"))), props.name)
    _, flops, hourly = GPUS.get(name, (None, None, None))
    return Hardware(name, torch.cuda.device_count(), props.total_memory, flops, hourly)


def meta_model(depth, vocab_size, seq_len, **shape):
    """The stage's model with no storage (meta device): shapes, parameter counts and FLOPs, no memory."""
    with torch.device("meta"):
        return GPT(config_from_depth(depth, vocab_size, seq_len, **shape))


def memory_estimate(model, device_batch, hw, train=True, compiled=False):
    """Estimated peak bytes per device of one micro-step of `device_batch` rows of the model's sequence length."""
    cfg, world = model.config, hw.count
    tokens = device_batch * cfg.sequence_len
    params = model.num_params()
    weights = 4 * params   # fp32 master weights; autocast casts them per op
    if not train:   # no grads, no optimizer, nothing kept for backward: a KV cache and one batch of logits
        kv_cache = 2 * cfg.n_layer * tokens * cfg.n_kv_head * cfg.head_dim * hw.dtype_bytes
        return weights + kv_cache + 2 * 4 * tokens * cfg.vocab_size + hw.overhead
    grads = 4 * params   # fp32, whole on every rank until the optimizer's reduce-scatter
    muon = sum(p.numel() for p in model.param_groups()["matrix"])
    # optimizer state (nanochat/optim.py), each rank keeping only its share (ZeRO-2): Muon a momentum buffer
    # (NorMuon's per-row moments are negligible), AdamW two moments, all fp32
    state = 4 * (muon + 2 * (params - muon)) / world
    vectors, logit_copies = SAVED[compiled]
    activations = vectors * cfg.n_layer * tokens * cfg.n_embd * hw.dtype_bytes
    logits = logit_copies * 4 * tokens * cfg.vocab_size
    return weights + grads + state + activations + logits + hw.overhead


def fitting_batch(model, device_batch, hw, train=True, compiled=False):
    """The batch training.fit_batch would settle on if memory_estimate were the truth (its rule: the largest divisor
    of the requested batch at most half the last one tried, so the total batch is kept); 0 if not even 1 fits."""
    b = device_batch
    while memory_estimate(model, b, hw, train, compiled) > hw.memory:
        if b == 1:
            return 0
        b = max(d for d in range(1, b // 2 + 1) if device_batch % d == 0)
    return b


def plan_row(stage, model, hw, device_batch, batch_tokens, steps, train=True, compiled=False, mfu=MFU):
    """One stage: `batch_tokens` per optimizer step (forward-only stages: per batch) over all devices, `steps`
    of them; `compiled` as the stage runs (base and mid on CUDA). Forward-only stages (eval, sampling) cost a third
    of estimate_flops(), which counts training."""
    cfg = model.config
    accum = grad_accum_steps(batch_tokens, device_batch, cfg.sequence_len, hw.count)
    tokens = steps * batch_tokens
    flops = model.estimate_flops() * tokens / (1 if train else 3)
    memory = memory_estimate(model, device_batch, hw, train, compiled)
    fit = fitting_batch(model, device_batch, hw, train, compiled)
    hours = flops / (hw.count * hw.flops * mfu) / 3600 if hw.flops else None
    return dict(stage=stage, depth=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head, params=model.num_params(),
                seq_len=cfg.sequence_len, device_batch=device_batch, accum=accum, steps=steps, tokens=tokens,
                flops=flops, memory=memory, fits=fit == device_batch, fit_batch=fit,
                fit_accum=accum * device_batch // fit if fit else None,
                hours=hours, cost=None if hours is None or hw.hourly is None else hours * hw.count * hw.hourly)


def make_plan(rows, hw, mfu=MFU):
    """The plan as JSON-ready data: the hardware, the MFU assumed, the rows and their totals."""
    total = {k: None if any(r[k] is None for r in rows) else sum(r[k] for r in rows)
             for k in ("steps", "tokens", "flops", "hours", "cost")}   # no time known for one stage: none in total
    return {"hardware": asdict(hw), "mfu": mfu, "stages": rows, "total": total}


def _si(x):
    return next((f"{x / s:.3g}{u}" for s, u in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"),
                                                (1e3, "k")) if abs(x) >= s), f"{x:.3g}")


def format_plan(plan):
    """The plan as a table: one row per stage, then the totals, then the stages that do not fit and what would."""
    hw, total = Hardware(**plan["hardware"]), plan["total"]
    hours = (lambda h: "-" if h is None else f"{h:.2f} h")
    cost = (lambda c: "-" if c is None else f"${c:,.2f}")
    table = [["stage", "depth", "width", "heads", "params", "seq", "batch", "accum", "steps", "tokens", "FLOPs",
              "mem/GPU", "time", "cost"]]
    est = (lambda r: "~" if r.get("estimated") else "")   # steps from data not yet downloaded: an estimate
    table += [[r["stage"], r["depth"], r["n_embd"], r["n_head"], _si(r["params"]), r["seq_len"], r["device_batch"],
               r["accum"], est(r) + str(r["steps"]), est(r) + _si(r["tokens"]), _si(r["flops"]),
               f"{r['memory'] / GB:.1f} GB", hours(r["hours"]), cost(r["cost"])] for r in plan["stages"]]
    approx = "~" if any(r.get("estimated") for r in plan["stages"]) else ""
    table.append(["total", *[""] * 7, approx + str(total["steps"]), approx + _si(total["tokens"]),
                  _si(total["flops"]), "", hours(total["hours"]), cost(total["cost"])])
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    peak = f"{hw.flops / 1e12:.0f} TFLOP/s bf16 at {plan['mfu']:.0%} MFU" if hw.flops else "no FLOP/s known"
    price = f"${hw.hourly:.2f}/device-hour" if hw.hourly is not None else "no price known"
    lines = [f"plan: {hw.count} x {hw.name} ({hw.memory / GB:.0f} GB, {peak}, {price}); time and cost are ESTIMATES"]
    lines += ["  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
              for row in table]
    if approx:
        lines.append("~: estimated before the data is downloaded, from the datasets' published sizes (and for "
                     "midtraining an assumed mean conversation length: scripts/plan.py)")
    for r in (r for r in plan["stages"] if not r["fits"]):
        lines.append(f"! {r['stage']}: ~{r['memory'] / GB:.1f} GB does not fit in {hw.memory / GB:.0f} GB; " + (
            f"--device-batch-size={r['fit_batch']} would ({r['fit_accum']} accumulation steps, the same total batch)"
            if r["fit_batch"] else "not even batch 1 fits: a smaller model or more GPUs"))
    return "\n".join(lines)
