"""scripts/base_train.py end to end on a tiny model: the loss drops, resume is exact, SIGTERM leaves a
loadable checkpoint, and two processes (one node, and two "nodes" on 127.0.0.1) train together."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from nanochat.checkpoint import complete_steps, load_checkpoint
from tests.dist_utils import REPO_ROOT, check_ok, run_torchrun, run_torchrun_two_nodes

TINY = ["--depth=2", "--aspect-ratio=64", "--head-dim=64", "--max-seq-len=64", "--device-batch-size=4",
        "--total-batch-size=512", "--eval-tokens=2048", "--sample-every=-1", "--compile=0",
        "--core-every=0"]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A base dir with a small embedded corpus and a trained tokenizer (vocab 512)."""
    from nanochat.synthetic import write_embedded_corpus
    d = tmp_path_factory.mktemp("base")
    write_embedded_corpus(str(d / "base_data"), num_shards=3, chars_per_shard=300_000)
    run(d, "scripts.tok_train", "--vocab-size=512", "--max-chars=400000")
    return d


def env_for(base_dir):
    return {**os.environ, "NANOCHAT_BASE_DIR": str(base_dir), "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO_ROOT}


def run(base_dir, module, *args, timeout=300, **env):
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env={**env_for(base_dir), **env},
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{module} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "leaked" not in proc.stderr, proc.stderr[-3000:]   # gc.freeze() without unfreeze: nanobind's exit report
    return proc.stdout


def step_losses(log):
    return {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"step (\d+)/\d+ .*?\| loss ([\d.]+)", log)}


def val_bpbs(log):
    return [float(x) for x in re.findall(r"val bpb ([\d.]+)", log)]


def test_loss_and_bpb_drop(base_dir):
    log = run(base_dir, "scripts.base_train", *TINY, "--num-iterations=40", "--eval-every=40",
              "--model-tag=drop", "--matrix-lr=0.03", "--sample-every=40")
    bpb = val_bpbs(log)
    assert len(bpb) == 2
    assert bpb[1] < 0.75 * bpb[0], f"validation bpb did not drop enough: {bpb}"
    losses = step_losses(log)
    assert sum(list(losses.values())[-5:]) / 5 < 0.8 * losses[1]
    with open(base_dir / "base_checkpoints" / "drop" / "metrics.json") as f:   # the stage's final numbers
        metrics = json.load(f)
    assert metrics["step"] == 40 and f"{metrics['val_bpb']:.4f}" == f"{bpb[1]:.4f}"
    assert metrics["stage"] == "base_train" and metrics["peak_memory_mib"] > 0
    assert log.strip().splitlines()[-1] == f"val_bpb: {metrics['val_bpb']:.6f}"


def test_resume_is_exact(base_dir):
    common = [*TINY, "--num-iterations=6", "--eval-every=100", "--save-every=3", "--keep-last=5",
              "--decay-per-run=1.0"]
    straight = run(base_dir, "scripts.base_train", *common, "--model-tag=straight")
    # the same run again, then throw away its last checkpoint and resume from step 3
    run(base_dir, "scripts.base_train", *common, "--model-tag=resumed")
    ckpt = base_dir / "base_checkpoints" / "resumed"
    for f in os.listdir(ckpt):
        if "000006" in f:
            os.remove(ckpt / f)
    assert complete_steps(str(ckpt)) == [3]
    resumed = run(base_dir, "scripts.base_train", *common, "--model-tag=resumed", "--resume")
    assert "resumed from step 3" in resumed
    a, b = step_losses(straight), step_losses(resumed)
    assert sorted(b) == [4, 5, 6]
    assert all(a[s] == b[s] for s in b), (a, b)
    pa, _, _ = load_checkpoint(str(base_dir / "base_checkpoints" / "straight"), log=None)
    pb, _, _ = load_checkpoint(str(ckpt), log=None)
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k


def muon_decay_in(ckpt):
    _, rank_state, _ = load_checkpoint(str(ckpt), log=None)
    return [g["weight_decay"] for g in rank_state["optimizer"]["param_groups"] if g["kind"] == "muon"]


def test_weight_decay_follows_the_horizon(base_dir):
    """--decay-per-run sets Muon's decay from the lr and the number of steps; under --time-budget, where
    the steps are known only as the run goes, from the number the budget promises."""
    from nanochat.training import muon_weight_decay
    log = run(base_dir, "scripts.base_train", *TINY, "--num-iterations=5", "--eval-every=100",
              "--decay-per-run=1.0", "--model-tag=decay")
    expected = muon_weight_decay(1.0, 0.02, 5)
    assert f"Muon weight decay {expected:.4g} (1 over the run)" in log
    assert muon_decay_in(base_dir / "base_checkpoints" / "decay") == [pytest.approx(expected)]
    run(base_dir, "scripts.base_train", *TINY, "--time-budget=3", "--eval-every=100000", "--save-every=100000",
        "--decay-per-run=1.0", "--model-tag=decay_budget")
    ckpt = base_dir / "base_checkpoints" / "decay_budget"
    steps = load_checkpoint(str(ckpt), log=None)[2]["step"]
    (wd,) = muon_decay_in(ckpt)
    # the budget's estimate of the horizon, made one step before the end, is within a few steps of the truth
    assert 0.5 * muon_weight_decay(1.0, 0.02, steps) < wd < 2 * muon_weight_decay(1.0, 0.02, steps)


def test_sigterm_leaves_loadable_checkpoint(base_dir):
    cmd = [sys.executable, "-m", "scripts.base_train", *TINY, "--num-iterations=100000", "--eval-every=100000",
           "--save-every=100000", "--model-tag=sigterm"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env_for(base_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    for line in proc.stdout:
        if re.search(r"step 00003/", line) or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out[-2000:]
    assert "rerun with --resume" in out
    ckpt = str(base_dir / "base_checkpoints" / "sigterm")
    model, rank_state, meta = load_checkpoint(ckpt, log=None)
    assert meta["step"] >= 3 and not meta["final"] and "loader" in rank_state
    log = run(base_dir, "scripts.base_train", *TINY, f"--num-iterations={meta['step'] + 2}", "--eval-every=1000",
              "--model-tag=sigterm", "--resume")
    assert f"resumed from step {meta['step']}" in log
    assert load_checkpoint(ckpt, log=None)[2]["final"]


def test_oversized_batch_fits_a_small_gpu(base_dir):
    """On a simulated GPU that holds 3 rows, --device-batch-size=4 fits itself to 2 (halving) and keeps the total
    batch, 512 tokens, with 4 accumulation steps instead of 2."""
    log = run(base_dir, "scripts.base_train", *TINY, "--num-iterations=2", "--eval-every=100", "--model-tag=fitted",
              NANOCHAT_SIMULATE_GPU_ROWS="3")
    assert "--device-batch-size 4 does not fit in GPU memory: using 2" in log
    config = load_checkpoint(str(base_dir / "base_checkpoints" / "fitted"), log=None)[2]["train_config"]
    assert (config["device_batch_size"], config["grad_accum_steps"], config["total_batch_size"]) == (2, 4, 512)
    assert sorted(step_losses(log)) == [1, 2]


def test_bad_total_batch_size(base_dir):
    proc = subprocess.run([sys.executable, "-m", "scripts.base_train", *TINY, "--total-batch-size=1000"],
                          cwd=REPO_ROOT, env=env_for(base_dir), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "--total-batch-size=1000" in proc.stderr and "--total-batch-size=1024" in proc.stderr


def test_two_processes(base_dir):
    proc = run_torchrun(["-m", "scripts.base_train", *TINY, "--num-iterations=4", "--eval-every=4",
                         "--model-tag=ddp2"], nproc=2, timeout=240, extra_env={"NANOCHAT_BASE_DIR": str(base_dir)})
    check_ok(proc)
    assert "x 2 processes" in proc.stdout and "val_bpb: " in proc.stdout
    ckpt = base_dir / "base_checkpoints" / "ddp2"
    assert sorted(f for f in os.listdir(ckpt) if f.startswith("optim_")) == \
        ["optim_000004_rank0.pt", "optim_000004_rank1.pt"]


@pytest.mark.slow
def test_two_nodes(base_dir):
    proc = run_torchrun_two_nodes(["-m", "scripts.base_train", *TINY, "--num-iterations=3", "--eval-every=3",
                                   "--model-tag=nodes2"], timeout=300,
                                  extra_env={"NANOCHAT_BASE_DIR": str(base_dir)})
    check_ok(proc)
    assert "x 2 processes" in proc.stdout and "val_bpb: " in proc.stdout


def test_core_inside_training(base_dir, tmp_path):
    """--core-every: CORE at step 3 and at the end, the last one kept in the checkpoint; it equals base
    CORE of that checkpoint measured afresh. A bundle that cannot be had skips CORE and loses nothing."""
    from nanochat.checkpoint import load_model
    from nanochat.core_eval import evaluate_core
    from tests.test_core_eval import HAND_TASKS, write_bundle
    bundle = write_bundle(str(tmp_path / "bundle"), HAND_TASKS)
    log = run(base_dir, "scripts.base_train", *TINY, "--num-iterations=6", "--eval-every=100", "--core-every=3",
              f"--eval-bundle={bundle}", "--model-tag=core")
    cores = [float(x) for x in re.findall(r"^CORE: ([-\d.]+)", log, re.M)]
    assert len(cores) == 2
    _, _, meta = load_checkpoint(str(base_dir / "base_checkpoints" / "core"), log=None)
    assert meta["core"] == pytest.approx(cores[-1], abs=1e-4) and meta["final"]
    os.environ["NANOCHAT_BASE_DIR"] = str(base_dir)
    try:
        model, tok, _ = load_model("base", "cpu", "core")
    finally:
        del os.environ["NANOCHAT_BASE_DIR"]
    assert evaluate_core(model, tok, bundle, "cpu")["core"] == pytest.approx(cores[-1], abs=1e-4)
    assert "total_training_time: " in log
    log = run(base_dir, "scripts.base_train", *TINY, "--num-iterations=2", "--eval-every=100", "--core-every=-1",
              f"--eval-bundle={tmp_path / 'missing.zip'}", "--model-tag=nocore")
    assert "CORE skipped" in log and "val_bpb: " in log.splitlines()[-1]
