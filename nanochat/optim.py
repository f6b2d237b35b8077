"""MuonAdamW: one optimizer for the whole model, which also does the data-parallel gradient sync.
Every param group names its rule with "kind" ("adamw" or "muon", 2-D matrices only) and keeps "initial_lr",
so a loop schedules with group["lr"] = group["initial_lr"] * multiplier.
Several processes (no DDP): step() reduce-scatters gradients, each rank updates and keeps state for its own
slice (AdamW rows, or whole stacked Muon matrices), then all-gathers the result, ZeRO-2 style; each job's
all-gather overlaps the next job's compute. _Comm gives gloo the same results, so CPU tests run this step().
Deliberately not here: models, lr schedules, gradient clipping, resharding (resume needs the same world size).
"""

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist

ADAMW_DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
MUON_DEFAULTS = {"lr": 0.02, "momentum": 0.95, "nesterov": True, "ns_steps": 5, "polar": False, "beta2": 0.0,
                 "weight_decay": 0.0, "cautious": False}
KIND_DEFAULTS = {"adamw": ADAMW_DEFAULTS, "muon": MUON_DEFAULTS}


# -----------------------------------------------------------------------------
# The two update rules, on local tensors


def adamw_update_(p, grad, state, group):
    """One AdamW step on p (a whole parameter or this rank's rows of one), in place, in the same order of
    operations as torch.optim.AdamW's single-tensor path, so the two agree to the last few bits."""
    if not state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(p)
        state["exp_avg_sq"] = torch.zeros_like(p)
    state["step"] += 1
    t, lr = state["step"], group["lr"]
    beta1, beta2 = group["betas"]
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    p.mul_(1 - lr * group["weight_decay"])  # decoupled: decay the weight, not the gradient
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    # Both moments start at 0 and so are biased towards 0 by factors (1 - beta^t); divide those out.
    step_size = lr / (1 - beta1 ** t)
    denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2 ** t)).add_(group["eps"])
    p.addcdiv_(exp_avg, denom, value=-step_size)


NS_COEFFS = (3.4445, -4.7750, 2.0315)

# Polar Express (Amsel, Persson, Musco, Gower 2025, arXiv 2505.16932): a different quintic at every step,
# each the minimax-optimal one for the interval the previous steps left the singular values in: five steps
# take every singular value in [0.001, 1] into [0.85, 1.15], where the fixed quintic leaves [0.47, 1.20].
# The published schedule for 5 steps (computed with their safety factor 2e-2 and cushion 2):
POLAR_EXPRESS_COEFFS = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)


def orthogonalize(G, steps, polar=False):
    """Roughly orthogonalise each matrix of G (..., m, n): U S V^T -> U S' V^T with S' near 1.

    X <- a X + b (X X^T) X + c (X X^T)^2 X applies the odd polynomial f(s) = a s + b s^3 + c s^5 to every
    singular value and leaves U, V alone. With polar=False the same quintic every step, from Keller Jordan's
    Muon write-up (kellerjordan.github.io/posts/muon): a = 3.4445 grows small singular values fast and they
    then oscillate in a band around 1 (roughly 0.7..1.2), which training does not mind. With polar=True the
    Polar Express schedule above, built for steps = 5 (its intermediate steps overshoot on purpose; a shorter
    prefix is not a good schedule), which lands much closer to the polar factor U V^T.
    bf16 on CUDA (fast and good enough), fp32 elsewhere.
    """
    X = G.bfloat16() if G.is_cuda else G.float()
    tall = X.size(-2) > X.size(-1)
    if tall:
        X = X.mT  # work on the wide side, so X X^T is the smaller Gram matrix
    # Scale so every singular value is <= 1 (spectral norm <= Frobenius norm): inside f's basin. Polar
    # Express's first quintic overshoots past 1, so leave it 1% of headroom against rounding.
    X = X / (X.norm(dim=(-2, -1), keepdim=True) * (1.01 if polar else 1.0) + 1e-7)
    for a, b, c in POLAR_EXPRESS_COEFFS[:steps] if polar else [NS_COEFFS] * steps:
        A = X @ X.mT
        B = b * A + c * (A @ A)
        X = a * X + B @ X
    if tall:
        X = X.mT
    return X.to(G.dtype)


def muon_update_(params, grads, bufs, row_moments, group):
    """One Muon step on a stack of matrices params (k, m, n), in place; grads: their averaged gradients
    (overwritten), bufs: momentum buffers (k, m, n), row_moments: NorMuon's (k, m, 1) or None.

    Momentum (an EMA of gradients), optionally Nesterov-style, then orthogonalised. NorMuon (Li et al. 2025,
    arXiv 2510.05491): orthogonalised updates have rows (output neurons) of uneven size; an EMA of each row's
    mean square, divided out, evens them, and the result is rescaled to the orthogonalised update's norm so
    only the split between rows changes. Scaled by sqrt(max(1, m/n)) so tall matrices (like the MLP's c_fc)
    get updates of a comparable RMS size. Weight decay is decoupled; cautious (Chen et al. 2025, arXiv
    2510.12402) applies it only to entries where the update already shrinks the weight.
    """
    momentum, lr, wd = group["momentum"], group["lr"], group["weight_decay"]
    bufs.lerp_(grads, 1 - momentum)
    g = grads.lerp_(bufs, momentum) if group["nesterov"] else bufs  # Nesterov: look ahead
    u = orthogonalize(g, group["ns_steps"], group["polar"]).float()
    if row_moments is not None:
        row_moments.lerp_(u.square().mean(dim=-1, keepdim=True), 1 - group["beta2"])
        evened = u / (row_moments.sqrt() + 1e-10)
        u = evened * (u.norm(dim=(-2, -1), keepdim=True) / (evened.norm(dim=(-2, -1), keepdim=True) + 1e-10))
    m, n = params.shape[-2:]
    u = u * max(1.0, m / n) ** 0.5
    step = lr * u.to(params.dtype)
    if wd:
        decay = params * (u * params >= 0) if group["cautious"] else params  # p - lr * u shrinks |p| there
        step = step + lr * wd * decay
    params.sub_(step)


# -----------------------------------------------------------------------------
# Communication: one small object, chosen by backend


@dataclass
class _Comm:
    world_size: int
    rank: int
    native: bool  # NCCL: real reduce-scatter / all-gather-into-tensor with AVG

    @staticmethod
    def current():
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return _Comm(1, 0, False)
        return _Comm(dist.get_world_size(), dist.get_rank(), dist.get_backend() == "nccl")

    def reduce_scatter_mean(self, inp):
        """Start averaging inp (W*n, ...) over ranks; this rank gets rows [rank*n, (rank+1)*n).
        Returns (wait, out); out is valid after wait(). inp itself is left unchanged."""
        if self.world_size == 1:
            return (lambda: None), inp
        n = inp.size(0) // self.world_size
        out = inp.new_empty((n, *inp.shape[1:]))
        if self.native:
            return dist.reduce_scatter_tensor(out, inp, op=dist.ReduceOp.AVG, async_op=True).wait, out
        total = inp.clone()  # all_reduce works in place; the caller's gradient must stay the local one
        work = dist.all_reduce(total, op=dist.ReduceOp.SUM, async_op=True)
        mine = total[self.rank * n:(self.rank + 1) * n]

        def wait():
            work.wait()
            torch.div(mine, self.world_size, out=out)
        return wait, out

    def all_gather(self, inp, out=None):
        """Start gathering every rank's inp (n, ...) into out (W*n, ...), rank order. inp may be a
        view of out (this rank's rows). Returns (wait, out); out is valid after wait()."""
        if self.world_size == 1:
            if out is not None and out.data_ptr() != inp.data_ptr():
                out.copy_(inp)
            return (lambda: None), inp if out is None else out
        if out is None:
            out = inp.new_empty((self.world_size * inp.size(0), *inp.shape[1:]))
        if self.native:
            return dist.all_gather_into_tensor(out, inp, async_op=True).wait, out
        return dist.all_gather(list(out.chunk(self.world_size)), inp, async_op=True).wait, out


def _padded_rows(x, rows):
    """x with dim 0 zero-padded to `rows` (x itself when it already has that many)."""
    if x.size(0) == rows:
        return x
    return torch.cat([x, x.new_zeros((rows - x.size(0), *x.shape[1:]))])


# -----------------------------------------------------------------------------
# The optimizer


class MuonAdamW(torch.optim.Optimizer):
    def __init__(self, param_groups):
        groups = []
        for group in param_groups:
            kind = group.get("kind")
            assert kind in KIND_DEFAULTS and set(group) <= {*KIND_DEFAULTS[kind], "params", "kind", "initial_lr",
                                                            "name"}, f"a group's keys: {sorted(group)}"
            group = {**KIND_DEFAULTS[kind], **group, "params": list(group["params"])}
            group.setdefault("initial_lr", group["lr"])
            assert kind == "adamw" or all(p.dim() == 2 for p in group["params"]), "Muon takes 2-D matrices only"
            groups.append(group)
        super().__init__(groups, defaults={})

    @torch.no_grad()
    def step(self):
        comm = _Comm.current()
        # Each job is a generator that runs up to a communication point and yields while the
        # collective is in flight. Three passes: start every reduce-scatter; then, in order, wait
        # for one job's gradient, update, start its all-gather; finally wait for the all-gathers.
        jobs = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if comm.world_size > 1 and len(params) != len(group["params"]):
                # Skipping would desync the collectives across ranks, and hang.
                shapes = [tuple(p.shape) for p in group["params"] if p.grad is None]
                raise RuntimeError(f"rank {comm.rank}: parameters of shapes {shapes} have no gradient; in a "
                                   "distributed step every rank needs a gradient for every parameter "
                                   "(set p.grad = torch.zeros_like(p) for unused ones)")
            if group["kind"] == "adamw":
                jobs += [self._adamw_job(p, group, comm) for p in params]
            else:   # one job per shape, in order of first appearance (the same on every rank)
                buckets = {}
                for p in params:
                    buckets.setdefault(tuple(p.shape), []).append(p)
                jobs += [self._muon_job(same, group, comm) for same in buckets.values()]
        for _ in range(3):
            for job in jobs:
                next(job, None)

    def _adamw_job(self, p, group, comm):
        W, r = comm.world_size, comm.rank
        full = p.view(1) if p.dim() == 0 else p  # a 0-D scalar is one row
        rows = full.size(0)
        chunk = -(-rows // W)  # ceil: rows per rank after padding
        grad = p.grad.view(1) if p.dim() == 0 else p.grad
        wait, grad_mine = comm.reduce_scatter_mean(_padded_rows(grad.contiguous(), chunk * W))
        yield
        wait()
        # This rank's rows: a view of the parameter when dim 0 splits evenly, else rows of a padded copy
        # (padding rows have zero grad and state, so their update is zero).
        padded = _padded_rows(full, chunk * W)
        mine = padded[r * chunk:(r + 1) * chunk]
        adamw_update_(mine, grad_mine, self.state[p], group)
        wait, padded = comm.all_gather(mine, out=padded)
        yield
        wait()
        if padded is not full:
            full.copy_(padded[:rows])

    def _muon_job(self, params, group, comm):
        W, r = comm.world_size, comm.rank
        per_rank = -(-len(params) // W)  # ceil: matrices each rank owns after padding
        grads = torch.stack([p.grad for p in params])  # (K, m, n)
        wait, grads_mine = comm.reduce_scatter_mean(_padded_rows(grads, per_rank * W))  # (per_rank, m, n)
        yield
        wait()
        mine = params[r * per_rank:(r + 1) * per_rank]  # fewer than per_rank (maybe none) on the last ranks
        k = len(mine)
        updated = torch.zeros_like(grads_mine)  # padding slots stay zero
        if k:
            states = [self.state[p] for p in mine]
            for s, p in zip(states, mine):
                s.setdefault("momentum_buffer", torch.zeros_like(p))
                if group["beta2"] > 0:
                    s.setdefault("row_moments", torch.zeros(p.size(0), 1, device=p.device))
            bufs = torch.stack([s["momentum_buffer"] for s in states])
            moments = torch.stack([s["row_moments"] for s in states]) if group["beta2"] > 0 else None
            updated[:k] = torch.stack(mine)
            muon_update_(updated[:k], grads_mine[:k], bufs, moments, group)
            for i, s in enumerate(states):  # the state stays per matrix, as ZeRO sharding deals them out
                s["momentum_buffer"].copy_(bufs[i])
                if moments is not None:
                    s["row_moments"].copy_(moments[i])
        wait, everyone = comm.all_gather(updated)  # (per_rank * W, m, n)
        yield
        wait()
        for p, new in zip(params, everyone):  # the zip stops before the padding slots
            p.copy_(new)

    def state_dict(self):
        """This rank's shard of the state, tagged with the world size and rank it belongs to."""
        comm = _Comm.current()
        sd = super().state_dict()
        sd["world_size"], sd["rank"] = comm.world_size, comm.rank
        return sd

    def load_state_dict(self, state_dict):
        comm = _Comm.current()
        saved = (state_dict.get("world_size", 1), state_dict.get("rank", 0))
        if saved != (comm.world_size, comm.rank):
            raise ValueError(f"optimizer state was saved by rank {saved[1]} of {saved[0]} but this is rank "
                             f"{comm.rank} of {comm.world_size}: resume with the same world size, each rank "
                             "loading its own optim_*_rank<r>.pt")
        for i, (ours, theirs) in enumerate(zip(self.param_groups, state_dict["param_groups"])):
            if ours["kind"] != theirs.get("kind"):
                raise ValueError(f"param group {i} is {ours['kind']!r} here but {theirs.get('kind')!r} in the "
                                 "saved state: build the groups in the same order as the saved run")
        super().load_state_dict({k: v for k, v in state_dict.items() if k not in ("world_size", "rank")})
