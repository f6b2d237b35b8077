"""Checkpoints that resume a training run exactly. Step S is model_S.pt (rank 0), optim_S_rank<r>.pt (each rank's
optimizer shard, loader position, RNG) and meta_S.json, written last by rank 0 after a barrier: a step without
it is incomplete. Every file is written atomically; resume falls back to the newest step every rank can load.
Deliberately left out: sharded model weights (the model fits on one GPU) and cloud storage.
"""

import glob
import json
import os
import re

import torch

from nanochat.common import active_dist, all_ranks_max, atomic_path, atomic_write_json, get_base_dir


def _paths(ckpt_dir, step, rank):
    s = f"{step:06d}"
    return (os.path.join(ckpt_dir, f"model_{s}.pt"), os.path.join(ckpt_dir, f"optim_{s}_rank{rank}.pt"),
            os.path.join(ckpt_dir, f"meta_{s}.json"))


def save_checkpoint(ckpt_dir, step, model_state, rank_state, meta, rank=0, keep_last=None):
    """Collective when torch.distributed is initialised: every rank must call it."""
    model_path, rank_path, meta_path = _paths(ckpt_dir, step, rank)   # atomic_path creates ckpt_dir
    with atomic_path(rank_path) as tmp:
        torch.save(rank_state, tmp)
    dist = active_dist()
    world_size = dist.get_world_size() if dist else 1
    if dist:
        dist.barrier()   # every rank's file is on disk before the step is declared complete
    if rank == 0:
        with atomic_path(model_path) as tmp:
            torch.save(model_state, tmp)
        atomic_write_json(meta_path, {**meta, "step": step, "world_size": world_size})
    if dist:
        dist.barrier()
    for old in complete_steps(ckpt_dir)[keep_last:] if keep_last else []:   # prune: each rank its own files
        model_path, rank_path, meta_path = _paths(ckpt_dir, old, rank)
        for p in ([meta_path, model_path] if rank == 0 else []) + [rank_path]:
            if os.path.exists(p):
                os.remove(p)


def complete_steps(ckpt_dir):
    """Steps with a meta file (i.e. declared complete), newest first."""
    names = [os.path.basename(p) for p in glob.glob(os.path.join(ckpt_dir, "meta_*.json"))]
    return sorted((int(n[5:-5]) for n in names if re.fullmatch(r"meta_\d+\.json", n)), reverse=True)


def load_checkpoint(ckpt_dir, step=None, rank=0, device="cpu", load_rank_state=True, log=print):
    """(model_state, rank_state, meta) of step `step`, or of the newest step that loads on every rank; a
    FileNotFoundError if none does. Collective when torch.distributed is initialised."""
    candidates = [step] if step is not None else complete_steps(ckpt_dir)
    dist = active_dist()
    for s in candidates:
        model_path, rank_path, meta_path = _paths(ckpt_dir, s, rank)
        why = None
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            model_state = torch.load(model_path, map_location=device)
            rank_state = torch.load(rank_path, map_location=device, weights_only=False) if load_rank_state else None
        except Exception as e:  # truncated zip, missing file, bad JSON: all mean "skip this step"
            why = f"{type(e).__name__}: {e}"
        if all_ranks_max(1 if why else 0, device) == 0:   # no rank failed; on `device`, which nccl can reduce
            world_size = dist.get_world_size() if dist else 1
            if load_rank_state and meta.get("world_size", 1) != world_size:
                raise ValueError(f"checkpoint step {s} in {ckpt_dir} was written by {meta['world_size']} ranks, "
                                 f"this run has {world_size}: resume with the same number of processes")
            return model_state, rank_state, meta
        if why and log:
            log(f"skipping checkpoint step {s} in {ckpt_dir}: cannot load it on rank {rank} ({why})")
        elif log and rank == 0:
            log(f"skipping checkpoint step {s} in {ckpt_dir}: another rank cannot load its part")
    raise FileNotFoundError(f"no complete checkpoint in {ckpt_dir}" + (f" at step {step}" if step is not None else ""))


# -----------------------------------------------------------------------------
# Finding and loading the model a stage produced

# source -> (checkpoint directory under the base dir, the command that produces it)
SOURCES = {
    "base": ("base_checkpoints", "python -m scripts.base_train"),
    "mid": ("mid_checkpoints", "python -m scripts.mid_train"),
    "sft": ("chatsft_checkpoints", "python -m scripts.chat_sft"),
    "rl": ("chatrl_checkpoints", "python -m scripts.chat_rl"),
}


def add_checkpoint_args(p, source="sft", sources=SOURCES, use="to load", flags=("--source",)):
    """The flags of the checkpoint a script loads, load_model's arguments: --source (its `flags`; none when
    `source` is None: the script loads one stage's), --model-tag and --step."""
    if source:
        p.add_argument(*flags, default=source, choices=list(sources), help=f"which stage's checkpoint {use}")
    p.add_argument("--model-tag", default=None, help="checkpoint tag, its subdirectory (default: the newest)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the newest complete one)")


def checkpoint_dir(source, model_tag=None, base_dir=None):
    """Directory of a stage's checkpoints; without a tag, the most recently written tag."""
    subdir, command = SOURCES[source]
    root = os.path.join(base_dir or get_base_dir(), subdir)
    if model_tag:
        path = os.path.join(root, model_tag)
        if not complete_steps(path):
            raise FileNotFoundError(f"no {source} checkpoint with tag {model_tag!r} in {root}; "
                                    f"produce one with `{command} --model-tag={model_tag}`")
        return path
    tags = [t for t in (os.listdir(root) if os.path.isdir(root) else []) if complete_steps(os.path.join(root, t))]
    if not tags:
        raise FileNotFoundError(f"no {source} checkpoint in {root}; produce one with `{command}`")
    return max((os.path.join(root, t) for t in tags), key=os.path.getmtime)


def load_model(source, device="cpu", model_tag=None, step=None, base_dir=None, dtype=None):
    """(model in eval mode, tokenizer, meta) from a stage's newest (or given) checkpoint. An inference-only
    caller passes its compute dtype: weights stored in bf16 save a cast kernel per matmul per decode step
    (1.14-1.38x decode tok/s on an H200, docs/LOG.md 2026-12-04); training keeps fp32 master weights."""
    from nanochat.gpt import GPT, GPTConfig
    from nanochat.tokenizer import get_tokenizer
    path = checkpoint_dir(source, model_tag, base_dir)
    model_state, _, meta = load_checkpoint(path, step=step, device=device, load_rank_state=False, log=None)
    model = GPT(GPTConfig(**meta["model_config"]))
    model.load_state_dict(model_state)
    model.to(device, dtype).eval()
    tokenizer = get_tokenizer(base_dir)
    if tokenizer.get_vocab_size() != model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.get_vocab_size()} tokens but the {source} model in {path} "
                         f"expects {model.config.vocab_size}: it was trained with another tokenizer")
    return model, tokenizer, {**meta, "checkpoint_dir": path}
