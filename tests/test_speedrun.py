"""speedrun.sh end to end, the way a user runs it: the tiny profile at smoke size (NANOCHAT_SMOKE=1), killed in
the middle of pretraining and run again. The second run skips what finished, resumes pretraining from its
checkpoint, runs every later stage, writes the report card, and the final model answers over HTTP."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.dist_utils import REPO_ROOT, free_port

STAGES = ["report_reset", "data", "tok_train", "tok_eval", "base_train", "base_eval", "mid_train", "mid_eval",
          "sft_train", "sft_eval", "rl_train", "rl_eval"]
SECTIONS = ["Tokenizer training", "Tokenizer evaluation", "Base model training", "Base model evaluation",
            "Midtraining", "Chat evaluation mid", "Chat SFT", "Chat evaluation sft", "Chat RL", "Chat evaluation rl"]


def speedrun_env(base_dir):
    return {**os.environ, "NANOCHAT_BASE_DIR": str(base_dir), "NANOCHAT_PROFILE": "tiny", "NANOCHAT_SMOKE": "1",
            "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def wait_group_gone(pgid, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pgid, signal.SIGKILL)
    raise AssertionError("speedrun's processes did not exit after SIGTERM")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("speedrun")
    log1 = open(base / "first.log", "w")
    first = subprocess.Popen(["bash", "speedrun.sh"], cwd=REPO_ROOT, env=speedrun_env(base), stdout=log1,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # wait for pretraining's first checkpoint, then stop everything the way a preempted node would
        deadline = time.time() + 600
        while not glob.glob(str(base / "base_checkpoints" / "*" / "meta_000004.json")):
            assert first.poll() is None, ("speedrun ended before pretraining checkpointed:\n"
                                          + (base / "first.log").read_text()[-3000:])
            assert time.time() < deadline, "no pretraining checkpoint within 10 minutes"
            time.sleep(0.1)
        os.killpg(first.pid, signal.SIGTERM)
        first.wait(timeout=60)
        wait_group_gone(first.pid, 60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        log1.close()
    first_log = (base / "first.log").read_text()
    assert not (base / "speedrun" / "base_train.done").exists(), ("pretraining finished before the kill:\n"
                                                                   + first_log[-2000:])

    second = subprocess.run(["bash", "speedrun.sh"], cwd=REPO_ROOT, env=speedrun_env(base), capture_output=True,
                            text=True, timeout=900)
    assert second.returncode == 0, f"second speedrun failed:\n{second.stdout[-4000:]}\n{second.stderr[-3000:]}"
    return base, first_log, second.stdout


def test_interrupted_run_resumes_and_finishes(finished_run):
    base, first_log, second_log = finished_run
    for stage in ("data", "tok_train", "tok_eval"):
        assert f"== {stage}: already done, skipping" in second_log
    assert "resumed from step" in second_log   # pretraining continued from its checkpoint, not from scratch
    for stage in STAGES:
        assert (base / "speedrun" / f"{stage}.done").exists(), f"stage {stage} has no completion marker"
    assert "speedrun: finished" in second_log and "chat_web --source rl" in second_log


def test_every_stage_left_its_artifact(finished_run):
    base = finished_run[0]
    assert len(glob.glob(str(base / "base_data" / "shard_*.parquet"))) >= 2
    assert (base / "tokenizer" / "tokenizer.json").exists()
    for subdir in ("base_checkpoints", "mid_checkpoints", "chatsft_checkpoints", "chatrl_checkpoints"):
        metas = glob.glob(str(base / subdir / "*" / "meta_*.json"))
        assert metas, f"no checkpoint in {subdir}"
    for source in ("mid", "sft", "rl"):
        results = json.loads((base / "eval" / f"chat_{source}.json").read_text())
        assert results, f"eval/chat_{source}.json is empty"


def test_report_card_has_every_section(finished_run):
    report = (base_dir := finished_run[0]) / "report" / "report.md"
    text = report.read_text()
    for section in SECTIONS:
        assert f"## {section}" in text, f"report.md lacks the section {section!r}"
    assert "| ChatCORE |" in text
    for slug in ("base-model-training", "midtraining", "chat-sft", "chat-rl"):   # every training stage's curves
        png = base_dir / "report" / f"{slug}-curves.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
        assert f"]({slug}-curves.png)" in text


def test_web_server_answers_from_the_final_checkpoint(finished_run):
    base = finished_run[0]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "scripts.chat_web", "--source", "rl", "--port", str(port)],
                              cwd=REPO_ROOT, env=speedrun_env(base), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            assert server.poll() is None, "chat_web exited:\n" + server.stdout.read()[-3000:]
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "chat_web did not come up within 2 minutes"
            time.sleep(0.3)
        r = httpx.post(url + "/v1/chat/completions", timeout=60,
                       json={"messages": [{"role": "user", "content": "What is 2 plus 3?"}], "max_tokens": 16,
                             "temperature": 0})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"].startswith("nanochat-rl-")
        assert body["usage"]["completion_tokens"] >= 1
        assert isinstance(body["choices"][0]["message"]["content"], str)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_plan_matches_the_run(finished_run):
    """The plan every run prints first and keeps in its report (scripts/plan.py, from each stage's own flags) has
    the run's real shapes, batches, accumulation, steps and tokens, stage by stage."""
    from nanochat.report import Report
    base, first_log, _ = finished_run
    assert "plan: 1 x CPU" in first_log and "\nrl_eval " in first_log   # printed before anything trains
    assert "The plan's estimate" in (base / "report" / "report.md").read_text()   # beside the measured cost
    rows = {r["stage"]: r for r in json.loads((base / "report" / "run_plan.json").read_text())["stages"]}
    report = Report(str(base / "report"))
    with open(sorted(glob.glob(str(base / "base_checkpoints" / "*" / "meta_*.json")))[-1]) as f:
        shape = json.load(f)["model_config"]
    for stage, section in (("base_train", "Base model training"), ("mid_train", "Midtraining"),
                           ("sft_train", "Chat SFT"), ("rl_train", "Chat RL")):
        row, real = rows[stage], report.read(section)
        assert not row["estimated"]
        assert (row["depth"], row["n_embd"], row["n_head"]) == (shape["n_layer"], shape["n_embd"], shape["n_head"])
        assert (row["steps"], row["device_batch"]) == (real["steps"], real["device_batch_size"]), stage
        rl_micro = stage == "rl_train" and real["examples_per_step"] * real["num_samples"] // real["device_batch_size"]
        assert row["accum"] == (rl_micro or real["grad_accum_steps"]), stage   # RL: micro-batches of samples
        assert row["seq_len"] == real.get("max_seq_len", shape["sequence_len"]) == shape["sequence_len"], stage
        # the memory estimate against the stage's peak RSS: measured -10%, -3%, +2%, +16% (base, mid, SFT, RL)
        measured = real["peak_memory_mib"] * 2**20
        assert abs(row["memory"] - measured) / measured < 0.30, (stage, row["memory"], measured)
    for stage, section in (("base_train", "Base model training"), ("mid_train", "Midtraining")):
        assert rows[stage]["tokens"] == report.read(section)["tokens"], stage   # packed rows: every token counts
    assert rows["base_train"]["params"] == report.read("Base model training")["parameters"]
    for source in ("mid", "sft", "rl"):   # eval batches: each task's problems evaluated, in batches of --batch-size
        row, ev = rows[f"{source}_eval"], json.loads((base / "eval" / f"chat_{source}.json").read_text())
        assert row["steps"] == sum(-(-t["total"] // row["device_batch"]) for t in ev["tasks"].values())
    sft = report.read("Chat SFT")   # padded rows: the plan counts each conversation as a whole-context row
    assert rows["sft_train"]["tokens"] == sft["conversations"] * shape["sequence_len"]
