"""scripts/chat_sft.py on a tiny base checkpoint and the embedded chat tasks: the loss on assistant tokens drops
(measured here, independently of the script), an interrupted run resumes to exactly the same weights (from a
checkpoint, and after SIGTERM), bad input is named, and two gloo processes train like one."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from nanochat.chat_data import PaddedLoader
from nanochat.checkpoint import load_checkpoint, load_model
from nanochat.report import get_report
from scripts import chat_sft
from tasks.common import TaskMixture
from tasks.synthetic import SyntheticChat, SyntheticMath
from tests.dist_utils import REPO_ROOT, check_ok, run_torchrun
from tests.posttrain_utils import BASE_TAG, POSTTRAIN, SEQ_LEN, env_for, make_base_dir

QUICK = [*POSTTRAIN, "--source=base", "--examples-per-step=8", "--eval-examples=16", "--eval-every-chatcore=-1"]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sft")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NANOCHAT_BASE_DIR", str(d))
        yield make_base_dir(str(d))


@torch.no_grad()
def assistant_loss(source, tag, base_dir):
    """Mean loss per assistant token of a checkpoint on held-out synthetic conversations."""
    model, tokenizer, _ = load_model(source, model_tag=tag, base_dir=base_dir)
    val = TaskMixture([SyntheticChat(size=100, seed=7), SyntheticMath(size=100, seed=7)])
    loader = PaddedLoader(val, tokenizer.render_conversation, 8, SEQ_LEN, tokenizer.get_bos_token_id())
    nats = tokens = 0.0
    for _ in range(8):
        x, y = next(loader)
        nats += model(x, y, loss_reduction="sum").item()
        tokens += (y >= 0).sum().item()
    return nats / tokens


def test_sft_lowers_val_loss(base_dir, tmp_path, capsys):
    identity = tmp_path / "identity.jsonl"
    identity.write_text(json.dumps([{"role": "user", "content": "Who are you?"},
                                    {"role": "assistant", "content": "I am nanochat."}]) + "\n")
    result = chat_sft.main([*QUICK, "--output-tag=drop", "--num-iterations=30", "--eval-every=30",
                            "--init-lr-frac=0.5", "--eval-every-chatcore=30", "--chatcore-max-problems=16",
                            f"--identity-path={identity}"])
    out = capsys.readouterr().out
    assert "+CustomJSON/identity.jsonl+" in out   # the identity conversations joined the mixture
    assert out.strip().splitlines()[-1] == f"val_loss: {result['val_loss']:.6f}"
    assert result["val_loss"] < 0.85 * result["start_val_loss"], result
    before, after = assistant_loss("base", BASE_TAG, base_dir), assistant_loss("sft", "drop", base_dir)
    assert after < 0.85 * before, (before, after)
    section = get_report(base_dir).read("Chat SFT")
    assert section["val_loss"] == result["val_loss"] and section["steps"] == 30
    # the quick ChatCORE ran (scored by nanochat/chat_eval.py) and made it into the report
    assert set(result["chatcore"]) == {"ChatCORE", "SyntheticMathChoice"}
    assert section["ChatCORE"] == result["chatcore"]["ChatCORE"] and "step 00030 | ChatCORE " in out


def test_resume_is_exact(base_dir):
    common = [*QUICK, "--num-iterations=6", "--eval-every=100", "--save-every=3", "--keep-last=5"]
    chat_sft.main([*common, "--output-tag=straight"])
    straight = os.path.join(base_dir, "chatsft_checkpoints", "straight")
    resumed = os.path.join(base_dir, "chatsft_checkpoints", "resumed")
    os.makedirs(resumed)
    for f in os.listdir(straight):   # a run that was interrupted right after its step-3 checkpoint
        if "000003" in f:
            shutil.copy(os.path.join(straight, f), resumed)
    assert chat_sft.main([*common, "--output-tag=resumed", "--resume"])["step"] == 6
    a, rank_a, meta_a = load_checkpoint(straight, log=None)
    b, rank_b, meta_b = load_checkpoint(resumed, log=None)
    assert meta_a["step"] == meta_b["step"] == 6 and meta_b["final"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert rank_a["loader"] == rank_b["loader"]   # and the same data position
    assert meta_a["val_loss"] == meta_b["val_loss"]


def test_sigterm_saves_and_resumes(base_dir):
    cmd = [sys.executable, "-m", "scripts.chat_sft", *QUICK, "--num-iterations=100000", "--eval-every=100000",
           "--output-tag=sigterm"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env_for(base_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    for line in proc.stdout:
        if re.search(r"step 00002/", line) or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out[-2000:]
    assert "rerun with --resume" in out
    ckpt = os.path.join(base_dir, "chatsft_checkpoints", "sigterm")
    _, rank_state, meta = load_checkpoint(ckpt, log=None)
    assert meta["step"] >= 2 and not meta["final"]
    assert rank_state["loader"]["cursor"] == 8 * meta["step"]   # conversations consumed so far
    result = chat_sft.main([*QUICK, f"--num-iterations={meta['step'] + 1}", "--eval-every=1000",
                            "--output-tag=sigterm", "--resume"])
    assert result["step"] == meta["step"] + 1 and load_checkpoint(ckpt, log=None)[2]["final"]


def run_failing(argv, capsys):
    with pytest.raises(SystemExit) as e:
        chat_sft.main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_missing_source_names_the_command(base_dir, capsys):
    no_base = [a for a in QUICK if a != "--source=base"]   # default source: mid, which nobody made here
    err = run_failing(no_base, capsys)
    assert "mid" in err and "`python -m scripts.mid_train --model-tag=base`" in err


def test_missing_or_empty_task_is_named(base_dir, tmp_path, capsys):
    missing = str(tmp_path / "no_such.jsonl")
    err = run_failing([*QUICK, f"--identity-path={missing}"], capsys)
    assert f"task identity conversations {missing}" in err and "does not exist" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    err = run_failing([*QUICK, f"--identity-path={empty}"], capsys)
    assert f"task identity conversations {empty}" in err and "no examples" in err
    err = run_failing([*QUICK, "--examples-per-step=6"], capsys)
    assert "--examples-per-step=6" in err


def test_two_processes_train_like_one(base_dir):
    """Two gloo ranks, each 4 conversations per step, take the same steps as one process with 2 micro-batches:
    the loss is averaged over every target token of the step whichever rank holds it."""
    common = [*QUICK, "--num-iterations=3", "--eval-every=3"]
    proc = run_torchrun(["-m", "scripts.chat_sft", *common, "--output-tag=ddp2"], nproc=2, timeout=240,
                        extra_env={"NANOCHAT_BASE_DIR": str(base_dir)})
    check_ok(proc)
    assert "x 2 processes x 1 accumulation steps" in proc.stdout and "val_loss: " in proc.stdout
    one = chat_sft.main([*common, "--output-tag=ddp1"])
    two, _, meta = load_checkpoint(os.path.join(base_dir, "chatsft_checkpoints", "ddp2"), load_rank_state=False,
                                   log=None)
    single, _, _ = load_checkpoint(os.path.join(base_dir, "chatsft_checkpoints", "ddp1"), log=None)
    assert meta["world_size"] == 2 and meta["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)
    start, _, _ = load_checkpoint(os.path.join(base_dir, "base_checkpoints", BASE_TAG), load_rank_state=False,
                                  log=None)
    for k in single:   # the two runs agree to float rounding, far below how far the weights moved
        moved, diff = (single[k] - start[k]).abs().max().item(), (single[k] - two[k]).abs().max().item()
        assert moved > 0 and diff < moved / 100, (k, diff, moved)


def test_identity_file_defaults(tmp_path, capsys):
    from nanochat.synthetic import generate_identity_conversations
    from tasks.customjson import CustomJSON
    from tasks.mixtures import IDENTITY_DEFAULT_SIZE, identity_entries
    args = ""   # no --identity-path: the default file in the base dir
    path = tmp_path / "identity_conversations.jsonl"
    assert identity_entries(args, str(tmp_path)) == [] and not path.exists()   # synthetic mixtures: none
    entries = identity_entries(args, str(tmp_path), copies=2, write_default=True)
    assert "edit it to change who the model says it is" in capsys.readouterr().out
    assert len(entries) == 2 and entries[0][0] == f"identity conversations {path}"
    task = entries[0][1]()
    assert isinstance(task, CustomJSON) and len(task) == IDENTITY_DEFAULT_SIZE
    assert [task[i]["messages"] for i in range(len(task))] == generate_identity_conversations(0, IDENTITY_DEFAULT_SIZE)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]                  # written atomically: no temp left
    # an edited persona is what later runs train on: never overwritten
    path.write_text(json.dumps([{"role": "user", "content": "Who are you?"},
                                {"role": "assistant", "content": "I am Ada."}]) + "\n")
    assert len(identity_entries(args, str(tmp_path), write_default=True)[0][1]()) == 1


def test_oversized_batch_fits_a_small_gpu(base_dir, monkeypatch, capsys):
    """On a simulated GPU that holds 3 rows, --device-batch-size=4 fits itself to 2 (a divisor, so the 8
    conversations per step stay whole) and keeps them with 4 accumulation steps instead of 2."""
    monkeypatch.setenv("NANOCHAT_SIMULATE_GPU_ROWS", "3")
    chat_sft.main([*QUICK, "--output-tag=fitted", "--num-iterations=2", "--eval-every=100"])
    assert "--device-batch-size 4 does not fit in GPU memory: using 2" in capsys.readouterr().out
    config = load_checkpoint(os.path.join(base_dir, "chatsft_checkpoints", "fitted"), log=None)[2]["train_config"]
    assert (config["device_batch_size"], config["grad_accum_steps"], config["examples_per_step"]) == (2, 4, 8)
