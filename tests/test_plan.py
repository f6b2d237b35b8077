"""nanochat/plan.py: the plan of a run on meta-device models (no real tensors), its memory model against a measured
step on CPU, fitting a batch to a small GPU, and the --gpus parser."""

import json
import os
import subprocess
import sys

import pytest

from nanochat import plan
from nanochat.common import BadInput
from nanochat.training import horizon_tokens, optimal_batch_tokens

# Runs in a fresh process: peak RSS (ru_maxrss) before anything is built, then after; prints both as JSON.
MEASURED = """
import json, resource, sys
import torch
from nanochat import plan, training
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # Linux: KiB
before = rss()
{body}
print(json.dumps({{"before": before, "after": rss(), "result": result}}))
"""


def run_measured(body):
    out = subprocess.run([sys.executable, "-c", MEASURED.format(body=body)], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


FULL_PLAN = """
hw = plan.parse_gpus("8xH100")
model = plan.meta_model(24, 32768, 2048)
tokens = training.horizon_tokens(model.num_scaling_params(), 8)
batch = training.optimal_batch_tokens(model.estimate_flops() * tokens)
rows = [plan.plan_row("base_train", model, hw, 32, batch, tokens // batch, compiled=True),
        plan.plan_row("chat_eval", model, hw, 8, 8 * 2048 * 8, 100, train=False)]
result = plan.make_plan(rows, hw)
print(plan.format_plan(result))
"""


def test_full_profile_plan_allocates_no_real_tensors():
    m = run_measured(FULL_PLAN)
    base = m["result"]["stages"][0]
    assert (base["depth"], base["n_embd"], base["seq_len"]) == (24, 1536, 2048) and base["params"] > 1e9
    # a real depth-24 model would take > 5 GB for its fp32 weights alone; the plan's process grows by ~0.1 GB
    # (measured 0.16 GB, on top of 0.56-1.2 GB for Python and torch, which varies with the machine's libraries)
    assert m["after"] - m["before"] < 0.5e9 and m["after"] < 2.5e9


TINY_STEP = """
torch.manual_seed(0)
x = torch.randint(0, 4096, (16, 257))
model = plan.meta_model(4, 4096, 256, aspect_ratio=64, head_dim=64).to_empty(device="cpu")
model.init_weights()
optimizer = training.build_optimizer(model)
for _ in range(2):   # the second step has the optimizer's state
    model(x[:, :-1], x[:, 1:]).backward()
    optimizer.step()
    model.zero_grad(set_to_none=True)
result = plan.memory_estimate(model, 16, plan.cpu_hardware())
"""


def test_memory_estimate_within_30_percent_of_a_measured_tiny_step():
    # the tiny profile's base_train shape (speedrun.sh): depth 4, width 256, sequence 256, vocab 4096, batch 16,
    # against the process's peak RSS (what Run reports on a CPU): measured 1.68 GB, estimated 1.75 GB (+4%).
    # (base_train itself at this shape reports 1.94 GB: its tokenizer and data loader add ~0.2 GB.)
    m = run_measured(TINY_STEP)
    measured, estimate = m["after"], m["result"]
    assert abs(estimate - measured) / measured < 0.30, (estimate, measured)


def test_plan_rows_and_totals():
    hw = plan.parse_gpus("2xH100")
    model = plan.meta_model(4, 4096, 256)
    train = plan.plan_row("mid_train", model, hw, 8, 8 * 256 * 2 * 4, 10)
    assert (train["accum"], train["tokens"], train["fits"], train["fit_batch"]) == (4, 163840, True, 8)
    assert train["flops"] == model.estimate_flops() * train["tokens"]
    assert train["hours"] == pytest.approx(train["flops"] / (2 * hw.flops * plan.MFU) / 3600)
    assert train["cost"] == pytest.approx(train["hours"] * 2 * 3.00)
    evaluation = plan.plan_row("chat_eval", model, hw, 8, 8 * 256 * 2, 10, train=False)
    assert evaluation["flops"] == pytest.approx(model.estimate_flops() * evaluation["tokens"] / 3)
    assert evaluation["memory"] < train["memory"]
    p = plan.make_plan([train, evaluation], hw)
    assert p["total"]["tokens"] == train["tokens"] + evaluation["tokens"]
    assert p["total"]["cost"] == pytest.approx(train["cost"] + evaluation["cost"])
    assert json.loads(json.dumps(p)) == p
    text = plan.format_plan(p)
    assert "mid_train" in text and "chat_eval" in text and "ESTIMATES" in text
    cpu = plan.make_plan([plan.plan_row("base_train", model, plan.cpu_hardware(), 8, 8 * 256, 3)],
                         plan.cpu_hardware())
    assert cpu["total"]["hours"] is None   # no FLOP/s known for a CPU: no time claimed


def test_a_batch_too_big_for_a_small_gpu_is_flagged_with_the_batch_that_fits():
    hw = plan.parse_gpus("RTX4090")
    model = plan.meta_model(12, 32768, 2048)
    tokens = horizon_tokens(model.num_scaling_params())
    batch = optimal_batch_tokens(model.estimate_flops() * tokens)
    row = plan.plan_row("base_train", model, hw, 32, batch, 100)
    assert not row["fits"] and row["memory"] > hw.memory
    b = row["fit_batch"]
    assert 1 <= b < 32 and 32 % b == 0
    assert plan.memory_estimate(model, b, hw) <= hw.memory < plan.memory_estimate(model, 2 * b, hw)
    assert row["fit_accum"] * b == row["accum"] * 32   # the total batch is kept
    assert f"--device-batch-size={b} would" in plan.format_plan(plan.make_plan([row], hw))
    tiny_gpu = plan.Hardware("toy", 1, memory=1e9, flops=None, hourly=None)
    assert plan.plan_row("base_train", model, tiny_gpu, 32, batch, 1)["fit_batch"] == 0   # not even 1 row


def test_parse_gpus():
    hw = plan.parse_gpus("8xH100")
    assert (hw.name, hw.count, hw.memory, hw.hourly) == ("H100", 8, 80e9, 3.00)
    assert plan.parse_gpus("a100-40gb").memory == 40e9 and plan.parse_gpus("h200").count == 1
    assert plan.parse_gpus("cpu").name == "CPU"
    for bad in ("8xH1000", "0xH100", "eightxH100", "8 x H100", ""):
        with pytest.raises(BadInput) as e:
            plan.parse_gpus(bad)
        assert repr(bad) in str(e.value) and "8xH100" in str(e.value)   # names the value and a valid one


def test_detect_hardware_names_this_machine():
    hw = plan.detect_hardware()
    assert hw.count >= 1 and hw.memory > 0


def test_plan_row_matches_a_real_base_train_run(tmp_path, monkeypatch):
    from nanochat.synthetic import write_embedded_corpus
    from scripts.base_train import main
    from tests.engine_utils import byte_tokenizer
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path))
    write_embedded_corpus(str(tmp_path / "base_data"), num_shards=2, chars_per_shard=20_000)
    tokenizer = byte_tokenizer()
    tokenizer.save(str(tmp_path / "tokenizer"))
    metrics = main(["--depth=2", "--aspect-ratio=32", "--head-dim=32", "--max-seq-len=32", "--device-batch-size=4",
                    "--total-batch-size=128", "--num-iterations=6", "--eval-tokens=256", "--sample-every=-1",
                    "--compile=0", "--device-type=cpu", "--core-every=0"])
    model = plan.meta_model(2, tokenizer.get_vocab_size(), 32, aspect_ratio=32, head_dim=32)
    row = plan.plan_row("base_train", model, plan.cpu_hardware(), 4, 128, 6)
    assert (row["steps"], row["tokens"], row["params"]) == (metrics["step"], metrics["tokens"], metrics["parameters"])
    assert row["flops"] == pytest.approx(metrics["flops_per_token"] * metrics["tokens"])
    assert row["accum"] == 1 and row["fits"]


STAGES = ["base_train", "base_eval", "mid_train", "sft_train", "rl_train", "mid_eval", "sft_eval", "rl_eval"]
# speedrun.sh --plan in a fresh process; the largest RSS among its children (python's scripts.plan among them)
SPEEDRUN_PLAN = """
import resource, subprocess, sys
out = subprocess.run(["bash", "speedrun.sh", *sys.argv[1:]], capture_output=True, text=True)
print(out.stdout, out.stderr, sep="\\n")
print("maxrss", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, "rc", out.returncode)
"""


def speedrun_plan(tmp_path, *argv, **env):
    from tests.dist_utils import REPO_ROOT
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path / "base"), "OMP_NUM_THREADS": "1", **env}
    out = subprocess.run([sys.executable, "-c", SPEEDRUN_PLAN, *argv], cwd=REPO_ROOT, env=env, capture_output=True,
                         text=True, timeout=300).stdout
    *text, last = out.rstrip().splitlines()
    _, rss, _, rc = last.split()
    return "\n".join(text), int(rss), int(rc)


def test_speedrun_plan_of_the_full_profile_prints_every_stage_and_trains_nothing(tmp_path):
    text, rss, rc = speedrun_plan(tmp_path, "--plan", "--gpus", "8xH100", NANOCHAT_PROFILE="full")
    assert rc == 0, text
    assert "plan: 8 x H100" in text and "ESTIMATES" in text and "~: estimated before the data" in text
    for stage in STAGES:
        assert f"\n{stage} " in text, f"{stage} missing from the plan:\n{text}"
    assert " 24   1536 " in text and "total" in text   # the depth-24 model
    assert rss < 1.5e9   # meta-device models: no 5 GB of depth-24 weights (measured 0.84 GB with the stages' imports)
    assert not (tmp_path / "base").exists()   # nothing trained, downloaded or even created


def test_speedrun_plan_of_the_tiny_profile_through_the_environment(tmp_path):
    text, _, rc = speedrun_plan(tmp_path, NANOCHAT_PROFILE="tiny", NANOCHAT_SMOKE="1", NANOCHAT_PLAN="1",
                                NANOCHAT_GPUS="cpu")
    assert rc == 0 and "plan: 1 x CPU" in text and "~" not in text, text   # the tiny profile fixes every step
    assert all(f"\n{stage} " in text for stage in STAGES) and not (tmp_path / "base").exists()


def test_speedrun_plan_with_bad_gpus_names_the_value_and_the_fix(tmp_path):
    text, _, rc = speedrun_plan(tmp_path, "--plan", "--gpus=8xH1000", NANOCHAT_PROFILE="tiny")
    assert rc == 2 and "--gpus '8xH1000'" in text and "e.g. --gpus 8xH100" in text, text
