"""Tests for nanochat/optim.py in one process: AdamW vs torch.optim.AdamW, Muon vs an SVD-based
reference, determinism, lr handling and state_dict resume. The multi-process path is in
test_distributed_optim.py."""

import pytest
import torch

from nanochat.optim import MuonAdamW, zeropower_via_newtonschulz

NS_COEFFS = (3.4445, -4.7750, 2.0315)  # the quintic's coefficients (Keller Jordan's Muon write-up)


def ns_poly(s, steps=5):
    """The scalar map Newton-Schulz applies to every (normalised) singular value, `steps` times."""
    a, b, c = NS_COEFFS
    for _ in range(steps):
        s = a * s + b * s ** 3 + c * s ** 5
    return s


def reference_orthogonalise(G, steps=5):
    """Slow reference in float64: Newton-Schulz keeps the singular vectors and maps the singular
    values s -> f(f(...f(s / |G|_F))), so it equals U diag(f^steps(S / |G|_F)) V^T."""
    G = G.double()
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    s = ns_poly(S / (torch.linalg.matrix_norm(G)[..., None] + 1e-7), steps)
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


@pytest.mark.parametrize("shape", [(16, 48), (48, 16), (3, 20, 30)])
def test_newton_schulz_matches_svd_reference(shape):
    G = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    out = zeropower_via_newtonschulz(G, steps=5)
    assert out.shape == G.shape and out.dtype == G.dtype
    assert (out.double() - reference_orthogonalise(G)).abs().max() < 1e-4


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


@pytest.mark.parametrize("group, word", [
    ({"lr": 0.1}, "kind"),
    ({"kind": "sgd"}, "kind"),
    ({"kind": "adamw", "beta1": 0.9}, "beta1"),
    ({"kind": "muon", "momentun": 0.9}, "momentun"),
])
def test_bad_param_groups_are_rejected(group, word):
    with pytest.raises(ValueError, match=word):
        MuonAdamW([{"params": [torch.nn.Parameter(torch.zeros(2, 2))], **group}])


def test_muon_rejects_non_matrices():
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        MuonAdamW([{"kind": "muon", "params": [torch.nn.Parameter(torch.zeros(5))]}])
