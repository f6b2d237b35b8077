"""research/autoresearch.py driving the project's real stages with the replay agent, at toy sizes.

The repo the harness works on is a fresh git repo holding this working tree's files (so what is tested is the
code as it is now, committed or not); its base dir holds a tiny corpus, tokenizer and base model made by the
real stages (tests/posttrain_utils.py). Each stage keeps its evaluation, metrics file, editable and protected
files; only its command lines are shrunk to toy sizes. Minutes of CPU: `-m slow` (tests/test_autoresearch.py
checks the same rules on a toy stage in seconds).
"""

import dataclasses
import difflib
import json
import math
import os
import shutil
import subprocess

import pytest

from research import agents as ag
from research import autoresearch as ar
from research import stages as st
from tests.posttrain_utils import BASE_TAG, MODEL, POSTTRAIN, make_base_dir, run_module
from tests.test_autoresearch import IDENT, options, read_rows

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU = "--device-type=cpu"
TOY = {   # stage -> (command, evaluate) at toy sizes
    "base": ("{python} -m scripts.base_train " + " ".join(MODEL) + " --device-batch-size=4 --total-batch-size=512 "
             "--num-iterations=10 --eval-every=1000 --eval-tokens=1024 --sample-every=-1 --save-every=1000 "
             "--compile=0 --core-every=0 " + CPU,
             "{python} -m scripts.base_eval --skip-core --eval-tokens=8192 --device-batch-size=4 --sample-tokens=0 "
             + CPU),
    "tokenizer": ("{python} -m scripts.tok_train --vocab-size=512 --max-chars=200000",
                  "{python} -m scripts.tok_eval --sample-chars=20000"),
    "sft": ("{python} -m scripts.chat_sft " + " ".join(POSTTRAIN) + " --source=mid --examples-per-step=4 "
            "--num-iterations=3 --eval-every=1000 --eval-every-chatcore=-1 --save-every=1000",
            "{python} -m scripts.chat_eval -i sft -a SyntheticMathChoice,SyntheticMath --max-problems=4 "
            "--max-new-tokens=8 --eval-seed={eval_seed} " + CPU),
    "rl": ("{python} -m scripts.chat_rl --task=synthetic --num-steps=1 --examples-per-step=2 --num-samples=2 "
           "--device-batch-size=4 --max-new-tokens=8 --eval-every=1000 --eval-examples=2 --eval-samples=1 "
           "--save-every=1000 " + CPU,
           "{python} -m scripts.chat_eval -i rl -a SyntheticMath --max-problems=4 --max-new-tokens=8 "
           "--eval-seed={eval_seed} " + CPU),
    "engine": ("", "{python} -m bench.engine --depth 1 --vocab-size 512 --seq-len 128 --prompt-tokens 20 "
                   "--decode-steps 4 --batch-sizes 1 2 --repeats 1 --json {metrics}"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(repo, inputs): a repo of this working tree, and a base dir with every stage's prerequisites."""
    root = tmp_path_factory.mktemp("research")
    repo, inputs = root / "repo", root / "inputs"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO_ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for f in files:
        if os.path.isfile(os.path.join(REPO_ROOT, f)):
            os.makedirs(os.path.dirname(repo / f), exist_ok=True)
            shutil.copy2(os.path.join(REPO_ROOT, f), repo / f)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "the project"]):
        subprocess.run(["git", *IDENT, *args], cwd=repo, check=True, capture_output=True)
    old = os.environ.get("NANOCHAT_BASE_DIR")
    os.environ["NANOCHAT_BASE_DIR"] = str(inputs)
    try:
        make_base_dir(str(inputs))
    finally:
        os.environ.pop("NANOCHAT_BASE_DIR") if old is None else os.environ.update(NANOCHAT_BASE_DIR=old)
    return repo, inputs


def patch(repo, description, path, old, new):
    """A replay patch replacing `old` by `new` in the committed `path`."""
    text = (repo / path).read_text()
    assert old in text, (path, old)
    diff = difflib.unified_diff(text.splitlines(True), text.replace(old, new, 1).splitlines(True), f"a/{path}",
                                f"b/{path}")
    return description + "\n\n" + "".join(diff)


def research(repo, inputs, tmp_path, name, patches):
    folder = tmp_path / "patches"
    folder.mkdir()
    for i, text in enumerate(patches):
        (folder / f"{i:03d}.patch").write_text(text)
    command, evaluate = TOY[name]
    stage = dataclasses.replace(st.STAGES[name], command=command, evaluate=evaluate, grace=600)
    run_dir = tmp_path / "run"
    opts = options(repo, inputs, run_dir, tag=f"{name}-{tmp_path.name}", budget=60, baseline_runs=1)
    ar.Research(stage, ag.ReplayAgent(str(folder)), opts).run()
    return read_rows(run_dir), run_dir


@pytest.mark.slow
def test_base_stage_keeps_a_gain_discards_a_loss_rejects_an_eval_edit_logs_a_crash(world, tmp_path):
    repo, inputs = world
    rows, run_dir = research(repo, inputs, tmp_path, "base", [
        patch(repo, "train 4x longer", "scripts/base_train.py", "compute.world_size, args.num_iterations)",
              "compute.world_size, 4 * args.num_iterations)"),
        patch(repo, "learning rates to zero", "nanochat/training.py", 'group["lr"] = group["initial_lr"] * lrm',
              'group["lr"] = group["initial_lr"] * lrm * 0.0'),
        patch(repo, "report a kinder bpb", "nanochat/loss_eval.py", "return nats / (math.log(2) * nbytes)",
              "return 0.5 * nats / (math.log(2) * nbytes)"),
        patch(repo, "break the model", "nanochat/gpt.py", "import torch\n", "import torch\nraise ImportError('no')\n"),
    ])
    assert [(r["exp"], r["status"]) for r in rows] == [("b0", "baseline"), ("0001", "keep"), ("0002", "discard"),
                                                       ("0003", "reject"), ("0004", "crash")]
    bpb = {r["exp"]: float(r["metric"]) for r in rows if r["status"] != "reject"}
    assert bpb["0001"] < bpb["b0"] < bpb["0002"]
    assert "edits the evaluation: nanochat/loss_eval.py" in rows[3]["description"]
    assert "ImportError" in rows[4]["description"]
    # the number judged is the one the evaluation (scripts/base_eval.py) wrote
    assert json.loads((run_dir / "logs" / "0001.metrics.json").read_text())["val_bpb"] == pytest.approx(bpb["0001"],
                                                                                                      rel=1e-5)
    assert subprocess.run(["git", "log", "--format=%s", "main..autoresearch/base-" + tmp_path.name], cwd=repo,
                          capture_output=True, text=True).stdout.split("\n")[0] == "train 4x longer"


@pytest.mark.slow
def test_every_other_stage_runs_under_the_harness(world, tmp_path_factory):
    """tokenizer, sft, rl and engine: a baseline judged by each stage's own evaluation, and one patch each."""
    repo, inputs = world
    for args in (["scripts.mid_train", f"--model-tag={BASE_TAG}", *POSTTRAIN[1:], "--total-batch-size=512",
                  "--num-iterations=2", "--eval-tokens=512", "--eval-every=1000"],
                 ["scripts.chat_sft", *POSTTRAIN, "--examples-per-step=4", "--num-iterations=2",
                  "--eval-every=1000", "--eval-every-chatcore=-1"]):
        assert run_module(inputs, *args).returncode == 0
    cases = {
        "tokenizer": (patch(repo, "score the tokenizer kindly", "scripts/tok_eval.py", "def load_reference_encodings",
                            "def unused():\n    pass\n\n\ndef load_reference_encodings"), "reject"),
        "sft": (patch(repo, "break SFT", "scripts/chat_sft.py", "def train(args):\n",
                      "def train(args):\n    raise RuntimeError('no')\n"), "crash"),
        "rl": (patch(repo, "sample differently", "nanochat/engine.py", "import torch\n", "import torch  # x\n"),
               "reject"),
        "engine": (patch(repo, "other outputs", "nanochat/engine.py", "softmax(values / temperature",
                         "softmax(values / (2 * temperature)"), "discard"),   # faster or not: not the same
    }
    for name, (text, status) in cases.items():
        rows, _ = research(repo, inputs, tmp_path_factory.mktemp(name), name, [text])
        assert [r["status"] for r in rows] == ["baseline", status], (name, rows)
        assert math.isfinite(float(rows[0]["metric"])), name   # ChatCORE is centered: it may be below 0
    assert "guard changed" in rows[1]["description"]   # the engine's: same speed is not enough, same outputs
