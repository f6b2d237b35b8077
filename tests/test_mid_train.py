"""scripts/mid_train.py on a tiny base checkpoint and the embedded chat tasks: validation bpb drops (measured
here, independently of the script), resume is exact, and bad input is named."""

import os
import shutil

import pytest
import torch

from nanochat.chat_data import PackedConversationLoader
from nanochat.checkpoint import load_checkpoint, load_model
from nanochat.loss_eval import evaluate_bpb
from nanochat.report import get_report
from nanochat.tokenizer import get_token_bytes
from scripts import mid_train
from tasks.common import TaskMixture
from tasks.synthetic import SyntheticChat, SyntheticMath
from tests.posttrain_utils import BASE_TAG, POSTTRAIN, SEQ_LEN, make_base_dir

QUICK = [*POSTTRAIN, "--total-batch-size=512", "--eval-tokens=1024", "--compile=0"]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("mid")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NANOCHAT_BASE_DIR", str(d))
        yield make_base_dir(str(d))


def chat_bpb(source, tag, base_dir):
    """Bits per byte of a checkpoint on held-out synthetic conversations (all tokens, as midtraining trains)."""
    model, tokenizer, _ = load_model(source, model_tag=tag, base_dir=base_dir)
    val = TaskMixture([SyntheticChat(size=100, seed=7), SyntheticMath(size=100, seed=7)])
    loader = PackedConversationLoader(val, tokenizer.render_conversation, 4, SEQ_LEN, use_mask=False)
    return evaluate_bpb(model, loader, 8, get_token_bytes(base_dir))


def test_midtraining_lowers_val_bpb(base_dir, capsys):
    result = mid_train.main([*QUICK, "--output-tag=drop", "--num-iterations=30", "--eval-every=30"])
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == f"val_bpb: {result['val_bpb']:.6f}"
    assert result["val_bpb"] < 0.85 * result["start_val_bpb"], result
    before, after = chat_bpb("base", BASE_TAG, base_dir), chat_bpb("mid", "drop", base_dir)
    assert after < 0.85 * before, (before, after)
    section = get_report(base_dir).read("Midtraining")
    assert section["val_bpb"] == result["val_bpb"] and section["steps"] == 30
    # done is done: --resume on a finished run only reports the metric
    again = mid_train.main([*QUICK, "--output-tag=drop", "--num-iterations=30", "--resume"])
    assert again["val_bpb"] == result["val_bpb"]


def test_resume_is_exact(base_dir):
    common = [*QUICK, "--num-iterations=4", "--eval-every=100", "--save-every=2", "--keep-last=5"]
    mid_train.main([*common, "--output-tag=straight"])
    straight = os.path.join(base_dir, "mid_checkpoints", "straight")
    resumed = os.path.join(base_dir, "mid_checkpoints", "resumed")
    os.makedirs(resumed)
    for f in os.listdir(straight):   # a run that was interrupted right after its step-2 checkpoint
        if "000002" in f:
            shutil.copy(os.path.join(straight, f), resumed)
    result = mid_train.main([*common, "--output-tag=resumed", "--resume"])
    assert result["step"] == 4
    a, _, meta_a = load_checkpoint(straight, log=None)
    b, _, meta_b = load_checkpoint(resumed, log=None)
    assert meta_a["step"] == meta_b["step"] == 4 and meta_b["final"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert meta_a["val_bpb"] == meta_b["val_bpb"]


def run_failing(argv, capsys):
    with pytest.raises(SystemExit) as e:
        mid_train.main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_missing_source_names_the_command(base_dir, capsys):
    err = run_failing([*QUICK, "--model-tag=nope"], capsys)
    assert "base" in err and "`python -m scripts.base_train --model-tag=nope`" in err


def test_missing_or_empty_task_is_named(base_dir, tmp_path, capsys):
    missing = str(tmp_path / "no_such.jsonl")
    err = run_failing([*QUICK, f"--identity-path={missing}"], capsys)
    assert f"task identity conversations {missing}" in err and "does not exist" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    err = run_failing([*QUICK, f"--identity-path={empty}"], capsys)
    assert f"task identity conversations {empty}" in err and "no examples" in err
    err = run_failing([*QUICK, "--total-batch-size=1000"], capsys)
    assert "--total-batch-size=1000" in err


def test_oversized_batch_fits_a_small_gpu(base_dir, monkeypatch, capsys):
    """On a simulated GPU that holds 1 row, --device-batch-size=4 fits itself to 1 and keeps the total batch
    (512 tokens) with 4 accumulation steps instead of 1."""
    monkeypatch.setenv("NANOCHAT_SIMULATE_GPU_ROWS", "1")
    mid_train.main([*QUICK, "--output-tag=fitted", "--num-iterations=2", "--eval-every=100"])
    assert "--device-batch-size 4 does not fit in GPU memory: using 1" in capsys.readouterr().out
    config = load_checkpoint(os.path.join(base_dir, "mid_checkpoints", "fitted"), log=None)[2]["train_config"]
    assert (config["device_batch_size"], config["grad_accum_steps"], config["total_batch_size"]) == (1, 4, 512)
