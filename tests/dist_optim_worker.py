"""
Worker for tests/test_distributed_optim.py: `torchrun ... tests/dist_optim_worker.py OUT_DIR`.

Trains a tiny GPT (plus extras: a 0-D scalar and a length-5 vector for AdamW, a lone 5x7 matrix for
Muon, fewer matrices of its shape than ranks) for a few
steps with MuonAdamW on a fixed global batch, each rank taking its own rows, and writes
OUT_DIR/rank<r>.pt: the final parameters, the shapes of the optimizer state this rank holds, and the
param groups by name. Then rank 0 leaves the process group and trains again alone on the whole batch
(the single-process path: no communication), writing OUT_DIR/reference.pt for the test to compare.
Doing the reference here saves the test process the slow first import behind torch.optim.

The model is chosen to hit the awkward cases: vocab 67 (AdamW rows not divisible by 2), three
layers (Muon buckets of 3 same-shape matrices on 2 ranks), GQA (several bucket shapes), and every
optional piece of the architecture (value embeddings, gates, 0-D scalars) with the full Muon recipe
(Polar Express, NorMuon's row moments, cautious weight decay).
"""

import os
import sys

import torch
import torch.distributed as dist

from nanochat.common import compute_cleanup, compute_init, dist_info
from nanochat.gpt import GPT, GPTConfig
from nanochat.optim import MuonAdamW

CONFIG = GPTConfig(sequence_len=16, vocab_size=67, n_layer=3, n_head=2, n_kv_head=1, n_embd=32, window_pattern="SL",
                   short_window=6, value_embeds=True, layer_scalars=True, smear=True, backout=True)
MUON = {"polar": True, "beta2": 0.95, "cautious": True}
GLOBAL_BATCH = 4
STEPS = 4


def build(seed=1234):
    """{name: parameter} and the optimizer, identical on every rank."""
    torch.manual_seed(seed)
    # float64: fp32 rounding, which Adam amplifies where gradients are tiny, would blur a sync bug
    model = GPT(CONFIG).double()
    params = dict(model.named_parameters())
    params["scalar"] = torch.nn.Parameter(torch.tensor(0.5, dtype=torch.float64))
    params["vector"] = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    params["lonely"] = torch.nn.Parameter(torch.randn(5, 7, dtype=torch.float64))
    groups = model.param_groups()
    with torch.no_grad():  # the optional pieces start at zero; give them values so their gradients mix
        for p in [*groups["value_embedding"], *groups["gate"], *groups["scalar"]]:
            p.normal_(std=0.3)
    opt = MuonAdamW([
        {"kind": "adamw", "params": groups["embedding"], "lr": 0.05, "betas": (0.8, 0.95), "weight_decay": 0.01},
        {"kind": "muon", "params": groups["matrix"], "lr": 0.03, "momentum": 0.9, "weight_decay": 0.01, **MUON},
        {"kind": "adamw", "params": groups["unembedding"], "lr": 0.01, "betas": (0.8, 0.95)},
        {"kind": "adamw", "params": groups["value_embedding"] + groups["gate"], "lr": 0.02},
        {"kind": "adamw", "params": [*groups["scalar"], params["scalar"], params["vector"]], "lr": 0.02},
        {"kind": "muon", "params": [params["lonely"]], "lr": 0.02},
    ])
    return model, params, opt


def global_batch():
    g = torch.Generator().manual_seed(99)
    tokens = torch.randint(0, CONFIG.vocab_size, (GLOBAL_BATCH, CONFIG.sequence_len + 1), generator=g)
    return tokens[:, :-1], tokens[:, 1:]


def train(rank=0, world_size=1):
    """Train on this rank's equal share of the global batch; returns ({name: parameter}, optimizer).
    With equal shares, the mean of the ranks' mean losses is the whole batch's mean loss, so the
    averaged gradients equal the one-process gradient."""
    model, params, opt = build()
    idx, targets = global_batch()
    rows = slice(rank * GLOBAL_BATCH // world_size, (rank + 1) * GLOBAL_BATCH // world_size)
    idx, targets = idx[rows], targets[rows]
    for _ in range(STEPS):
        # the extras get data-dependent gradients too
        extra = (params["vector"][targets % 5] * params["scalar"]).mean()
        extra = extra + params["lonely"][targets % 5, idx % 7].square().mean()
        loss = model(idx, targets) + 0.1 * extra
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return params, opt


def state_summary(params, opt):
    """{param name: {state key: shape}} for the optimizer state this process holds."""
    names = {id(p): name for name, p in params.items()}
    return {names[id(p)]: {k: tuple(v.shape) for k, v in s.items() if torch.is_tensor(v)}
            for p, s in opt.state.items()}


def snapshot(params, opt):
    names = {id(p): name for name, p in params.items()}
    return {"params": {name: p.detach().clone() for name, p in params.items()},
            "state": state_summary(params, opt),
            "groups": [(g["kind"], [names[id(p)] for p in g["params"]]) for g in opt.param_groups],
            "world_size": opt.state_dict()["world_size"]}  # the world size the optimizer saw


def main():
    out_dir = sys.argv[1]
    compute_init(device_type="cpu")
    rank, _, world_size = dist_info()
    torch.save(snapshot(*train(rank, world_size)), os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    compute_cleanup()
    if rank == 0:
        reference = snapshot(*train())
        reference["initial"] = {name: p.detach().clone() for name, p in build()[1].items()}
        torch.save(reference, os.path.join(out_dir, "reference.pt"))


if __name__ == "__main__":
    main()
