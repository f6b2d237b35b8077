"""Tests for nanochat/optim.py in one process: AdamW vs torch.optim.AdamW, Muon vs an SVD-based
reference, determinism, lr handling and state_dict resume. The multi-process path is in
test_distributed_optim.py."""

import pytest
import torch

from nanochat.optim import POLAR_EXPRESS_COEFFS, MuonAdamW, orthogonalize

NS_COEFFS = (3.4445, -4.7750, 2.0315)  # the quintic's coefficients (Keller Jordan's Muon write-up)


def ns_poly(s, steps=5, polar=False):
    """The scalar map the iteration applies to every (normalised) singular value, `steps` times."""
    for a, b, c in POLAR_EXPRESS_COEFFS[:steps] if polar else [NS_COEFFS] * steps:
        s = a * s + b * s ** 3 + c * s ** 5
    return s


def reference_orthogonalise(G, steps=5, polar=False):
    """Slow reference in float64: the iteration keeps the singular vectors and maps the singular
    values s -> f5(...f1(s / |G|_F)), so it equals U diag(f5(...f1(S / |G|_F))) V^T. Polar Express
    normalises by 1.01 |G|_F."""
    G = G.double()
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    s = ns_poly(S / (torch.linalg.matrix_norm(G)[..., None] * (1.01 if polar else 1.0) + 1e-7), steps, polar)
    return U @ torch.diag_embed(s) @ Vh


def grads_for(params, step, seed=0):
    """Deterministic fake gradients, different at every step."""
    g = torch.Generator().manual_seed(seed * 1000 + step)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)


def mixed_setup(seed=0):
    """A muon group with mixed shapes and two adamw groups with awkward shapes (0-D, 1-D, 3-D)."""
    g = torch.Generator().manual_seed(seed)
    shapes_muon = [(8, 12), (8, 12), (12, 8), (8, 12)]
    shapes_adam = [(7, 5), (3,), (), (4, 4, 2)]
    muon = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes_muon]
    adam = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes_adam]
    opt = MuonAdamW([
        {"kind": "muon", "params": muon, "lr": 0.05, "momentum": 0.9, "weight_decay": 0.1},
        {"kind": "adamw", "params": adam[:2], "lr": 0.01, "betas": (0.8, 0.95), "weight_decay": 0.1},
        {"kind": "adamw", "params": adam[2:], "lr": 0.003, "eps": 1e-6},
    ])
    return muon + adam, opt


def run(params, opt, steps, first_step=0):
    for step in range(first_step, first_step + steps):
        grads_for(params, step)
        opt.step()
        opt.zero_grad(set_to_none=True)


# -----------------------------------------------------------------------------
# AdamW


def test_adamw_matches_torch_adamw():
    g = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (3,), (), (4, 4, 2)]
    ours = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    start = [p.detach().clone() for p in ours]
    hyper = {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-8, "weight_decay": 0.1}
    opt = MuonAdamW([{"kind": "adamw", "params": ours, **hyper}])
    ref = torch.optim.AdamW(theirs, foreach=False, **hyper)
    for step in range(10):
        grads_for(ours, step)
        for a, b in zip(ours, theirs):
            b.grad = a.grad.clone()
        opt.step()
        ref.step()
    for a, b, a0 in zip(ours, theirs, start):
        assert (a - b).abs().max() <= 1e-7, (a, b)
        assert (a - a0).abs().max() > 1e-2  # they moved: the agreement is not trivial


# -----------------------------------------------------------------------------
# Muon


@pytest.mark.parametrize("polar", [False, True], ids=["newton-schulz", "polar-express"])
@pytest.mark.parametrize("shape", [(16, 48), (48, 16), (3, 20, 30)])
def test_orthogonalize_matches_svd_reference(shape, polar):
    G = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    out = orthogonalize(G, steps=5, polar=polar)
    assert out.shape == G.shape and out.dtype == G.dtype
    assert (out.double() - reference_orthogonalise(G, polar=polar)).abs().max() < 1e-4


def test_polar_express_lands_closer_to_the_polar_factor():
    """On a matrix whose singular values span 300x (a momentum with a few strong directions), Polar
    Express ends within 15% of the polar factor U V^T in every direction; the fixed quintic leaves the
    weakest directions at about half size."""
    g = torch.Generator().manual_seed(5)
    U, _ = torch.linalg.qr(torch.randn(64, 32, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(32, 32, generator=g, dtype=torch.float64))
    S = torch.logspace(0, -2.5, 32, dtype=torch.float64)  # / |G|_F: 0.002 .. 0.6
    G = (U * S) @ V.T
    polar_factor = U @ V.T
    for polar, worst in ((True, 0.15), (False, 0.6)):
        out = orthogonalize(G.float(), steps=5, polar=polar).double()
        sv = torch.linalg.svdvals(out)
        assert (sv - 1).abs().max() < worst, (polar, sv)
        err = torch.linalg.matrix_norm(out - polar_factor, ord=2)  # spectral-norm distance
        assert (err < 0.15) == polar, (polar, err)


def test_five_steps_land_in_the_band():
    # Why the band [0.6, 1.25] below: after dividing by the Frobenius norm every singular value is
    # in (0, 1], and five applications of the quintic take any start in [0.02, 1] into ~[0.68, 1.2].
    # A Gaussian 24x96 matrix has s_min / |G|_F ~ (sqrt(96) - sqrt(24)) / sqrt(24 * 96) ~ 0.1
    # (Marchenko-Pastur), well inside that range.
    s = ns_poly(torch.linspace(0.02, 1.0, 10_000, dtype=torch.float64))
    assert s.min() > 0.6 and s.max() < 1.25


@pytest.mark.parametrize("shape, scale", [((24, 96), 1.0), ((96, 24), 2.0)])  # scale sqrt(max(1, rows/cols))
def test_muon_update_is_nearly_orthogonal(shape, scale):
    g = torch.Generator().manual_seed(2)
    p = torch.nn.Parameter(torch.randn(shape, generator=g))
    before = p.detach().clone()
    grad = torch.randn(shape, generator=g)
    p.grad = grad.clone()
    lr = 0.1
    MuonAdamW([{"kind": "muon", "params": [p], "lr": lr}]).step()
    update = (before - p.detach()) / (lr * scale)
    sv = torch.linalg.svdvals(update.double())
    assert sv.min() > 0.6 and sv.max() < 1.25, sv
    # and it points where the gradient points: same singular vectors (first step: momentum ~ gradient)
    U, _, Vh = torch.linalg.svd(grad.double(), full_matrices=False)
    inner = U.T @ update.double() @ Vh.T  # diagonal for a U S' V^T update
    assert (inner - torch.diag(torch.diagonal(inner))).abs().max() < 1e-4


@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_steps_match_reference(nesterov):
    """Three steps of momentum, orthogonalisation, scaling and weight decay, recomputed in float64."""
    g = torch.Generator().manual_seed(3)
    p = torch.nn.Parameter(torch.randn(20, 10, generator=g))
    lr, beta, wd = 0.05, 0.9, 0.1
    opt = MuonAdamW([{"kind": "muon", "params": [p], "lr": lr, "momentum": beta, "nesterov": nesterov,
                      "weight_decay": wd}])
    ref, buf = p.detach().double().clone(), torch.zeros(20, 10, dtype=torch.float64)
    for step in range(3):
        grads_for([p], step)
        grad = p.grad.double()
        opt.step()
        buf = beta * buf + (1 - beta) * grad
        direction = (1 - beta) * grad + beta * buf if nesterov else buf
        ref = ref * (1 - lr * wd) - lr * 2 ** 0.5 * reference_orthogonalise(direction)  # 20x10: scale sqrt(2)
    assert (p.detach().double() - ref).abs().max() < 1e-5


def test_muon_buckets_mixed_shapes_like_separate_groups():
    """A group mixing shapes is split into same-shape stacks internally; that must not change the math."""
    g = torch.Generator().manual_seed(4)
    shapes = [(8, 12), (12, 8), (8, 12), (8, 12)]
    together = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    alone = [torch.nn.Parameter(p.detach().clone()) for p in together]
    hyper = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}
    opt = MuonAdamW([{"kind": "muon", "params": together, **hyper}])
    opts = [MuonAdamW([{"kind": "muon", "params": [p], **hyper}]) for p in alone]
    for step in range(3):
        grads_for(together, step)
        for a, b in zip(together, alone):
            b.grad = a.grad.clone()
        opt.step()
        for o in opts:
            o.step()
    for a, b in zip(together, alone):
        assert (a - b).abs().max() < 1e-6


# -----------------------------------------------------------------------------
# Bookkeeping


def test_step_is_deterministic():
    runs = []
    for _ in range(2):
        params, opt = mixed_setup()
        run(params, opt, steps=4)
        runs.append([p.detach().clone() for p in params])
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_initial_lr_and_lr_multiplier():
    params, opt = mixed_setup()
    assert [grp["initial_lr"] for grp in opt.param_groups] == [0.05, 0.01, 0.003]
    # multiplier 0: nothing moves, weight decay included (it is scaled by lr)
    before = [p.detach().clone() for p in params]
    for grp in opt.param_groups:
        grp["lr"] = grp["initial_lr"] * 0.0
    run(params, opt, steps=1)
    assert all(torch.equal(a, b) for a, b in zip(before, params))
    # multiplier 0.5 == an optimizer built with half the lr (fresh state on both sides)
    params, opt = mixed_setup()
    halved, ref = mixed_setup()
    for grp, ref_grp in zip(opt.param_groups, ref.param_groups):
        grp["lr"] = grp["initial_lr"] * 0.5
        ref_grp["lr"] = ref_grp["lr"] * 0.5
    run(params, opt, steps=2)
    run(halved, ref, steps=2)
    assert all(torch.equal(a, b) for a, b in zip(params, halved))
    assert [grp["initial_lr"] for grp in opt.param_groups] == [0.05, 0.01, 0.003]


def test_state_dict_round_trip_resumes_identically(tmp_path):
    params, opt = mixed_setup()
    run(params, opt, steps=3)
    for grp in opt.param_groups:
        grp["lr"] = grp["initial_lr"] * 0.7  # a schedule mid-way
    torch.save({"params": [p.detach().clone() for p in params], "optim": opt.state_dict()}, tmp_path / "ckpt.pt")
    run(params, opt, steps=3, first_step=3)

    resumed, opt2 = mixed_setup(seed=123)  # different starting weights, overwritten by the checkpoint
    ckpt = torch.load(tmp_path / "ckpt.pt")
    with torch.no_grad():
        for p, saved in zip(resumed, ckpt["params"]):
            p.copy_(saved)
    opt2.load_state_dict(ckpt["optim"])
    assert [grp["lr"] for grp in opt2.param_groups] == [grp["lr"] for grp in opt.param_groups]
    assert [grp["initial_lr"] for grp in opt2.param_groups] == [0.05, 0.01, 0.003]
    run(resumed, opt2, steps=3, first_step=3)
    for a, b in zip(params, resumed):
        assert torch.equal(a, b)


def test_load_state_dict_checks_world_size_and_group_kinds():
    params, opt = mixed_setup()
    run(params, opt, steps=1)
    sd = opt.state_dict()
    assert (sd["world_size"], sd["rank"]) == (1, 0)
    with pytest.raises(ValueError, match="same world size"):
        opt.load_state_dict({**sd, "world_size": 2})
    swapped = {**sd, "param_groups": [{**sd["param_groups"][0], "kind": "adamw"}] + sd["param_groups"][1:]}
    with pytest.raises(ValueError, match="kind|'muon'"):
        opt.load_state_dict(swapped)


def test_zero2_style_state_in_one_process_is_whole():
    """With one process every rank-share is everything: full-shape state for every parameter."""
    params, opt = mixed_setup()
    run(params, opt, steps=1)
    for p in params[:4]:
        assert opt.state[p]["momentum_buffer"].shape == p.shape
    for p in params[4:]:
        assert opt.state[p]["exp_avg"].numel() == p.numel() and opt.state[p]["step"] == 1


def test_params_without_grad_are_left_alone():
    params, opt = mixed_setup()
    grads_for(params, 0)
    params[0].grad = None
    params[5].grad = None
    before = [params[0].detach().clone(), params[5].detach().clone()]
    opt.step()
    assert torch.equal(before[0], params[0]) and torch.equal(before[1], params[5])
    assert params[0] not in opt.state and params[5] not in opt.state


@pytest.mark.parametrize("group", [{"lr": 0.1}, {"kind": "sgd"}, {"kind": "adamw", "beta1": 0.9},
                                   {"kind": "muon", "momentun": 0.9}])
def test_bad_param_groups_are_bugs(group):
    with pytest.raises(AssertionError):
        MuonAdamW([{"params": [torch.nn.Parameter(torch.zeros(2, 2))], **group}])


def test_muon_takes_matrices_only():
    with pytest.raises(AssertionError):
        MuonAdamW([{"kind": "muon", "params": [torch.nn.Parameter(torch.zeros(5))]}])


def reference_muon(p, grads, lr, momentum, wd, beta2, cautious, polar=True):
    """Muon with NorMuon and cautious decay, written out in float64 from their definitions."""
    p, buf = p.double().clone(), torch.zeros_like(p, dtype=torch.float64)
    v = torch.zeros(p.size(0), 1, dtype=torch.float64)
    m, n = p.shape
    for g in grads:
        buf = momentum * buf + (1 - momentum) * g.double()
        u = reference_orthogonalise((1 - momentum) * g.double() + momentum * buf, polar=polar)  # Nesterov
        if beta2:
            v = beta2 * v + (1 - beta2) * (u ** 2).mean(dim=1, keepdim=True)  # each row's mean square
            evened = u / v.sqrt()
            u = evened * torch.linalg.matrix_norm(u) / torch.linalg.matrix_norm(evened)
        u = u * max(1, m / n) ** 0.5
        agree = (u * p >= 0).double() if cautious else 1.0
        p = p - lr * u - lr * wd * agree * p
    return p


@pytest.mark.parametrize("beta2, cautious", [(0.0, True), (0.9, False), (0.9, True)])
def test_normuon_and_cautious_decay_match_reference(beta2, cautious):
    g = torch.Generator().manual_seed(6)
    p = torch.nn.Parameter(torch.randn(24, 12, generator=g))
    grads = [torch.randn(24, 12, generator=g) * (1 + torch.arange(24.0)[:, None]) for _ in range(4)]  # uneven rows
    hyper = dict(lr=0.05, momentum=0.9, wd=0.3, beta2=beta2, cautious=cautious)
    expected = reference_muon(p.detach(), grads, **hyper)
    opt = MuonAdamW([{"kind": "muon", "params": [p], "lr": 0.05, "momentum": 0.9, "weight_decay": 0.3,
                      "beta2": beta2, "cautious": cautious, "polar": True}])
    for grad in grads:
        p.grad = grad.clone()
        opt.step()
    assert (p.detach().double() - expected).abs().max() < 1e-5
    assert ("row_moments" in opt.state[p]) == (beta2 > 0)


def test_normuon_evens_the_rows_of_the_update():
    """A tall matrix whose gradient lives mostly in 4 of its 32 rows: the orthogonalised update puts almost
    all of its size into those rows; after a few steps NorMuon gives every row about the same size."""
    g = torch.Generator().manual_seed(7)
    ratio = {}
    for beta2 in (0.0, 0.9):
        p = torch.nn.Parameter(torch.zeros(32, 8))
        opt = MuonAdamW([{"kind": "muon", "params": [p], "lr": 1.0, "momentum": 0.0, "beta2": beta2}])
        for _ in range(5):
            before = p.detach().clone()
            grad = torch.randn(32, 8, generator=g)
            grad[:4] *= 100
            p.grad = grad
            opt.step()
        rows = (p.detach() - before).norm(dim=1)
        ratio[beta2] = (rows[:4].mean() / rows[4:].mean()).item()
    assert ratio[0.9] < 1.5 and ratio[0.0] > 3, ratio


def test_cautious_decay_leaves_weights_the_update_grows():
    """One step with cautious decay against one without decay: entries where the update pushes the weight
    away from zero are not decayed at all, the others are decayed by exactly lr * wd * p."""
    g = torch.Generator().manual_seed(8)
    start, grad = torch.randn(8, 8, generator=g), torch.randn(8, 8, generator=g)
    ends = {}
    for wd in (0.0, 0.5):
        p = torch.nn.Parameter(start.clone())
        p.grad = grad.clone()
        MuonAdamW([{"kind": "muon", "params": [p], "lr": 0.1, "momentum": 0.0, "weight_decay": wd,
                    "cautious": True}]).step()
        ends[wd] = p.detach()
    u = (start - ends[0.0]) / 0.1  # the update alone
    agree = u * start >= 0
    assert 10 < agree.sum() < 54  # both cases occur
    assert torch.equal(ends[0.5][~agree], ends[0.0][~agree])
    assert torch.allclose(ends[0.5][agree], ends[0.0][agree] - 0.1 * 0.5 * start[agree], atol=1e-6)
