"""Tests for nanochat/gpt.py: shapes from depth, the forward pass against a slow float64 reference,
the KV cache against the full forward, GQA, softcap, parameter groups, and a tiny training run."""

import json
import math
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

from nanochat.gpt import (
    GPT,
    GPTConfig,
    KVCache,
    Linear,
    apply_rotary,
    config_from_depth,
    find_flash_attn3,
    rotary_tables,
)

TINY = GPTConfig(sequence_len=16, vocab_size=67, n_layer=2, n_head=4, n_kv_head=4, n_embd=32)
TINY_GQA = GPTConfig(sequence_len=16, vocab_size=67, n_layer=2, n_head=4, n_kv_head=2, n_embd=32)
# Every optional piece on: layers 0-1 see a window of 5 keys, 2-3 the full context; value embeddings on
# layers 1 and 3; backout takes the residual after block 1.
TINY_ALL = GPTConfig(sequence_len=16, vocab_size=67, n_layer=4, n_head=4, n_kv_head=2, n_embd=32, qk_scale=1.3,
                     window_pattern="SSL", short_window=5, value_embeds=True, layer_scalars=True, smear=True,
                     backout=True)


def randomized(model, seed=0):
    """Every weight random and non-zero, std 1/sqrt(fan_in). init_weights() zeroes the output
    projections, which would make attention invisible in the output and hide its bugs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (p.size(-1) ** -0.5 if p.dim() else 0.5))
    return model


def assert_close(actual, expected, atol=1e-6):
    """Same shape and max abs difference <= atol. (torch.testing.assert_close would do, but its
    first call imports torch.distributed.tensor, several seconds on a small machine.)"""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    err = (actual.double() - expected.double()).abs().max().item()
    assert err <= atol, f"max abs difference {err:.3g} > {atol:.3g}"


def tokens(B, T, vocab=67, seed=0):
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


# -----------------------------------------------------------------------------
# Config


@pytest.mark.parametrize("depth, aspect, head_dim, width, heads", [
    (4, 64, 64, 256, 4),      # the tiny CPU model
    (20, 64, 128, 1280, 10),  # d20: 20 * 64 = 1280 is already 10 heads of 128
    (3, 64, 128, 256, 2),     # 192 rounds UP to 256 = 2 heads
    (1, 64, 128, 128, 1),     # 64 rounds up to one whole head
    (26, 64, 128, 1664, 13),
])
def test_config_from_depth(depth, aspect, head_dim, width, heads):
    cfg = config_from_depth(depth, vocab_size=1000, sequence_len=256, aspect_ratio=aspect, head_dim=head_dim)
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_kv_head, cfg.head_dim) == (depth, width, heads, heads, head_dim)
    assert (cfg.vocab_size, cfg.sequence_len) == (1000, 256)


@pytest.mark.parametrize("bad", [dict(depth=0), dict(depth=2.5), dict(depth=4, head_dim=63)])
def test_config_from_depth_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        config_from_depth(vocab_size=100, sequence_len=16, **bad)


def test_config_round_trips_through_json():
    cfg = GPTConfig(sequence_len=64, vocab_size=321, n_layer=3, n_head=4, n_kv_head=2, n_embd=64, softcap=10.0)
    assert GPTConfig(**json.loads(json.dumps(asdict(cfg)))) == cfg


@pytest.mark.parametrize("bad", [
    dict(n_embd=30),       # 30 not divisible by 4 heads
    dict(n_kv_head=3),     # 3 does not divide 4
    dict(n_embd=12),       # head_dim 3 cannot be rotated in pairs
    dict(n_layer=0), dict(n_layer=True), dict(softcap=-1.0), dict(short_window=1.5), dict(short_window=True),
    dict(window_pattern="SX"), dict(window_pattern=""),
])
def test_config_rejects_bad_shapes(bad):
    """A config comes from flags or a checkpoint file: a bad one is refused with the config in the message."""
    with pytest.raises(ValueError, match=f"{next(iter(bad))}="):
        GPTConfig(**{**asdict(TINY), **bad})


# -----------------------------------------------------------------------------
# Forward pass vs a slow reference


def reference_logits(model, idx):
    """Obviously-correct float64 forward: loops over rows, heads and tokens, explicit causal (and
    windowed) softmax, RMSNorm by hand, rotary as multiplication by e^(i * angle) of the complex numbers
    x_i + i x_(i+D/2), and every optional piece written out from its definition."""
    cfg = model.config
    W = {name: p.detach().double() for name, p in model.named_parameters()}
    T, D, H = idx.size(1), cfg.head_dim, cfg.n_head
    sig = torch.sigmoid
    group = cfg.n_head // cfg.n_kv_head  # query head h reads key/value head h // group
    eps = torch.finfo(torch.float32).eps  # what F.rms_norm uses on fp32 inputs

    def rms(x):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)

    freqs = cfg.rope_base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    angles = torch.outer(torch.arange(T, dtype=torch.float64), freqs)  # (T, D/2)
    turn = torch.polar(torch.ones_like(angles), angles)

    def rotate(x):  # (T, D)
        z = torch.complex(x[:, :D // 2], x[:, D // 2:]) * turn
        return torch.cat([z.real, z.imag], dim=-1)

    short = cfg.short_window or 128
    pattern = [cfg.window_pattern[i % len(cfg.window_pattern)] for i in range(cfg.n_layer - 1)] + ["L"]
    rows = []
    for b in range(idx.size(0)):
        x = rms(W["wte.weight"][idx[b]])  # (T, C)
        if cfg.smear:
            e = x.clone()
            for t in range(1, T):
                x[t] = e[t] + W["smear_lambda"] * sig(e[t, :32] @ W["smear_gate.weight"][0]) * e[t - 1]
        x0, mid = x, None
        for layer in range(cfg.n_layer):
            w = {k.split(f"blocks.{layer}.", 1)[1]: v for k, v in W.items() if k.startswith(f"blocks.{layer}.")}
            if cfg.layer_scalars:
                x = W["resid_lambdas"][layer] * x + W["x0_lambdas"][layer] * x0
            h = rms(x)
            q, k, v = h @ w["attn.c_q.weight"].T, h @ w["attn.c_k.weight"].T, h @ w["attn.c_v.weight"].T
            if f"value_embeds.{layer}.weight" in W:
                gate = 2 * sig(h[:, :32] @ w["attn.ve_gate.weight"].T)  # (T, Hkv)
                v = v + gate.repeat_interleave(D, dim=1) * W[f"value_embeds.{layer}.weight"][idx[b]]
            heads = []
            for hq in range(H):
                hk = hq // group
                qh = rms(rotate(q[:, hq * D:(hq + 1) * D]))
                kh = rms(rotate(k[:, hk * D:(hk + 1) * D]))
                out = torch.zeros(T, D, dtype=torch.float64)
                for i in range(T):  # query i sees keys max(0, i - window + 1) .. i
                    first = max(0, i - short + 1) if pattern[layer] == "S" else 0
                    scores = cfg.qk_scale * (kh[first:i + 1] @ qh[i]) / math.sqrt(D)
                    out[i] = torch.softmax(scores, dim=0) @ v[first:i + 1, hk * D:(hk + 1) * D]
                heads.append(out)
            x = x + torch.cat(heads, dim=-1) @ w["attn.c_proj.weight"].T
            x = x + torch.relu(rms(x) @ w["mlp.c_fc.weight"].T) ** 2 @ w["mlp.c_proj.weight"].T
            if layer == max(cfg.n_layer // 2, 1) - 1:
                mid = x
        if cfg.backout:
            x = x - W["backout_lambda"] * mid
        logits = rms(x) @ W["lm_head.weight"].T
        rows.append(cfg.softcap * torch.tanh(logits / cfg.softcap))
    return torch.stack(rows)


@pytest.mark.parametrize("cfg", [TINY, TINY_GQA, TINY_ALL], ids=["mha", "gqa", "all-features"])
def test_forward_matches_slow_reference(cfg):
    model = randomized(GPT(cfg))
    idx = tokens(2, 12)
    logits = model(idx)
    assert logits.shape == (2, 12, cfg.vocab_size) and logits.dtype == torch.float32
    assert_close(logits, reference_logits(model, idx), atol=2e-5)


def test_rotary_is_relative_and_keeps_norms():
    cos, sin = rotary_tables(64, 16, 10000.0)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 1, 1, 1, 16, dtype=torch.float64, generator=g)

    def at(x, t):
        return apply_rotary(x, cos[t].double(), sin[t].double())

    # q at position i and k at position j interact only through i - j
    assert torch.allclose((at(q, 9) * at(k, 4)).sum(), (at(q, 30) * at(k, 25)).sum(), atol=1e-5)
    assert not torch.allclose((at(q, 9) * at(k, 4)).sum(), (at(q, 9) * at(k, 5)).sum(), atol=1e-3)
    assert torch.allclose(at(q, 37).norm(), q.norm())


def test_loss_at_init_is_log_vocab():
    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=32, vocab_size=500, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    loss = model(tokens(4, 32, vocab=500), tokens(4, 32, vocab=500, seed=1))
    # lm_head std 0.001 makes every logit ~0.01: the first prediction is near uniform
    assert abs(loss.item() - math.log(500)) < 0.01


def test_ignore_index_and_loss_reduction():
    model = randomized(GPT(TINY))
    idx, targets = tokens(3, 10), tokens(3, 10, seed=1)
    targets[0, :4] = -1
    targets[2, 7:] = -1
    logprobs = F.log_softmax(model(idx), dim=-1)
    keep = targets != -1
    per_position = -logprobs.gather(-1, targets.clamp(min=0)[..., None])[..., 0] * keep  # (B, T), 0 when ignored
    assert_close(model(idx, targets), per_position.sum() / keep.sum())
    none = model(idx, targets, loss_reduction="none")
    assert none.shape == (30,)
    assert_close(none, per_position.view(-1))
    with pytest.raises(ValueError):   # torch's own check
        model(idx, targets, loss_reduction="avg")


def test_forward_asserts_its_input():
    model = GPT(TINY)
    with pytest.raises(AssertionError):
        model(torch.zeros(2, 3))
    with pytest.raises(AssertionError):   # longer than the rotary table
        model(torch.zeros(1, TINY.sequence_len * 10 + 1, dtype=torch.long))


def test_softcap_bounds_logits():
    model = randomized(GPT(TINY))
    with torch.no_grad():
        model.lm_head.weight.mul_(100)  # raw logits in the hundreds
    logits = model(tokens(2, 8))
    assert logits.abs().max() <= TINY.softcap  # (tanh rounds to exactly 1 in fp32 far out)
    assert logits.abs().max() > 0.99 * TINY.softcap  # saturated, not merely small
    uncapped = GPT(GPTConfig(**{**asdict(TINY), "softcap": 0.0}))
    uncapped.load_state_dict(model.state_dict())
    assert uncapped(tokens(2, 8)).abs().max() > 10 * TINY.softcap


# -----------------------------------------------------------------------------
# KV cache vs the full forward


@pytest.mark.parametrize("cfg", [TINY_GQA, TINY_ALL], ids=["gqa", "all-features"])
def test_kv_cache_chunks_match_full_forward(cfg):
    model = randomized(GPT(cfg))
    idx = tokens(2, 16)
    full = model(idx)
    cache = model.new_kv_cache(batch_size=2, max_len=16)
    pieces, start = [], 0
    for size in (5, 1, 3, 1, 1, 4, 1):  # a prefill, then single tokens and short chunks
        pieces.append(model(idx[:, start:start + size], kv_cache=cache))
        start += size
    assert cache.lengths.tolist() == [16, 16]
    assert_close(torch.cat(pieces, dim=1), full, atol=1e-5)


@pytest.mark.parametrize("cfg", [TINY, TINY_ALL], ids=["mha", "all-features"])
def test_kv_cache_rows_at_different_positions(cfg):
    """A server-style batch: prompts of different lengths prefilled one by one, copied into slots of a
    batch cache with row_copy_, then decoded together; a finished row is cleared and refilled. With
    windows of 5 keys, smear and value embeddings, every row must see its own window and last token."""
    model = randomized(GPT(cfg))
    prompts = [tokens(1, n, seed=10 + n)[0] for n in (3, 7, 5)]
    batch = model.new_kv_cache(batch_size=3, max_len=24)
    seqs = []
    for row, prompt in enumerate(prompts):
        single = model.new_kv_cache(batch_size=1, max_len=12)
        prefill = model(prompt[None], kv_cache=single)
        assert_close(prefill, model(prompt[None]), atol=1e-5)
        batch.row_copy_(row, single, 0)
        seqs.append(prompt)
    assert batch.lengths.tolist() == [3, 7, 5]

    def decode(step_tokens):  # step_tokens (3, T): append to every row, compare with full forwards
        out = model(step_tokens, kv_cache=batch)
        for b in range(3):
            seqs[b] = torch.cat([seqs[b], step_tokens[b]])
            expected = model(seqs[b][None])[0, -step_tokens.size(1):]
            assert_close(out[b], expected, atol=1e-5)

    for step in range(4):
        decode(tokens(3, 1, seed=100 + step))
    decode(tokens(3, 2, seed=200))  # several new tokens per row, rows still at different positions
    assert batch.lengths.tolist() == [9, 13, 11]
    # Row 1 finishes; a shorter request takes its slot. Its old keys are still in memory, past the new
    # length, and must stay invisible.
    batch.clear_row_(1)
    assert batch.lengths.tolist() == [9, 0, 11]
    single = model.new_kv_cache(batch_size=1, max_len=24)
    seqs[1] = tokens(1, 2, seed=300)[0]
    model(seqs[1][None], kv_cache=single)
    batch.row_copy_(1, single, 0)
    for step in range(3):
        decode(tokens(3, 1, seed=400 + step))


def test_cpu_decoding_linear_follows_weight_updates():
    """Without autograd a CPU Linear multiplies by a cached copy of W^T: it must equal F.linear, and see every
    update of the weight (an optimizer step between sampling rounds, as RL does; an in-place edit)."""
    torch.manual_seed(0)
    lin = Linear(16, 8)
    x = torch.randn(3, 1, 16)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    outputs = []
    for _ in range(2):
        with torch.inference_mode():
            outputs.append(lin(x))
            assert_close(outputs[-1], F.linear(x, lin.weight), atol=1e-5)
        lin(x).square().sum().backward()  # with autograd: F.linear itself
        opt.step()
        opt.zero_grad()
    assert (outputs[1] - outputs[0]).abs().max() > 0.1  # the step moved the outputs: a stale copy would show
    with torch.no_grad():
        lin.weight[0] = 1.0
        assert_close(lin(x), F.linear(x, lin.weight), atol=1e-5)
        assert_close(lin(x)[..., 0], x.sum(-1), atol=1e-5)


def test_kv_cache_errors():
    model = GPT(TINY)
    cache = model.new_kv_cache(batch_size=2, max_len=6)
    model(tokens(2, 5), kv_cache=cache)
    with pytest.raises(AssertionError):   # past max_len: the engine ends a row before that
        model(tokens(2, 2), kv_cache=cache)
    assert cache.lengths.tolist() == [5, 5]  # a refused step changes nothing
    with pytest.raises(AssertionError):
        model(tokens(3, 1), kv_cache=cache)  # batch of 3 into a cache of 2 rows
    other = KVCache(1, num_layers=3, num_kv_heads=4, head_dim=8, max_len=6)
    with pytest.raises(AssertionError):
        cache.row_copy_(0, other, 0)


def test_kv_cache_is_in_the_compute_dtype():
    """On CPU the cache takes the weights' dtype; a bf16 cache (a GPU's default) under an fp32 forward still
    decodes like the full forward, to bf16 precision; with no GPU the flash-attention path stays off."""
    model = randomized(GPT(TINY))
    assert model.new_kv_cache(1, 4).k.dtype == torch.float32 and find_flash_attn3() is None
    idx = tokens(2, 10)
    cache = model.new_kv_cache(2, 10, dtype=torch.bfloat16)
    pieces = [model(idx[:, t:t + 5], kv_cache=cache) for t in (0, 5)]
    assert cache.k.dtype == torch.bfloat16
    assert_close(torch.cat(pieces, dim=1), model(idx), atol=0.05)


def test_gqa_equals_mha_with_repeated_kv_heads():
    """GQA with 2 key/value heads for 4 query heads must equal plain attention whose k/v weights
    are the GQA ones repeated per query head (explicit repeat reference)."""
    gqa = randomized(GPT(TINY_GQA))
    mha = GPT(TINY)
    state = gqa.state_dict()
    group, D = TINY.n_head // TINY_GQA.n_kv_head, TINY.head_dim
    for name, w in state.items():
        if name.endswith(("attn.c_k.weight", "attn.c_v.weight")):  # (Hkv * D, C) -> (H * D, C)
            state[name] = w.view(TINY_GQA.n_kv_head, D, -1).repeat_interleave(group, dim=0).reshape(-1, w.size(1))
    mha.load_state_dict(state)
    idx = tokens(2, 12)
    assert_close(gqa(idx), mha(idx), atol=1e-5)
    caches = [gqa.new_kv_cache(2, 12), mha.new_kv_cache(2, 12)]
    assert caches[0].k.shape[3] == 2 and caches[1].k.shape[3] == 4  # the point of GQA: a smaller cache
    for t in range(0, 12, 4):
        a, b = gqa(idx[:, t:t + 4], kv_cache=caches[0]), mha(idx[:, t:t + 4], kv_cache=caches[1])
        assert_close(a, b, atol=1e-5)


# -----------------------------------------------------------------------------
# Bookkeeping: parameters, FLOPs, init


@pytest.mark.parametrize("cfg", [TINY, TINY_GQA, TINY_ALL], ids=["mha", "gqa", "all-features"])
def test_param_groups_cover_every_param_once(cfg):
    model = GPT(cfg)
    groups = model.param_groups()
    assert set(groups) == {"matrix", "embedding", "value_embedding", "unembedding", "gate", "scalar"}
    grouped = [id(p) for ps in groups.values() for p in ps]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {id(p) for p in model.parameters()}
    assert all(p.dim() == 2 for p in groups["matrix"]) and len(groups["matrix"]) == 6 * cfg.n_layer
    assert groups["embedding"] == [model.wte.weight] and groups["unembedding"] == [model.lm_head.weight]


def test_num_params_and_flops_formula():
    cfg = TINY_GQA
    C, V, L, D, H, Hkv, T = cfg.n_embd, cfg.vocab_size, cfg.n_layer, cfg.head_dim, cfg.n_head, cfg.n_kv_head, 16
    per_layer = C * H * D + 2 * C * Hkv * D + C * C + 2 * 4 * C * C  # q, k+v, attn proj, MLP in+out
    model = GPT(cfg)
    assert model.num_params() == 2 * V * C + L * per_layer
    assert model.estimate_flops() == 6 * (V * C + L * per_layer) + 12 * L * H * D * T
    # Windows: layers 0-1 attend over 5 keys; gates are matmuls too; value embeddings are lookups.
    model = GPT(TINY_ALL)
    C, V, L, D, H, Hkv = TINY_ALL.n_embd, TINY_ALL.vocab_size, 4, TINY_ALL.head_dim, 4, 2
    gates = 2 * 32 * Hkv + 32  # two value-embedding gates and the smear gate
    assert TINY_ALL.windows == [5, 5, None, None]
    assert model.num_scaling_params() == V * C + L * per_layer + gates
    assert model.num_params() == model.num_scaling_params() + V * C + 2 * V * Hkv * D + 2 * L + 2
    assert model.estimate_flops() == 6 * model.num_scaling_params() + 12 * H * D * (5 + 5 + 16 + 16)


def test_init_is_deterministic_and_refills_after_to_empty():
    torch.manual_seed(3)
    a, b = GPT(TINY), GPT(TINY)
    b.to_empty(device="cpu")  # uninitialised memory, buffers included, as after building on "meta"
    torch.manual_seed(7)
    a.init_weights()
    torch.manual_seed(7)
    b.init_weights()
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert torch.equal(a.cos, b.cos) and torch.equal(a.sin, b.sin)
    assert a.cos.size(0) == 10 * TINY.sequence_len  # rotary headroom for inference past the training context
    assert not any(k in a.state_dict() for k in ("cos", "sin"))  # derived, not saved
    assert torch.count_nonzero(a.blocks[0].attn.c_proj.weight) == 0  # residual branches start closed


def test_bf16_autocast_runs_close_to_fp32():
    model = randomized(GPT(TINY_GQA))
    idx, targets = tokens(2, 16), tokens(2, 16, seed=1)
    loss32 = model(idx, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss16 = model(idx, targets)
        logits = model(idx[:, :4], kv_cache=model.new_kv_cache(2, 8))
    assert logits.dtype == torch.float32
    loss16.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())
    assert abs(loss16.item() - loss32.item()) < 0.05


def test_a_few_sgd_steps_reduce_the_loss():
    # Plain SGD by hand: constructing any torch.optim optimizer imports torch._dynamo, slow here.
    torch.manual_seed(0)
    model = GPT(TINY)
    idx, targets = tokens(4, 16), tokens(4, 16, seed=1)
    losses = []
    for _ in range(20):
        loss = model(idx, targets)
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.3 * p.grad
                p.grad = None
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.mark.slow  # the first use of the meta device costs ~10 s of imports here
def test_meta_device_build_then_init():
    with torch.device("meta"):
        model = GPT(TINY)
    model.to_empty(device="cpu")
    torch.manual_seed(7)
    model.init_weights()
    reference = GPT(TINY)
    torch.manual_seed(7)
    reference.init_weights()
    for (name, p), q in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(p, q), name
    assert torch.equal(model.cos, reference.cos)


def test_optional_pieces_start_as_the_identity():
    """Freshly initialised, value embeddings, residual scalars, smear and backout change nothing: the
    model computes exactly what the plain model with the same shared weights computes."""
    features = dict(value_embeds=True, layer_scalars=True, smear=True, backout=True)
    plain_cfg = GPTConfig(**{**asdict(TINY_ALL), **{k: False for k in features}})
    torch.manual_seed(0)
    full = GPT(GPTConfig(**{**asdict(plain_cfg), **features}))
    plain = GPT(plain_cfg)
    missing, unexpected = plain.load_state_dict(full.state_dict(), strict=False)
    assert not missing and unexpected  # every plain weight came from the full model; the extras are the pieces
    with torch.no_grad():  # open the residual branches, which init_weights closes, so blocks matter
        for a, b in zip(full.blocks, plain.blocks):
            a.mlp.c_proj.weight.normal_(std=0.1)
            b.mlp.c_proj.weight.copy_(a.mlp.c_proj.weight)
    idx = tokens(2, 12)
    assert torch.equal(full(idx), plain(idx))
