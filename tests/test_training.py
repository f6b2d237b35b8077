"""nanochat/training.py: schedules, batch arithmetic and the depth dial's derived hyperparameters (pure functions)."""

import pytest

from nanochat.common import BadInput
from nanochat.training import (
    base_schedule,
    grad_accum_steps,
    horizon_tokens,
    lr_multiplier,
    muon_momentum,
    muon_weight_decay,
    optimal_batch_tokens,
)


def test_grad_accum():
    assert grad_accum_steps(524288, 32, 2048, 8) == 1
    assert grad_accum_steps(524288, 16, 2048, 8) == 2
    assert grad_accum_steps(4096, 16, 256, 1) == 1
    with pytest.raises(BadInput) as e:
        grad_accum_steps(5000, 16, 256, 1)
    msg = str(e.value)
    assert "--total-batch-size=5000" in msg and "--device-batch-size=16" in msg and "4096" in msg


def test_lr_schedule_shape():
    assert lr_multiplier(0.0) == 1.0 and lr_multiplier(0.8) == 1.0
    assert lr_multiplier(0.9) == pytest.approx(0.5)
    assert lr_multiplier(1.0) == pytest.approx(0.0)
    assert lr_multiplier(1.0, final_lr_frac=0.1) == pytest.approx(0.1)
    assert lr_multiplier(0.05, warmup_ratio=0.1) == pytest.approx(0.5, abs=1e-6)
    values = [lr_multiplier(i / 100, 0.1, 0.3) for i in range(101)]
    assert max(values) == 1.0 and values[-1] == pytest.approx(0.0)


def test_muon_momentum_ramp():
    assert muon_momentum(0) == pytest.approx(0.85)
    assert muon_momentum(150) == pytest.approx(0.90)
    assert muon_momentum(300) == muon_momentum(10_000) == pytest.approx(0.95)


def test_derived_horizon_and_batch():
    assert horizon_tokens(1_000_000) == 10_500_000 and horizon_tokens(1_000_000, ratio=8) == 8_000_000
    # a GPT-2-grade run (~560M params, ~11B tokens) lands on the classic 2^19-token batch
    assert optimal_batch_tokens(6 * 560e6 * 11.2e9) == 2 ** 19
    # smaller runs want smaller batches, and the result is always a power of two
    small = optimal_batch_tokens(6 * 5e6 * 1e8)
    assert small < 2 ** 19 and small & (small - 1) == 0


def test_base_schedule():
    # derived: the optimal batch (2^19 here) in whole micro-batches, then the horizon in such batches
    assert base_schedule(6 * 560e6, 11_200_000_000, -1, 32, 2048, 8) == (2 ** 19, 1, 11_200_000_000 // 2 ** 19)
    assert base_schedule(6 * 560e6, 11_200_000_000, -1, 24, 2048, 8) == (3 * 2 ** 17, 1, 28_483)   # 24-row micro
    # a micro-batch bigger than the derived batch: one micro-batch a step; flags given win
    assert base_schedule(6 * 5e6, 10 ** 8, -1, 32, 2048, 8)[:2] == (2 ** 19, 1)
    assert base_schedule(6 * 5e6, 10 ** 8, 8192, 16, 256, 1, num_iterations=7) == (8192, 2, 7)


@pytest.mark.parametrize("steps, schedule", [(300, (0.0, 0.2, 0.0)), (5000, (0.05, 0.65, 0.05)), (40, (0.0, 1.0, 0.0))])
def test_weight_decay_adds_up_to_the_decay_per_run(steps, schedule):
    """Summed over the run's real steps, lr_t * weight decay is the asked-for total, whatever the schedule."""
    lr = 0.02
    wd = muon_weight_decay(4.0, lr, steps, *schedule)
    total = sum(lr * lr_multiplier(s / steps, *schedule) * wd for s in range(steps))
    assert total == pytest.approx(4.0, rel=1e-9 if steps <= 1000 else 1e-3)   # exact up to 1000 steps
    # twice the horizon or twice the lr: half the decay per step
    assert muon_weight_decay(4.0, lr, 2 * steps, *schedule) == pytest.approx(wd / 2, rel=0.02)
    assert muon_weight_decay(4.0, 2 * lr, steps, *schedule) == pytest.approx(wd / 2)
    assert muon_weight_decay(0.0, lr, steps, *schedule) == 0.0


def test_fit_batch_halves_to_a_divisor_until_it_fits(monkeypatch, capsys):
    import types

    import pytest
    import torch

    from nanochat.training import fit_batch
    cuda = types.SimpleNamespace(device_type="cuda", device="cpu")   # fit_batch reads only these two
    tried = []

    def probe(b):
        tried.append(b)
        if b > 5:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated by the test)")

    assert fit_batch(probe, 32, cuda) == 4
    assert tried == [32, 16, 8, 4]
    assert "--device-batch-size 32 does not fit in GPU memory: using 4" in capsys.readouterr().out
    assert fit_batch(probe, 3, cuda) == 3
    assert fit_batch(probe, 12, cuda) == 3   # 12 -> 6 -> 3: always a divisor, so a total batch stays whole
    assert fit_batch(probe, 7, cuda) == 1
    with pytest.raises(torch.cuda.OutOfMemoryError):
        fit_batch(lambda b: probe(b + 5), 8, cuda)   # not even one row fits
    with pytest.raises(ValueError):   # only out-of-memory makes it try smaller
        fit_batch(lambda b: int("not an OOM"), 8, cuda)

    # off the GPU it does nothing, unless NANOCHAT_SIMULATE_GPU_ROWS simulates a GPU that holds so many rows
    cpu = types.SimpleNamespace(device_type="cpu", device="cpu")
    tried.clear()
    assert fit_batch(probe, 32, cpu) == 32 and tried == []
    monkeypatch.setenv("NANOCHAT_SIMULATE_GPU_ROWS", "2")
    assert fit_batch(probe, 32, cpu) == 2 and tried == [2]   # the probe runs only on batches within the cap
    assert fit_batch(probe, 32, cuda) == 2


def test_probe_step_runs_a_real_step():
    import torch

    from nanochat.common import compute_init
    from nanochat.gpt import GPT, GPTConfig
    from nanochat.training import probe_step
    model = GPT(GPTConfig(sequence_len=16, vocab_size=64, n_layer=1, n_head=2, n_kv_head=2, n_embd=32))
    model.init_weights()
    compute = compute_init("cpu")
    state = torch.get_rng_state()
    probe_step(model, 3, 16, compute)
    assert all(p.grad is None for p in model.parameters())   # it leaves no gradients behind
    assert torch.equal(state, torch.get_rng_state())          # nor a different RNG state


def test_arch_overrides_are_typed_and_checked():
    from nanochat.gpt import RECIPE
    from nanochat.training import MUON_RECIPE
    from scripts.base_train import parse_overrides
    assert parse_overrides("", RECIPE, "--arch") == {}
    assert parse_overrides("smear=0,window_pattern=SSL,qk_scale=1.25,short_window=64", RECIPE, "--arch") == \
        {"smear": False, "window_pattern": "SSL", "qk_scale": 1.25, "short_window": 64}
    assert parse_overrides("polar=1,beta2=0.9", MUON_RECIPE, "--muon") == {"polar": True, "beta2": 0.9}
    for bad in ("smear", "colour=red", "qk_scale=big"):
        with pytest.raises(ValueError, match=bad.split("=")[0]):
            parse_overrides(bad, RECIPE, "--arch")


def test_fp8_conversion_and_bf16_evaluation():
    """torchao's float8 training swaps the blocks' big Linears (not lm_head, not the gates); inside
    evaluating() the model computes exactly what it did before conversion, and the fp8 path is back after."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchao")
    from nanochat.gpt import GPT, GPTConfig
    from nanochat.training import convert_to_fp8, evaluating
    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=32, vocab_size=320, n_layer=2, n_head=2, n_kv_head=2, n_embd=128,
                          value_embeds=True, smear=True))
    with torch.no_grad():
        for block in model.blocks:  # open the zero-initialised projections so every matmul matters
            block.attn.c_proj.weight.normal_(std=0.05)
            block.mlp.c_proj.weight.normal_(std=0.05)
    idx = torch.randint(0, 320, (2, 32), generator=torch.Generator().manual_seed(1))
    keys = set(model.state_dict())
    before = model(idx)
    converted = convert_to_fp8(model)
    assert sorted(converted) == sorted(f"blocks.{i}.{n}" for i in range(2)
                                       for n in ("attn.c_q", "attn.c_k", "attn.c_v", "attn.c_proj", "mlp.c_fc",
                                                 "mlp.c_proj"))
    assert set(model.state_dict()) == keys  # checkpoints do not change
    with evaluating(model):
        assert torch.equal(model(idx), before)
    fp8 = model(idx)
    assert not torch.equal(fp8, before) and (fp8 - before).abs().max() < 0.5
