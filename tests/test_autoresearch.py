"""
The research harness (research/autoresearch.py) on a toy stage in a temporary git repo: `score.py` prints
`score: X` from VALUE in the editable `params.py`, plus an offset read from a prerequisite artifact. Every
test builds its own repo and patches; nothing touches the project's own checkout.
"""

import argparse
import difflib
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from research import agents as ag
from research import autoresearch as ar
from research import stages as st

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDENT = ["-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]

TRAIN_PY = """\
import json, os, sys
sys.path.insert(0, ".")
from params import VALUE
import params2
runs = open(sys.argv[1]).read().split()
jitter = float(sys.argv[2]) * (len(runs) % 2) if len(sys.argv) > 2 else 0.0
jitter -= float(open("bonus.local").read()) if os.path.exists("bonus.local") else 0.0  # git-ignored
print("warming up")
with open(os.path.join(os.environ["NANOCHAT_BASE_DIR"], "model.json"), "w") as f:   # outputs stay in the run's dir
    json.dump({"value": VALUE + params2.OTHER + jitter, "check": getattr(params2, "CHECK", "none")}, f)
"""

# The evaluation: the stage is judged by what this writes, from the "model" the training left in the base dir.
SCORE_PY = """\
import json, os
base = os.environ["NANOCHAT_BASE_DIR"]
model = json.load(open(os.path.join(base, "model.json")))
offset = float(open(os.path.join(base, "offset.txt")).read())
with open(os.path.join(base, "score.json"), "w") as f:
    json.dump({"score": model["value"] + offset, "check": model["check"]}, f)
print("scored")
"""


def sh(cwd, *args):
    return subprocess.run(["git", *IDENT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    files = {"params.py": "VALUE = 5.0\n", "params2.py": "OTHER = 0.0\n", "train.py": TRAIN_PY, "score.py": SCORE_PY,
             "research/program.md": "# Toy program\nMake the score lower.\n", "README.md": "toy\n",
             ".gitignore": "*.local\n"}
    for name, text in files.items():
        (repo / name).parent.mkdir(exist_ok=True)
        (repo / name).write_text(text)
    sh(repo, "init", "-q", "-b", "main")
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", "toy stage")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "offset.txt").write_text("0.5")
    return repo, inputs


def toy_stage(tmp_path, args=""):
    runs = tmp_path / "runs.log"
    command = f"echo $CUDA_VISIBLE_DEVICES-run >> {runs} && {{python}} train.py {runs} {args}"
    return st.Stage(name="toy", command=command, evaluate="{python} score.py", metrics="score.json", metric="score",
                    higher_is_better=False, editable=["params*.py"], protected=["score.py"],
                    needs={"offset.txt": "python make_offset.py"}, guard="check", grace=1.0)


def write_patches(folder, repo, edits):
    """One patch per (description, file, new text, will it be kept), each against the file as the branch
    will hold it by then (the committed file, changed by the kept patches before it). Returns the folder."""
    folder.mkdir()
    tip = {}
    for i, (description, path, new, kept) in enumerate(edits):
        if path not in tip:
            tip[path] = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=repo, capture_output=True,
                                       text=True).stdout
        diff = "".join(difflib.unified_diff(tip[path].splitlines(True), new.splitlines(True), f"a/{path}",
                                            f"b/{path}"))
        (folder / f"{i:03d}.patch").write_text(f"{description}\n\n{diff}")
        if kept:
            tip[path] = new
    return folder


def read_rows(run_dir):
    lines = (run_dir / "results.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ar.COLUMNS
    return [dict(zip(ar.COLUMNS, ln.split("\t"))) for ln in lines[1:]]


def options(repo, inputs, run_dir, tag="t", budget=2.0, **kw):
    """The CLI's options (as main() passes them to Research), with `kw` overriding any of them."""
    args = ar.parse_args(["--stage", "base", "--agent", "unused", "--repo", str(repo), "--run-dir", str(run_dir),
                          "--tag", tag, "--budget", str(budget), "--inputs", str(inputs)])
    return argparse.Namespace(**{**vars(args), **kw})


def snapshot(repo):
    """Everything about the user's checkout that the harness must leave alone."""
    files = {p: (repo / p).read_bytes() for p in sh(repo, "ls-files", "-co", "--exclude-standard").splitlines()}
    return (sh(repo, "status", "--porcelain"), sh(repo, "rev-parse", "HEAD"), sh(repo, "symbolic-ref", "HEAD"),
            sh(repo, "diff", "--cached"), files)


def branch_log(repo):
    return sh(repo, "log", "--format=%s", "main..autoresearch/t").splitlines()


def test_replay_loop_keeps_only_real_gains_and_logs_every_attempt(tmp_path):
    repo, inputs = make_repo(tmp_path)
    (repo / "params.py").write_text("VALUE = 100.0\n")  # uncommitted work: experiments start from HEAD instead
    (repo / "notes.txt").write_text("mine\n")
    before = snapshot(repo)
    marker, child = tmp_path / "out_of_scope_ran", tmp_path / "child.pid"
    # Writes the score it would like, and rewrites the evaluation on disk: the harness deletes the one and
    # restores the other before the evaluation runs, so the committed VALUE is what counts.
    cheat = ("import json, os\njson.dump({'score': -100.0, 'check': 'none'}, open(os.path.join("
             "os.environ['NANOCHAT_BASE_DIR'], 'score.json'), 'w'))\nopen('score.py', 'w').write('pass')\n"
             "VALUE = 5.0\n")
    hang = (f"import subprocess, time\np = subprocess.Popen(['sleep', '60'])\nopen({str(child)!r}, 'w')"
            ".write(str(p.pid))\ntime.sleep(60)\nVALUE = 0.0\n")
    patches = write_patches(tmp_path / "patches", repo, [
        ("lower to 3", "params.py", "VALUE = 3.0\n", True),                             # keep
        ("raise to 4", "params.py", "VALUE = 4.0\n", False),                            # discard: worse
        ("divide by zero", "params.py", "VALUE = 1 / 0\n", False),                      # crash
        ("hang", "params.py", hang, False),                                            # timeout
        ("edit the judge", "score.py", f"open({str(marker)!r}, 'w')\n" + SCORE_PY, False),  # reject, unrun
        ("tiny gain", "params.py", "VALUE = 2.95\n", False),                            # discard: below margin
        ("lower to 2", "params.py", "VALUE = 2.0\n", True),                             # keep
        ("nan", "params.py", "VALUE = float('nan')\n", False),                          # crash: metric is nan
        ("silent", "params.py", "import os\nos._exit(0)\n", False),                     # crash: nothing to score
        ("cheat", "params.py", cheat, False),                                          # discard: judged honestly
        ("readme", "README.md", "toy!\n", False),                                      # reject: not the stage's
    ])
    run_dir = tmp_path / "run"
    t0 = time.time()
    ar.Research(toy_stage(tmp_path), ag.ReplayAgent(str(patches)),
                options(repo, inputs, run_dir, min_delta=0.1)).run()
    assert time.time() - t0 < 60

    rows = read_rows(run_dir)
    assert [(r["exp"], r["status"]) for r in rows] == [
        ("b0", "baseline"), ("b1", "baseline"), ("0001", "keep"), ("0002", "discard"), ("0003", "crash"),
        ("0004", "timeout"), ("0005", "reject"), ("0006", "discard"), ("0007", "keep"), ("0008", "crash"),
        ("0009", "crash"), ("0010", "discard"), ("0011", "reject")]
    metrics = {r["exp"]: float(r["metric"]) for r in rows}
    assert metrics["b0"] == metrics["b1"] == 5.5  # committed VALUE 5.0 + offset 0.5, not the uncommitted 100
    assert metrics["0001"] == 3.5 and metrics["0006"] == pytest.approx(3.45) and metrics["0007"] == 2.5
    assert metrics["0010"] == 5.5
    assert "ZeroDivisionError" in rows[4]["description"] and "divide by zero" in rows[4]["description"]
    assert "no number under 'score'" in rows[9]["description"] and "model.json" in rows[10]["description"]
    assert "edits the evaluation: score.py" in rows[6]["description"]
    assert "outside the stage's files: README.md" in rows[12]["description"]
    assert 2.9 < float(rows[5]["seconds"]) < 10  # killed at budget 2 + grace 1
    assert all(float(r["memory_mib"]) > 0 for r in rows if r["status"] in ("baseline", "keep"))

    assert not marker.exists()  # the out-of-scope edit never ran
    runs = (tmp_path / "runs.log").read_text().split()
    assert len(runs) == 2 + 9  # two baselines, every experiment but the rejected one, each exactly once
    pid = int(child.read_text())  # the hanging run's child was killed with its process group
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"

    assert branch_log(repo) == ["lower to 2", "lower to 3"]
    assert sh(repo, "show", "autoresearch/t:params.py") == "VALUE = 2.0"
    assert snapshot(repo) == before
    assert sorted(os.listdir(inputs)) == ["offset.txt"]  # the run's outputs did not land in the user's base dir
    assert sh(repo, "worktree", "list").count("\n") == 0  # every experiment's worktree is gone
    assert (run_dir / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "VALUE = 2.0" in (run_dir / "patches" / "0007.patch").read_text()
    log = (run_dir / "logs" / "0007.log").read_text()
    assert log.index("warming up") < log.index("scored")   # the stage's output, then its evaluation's


def test_killed_run_resumes_where_it_stopped(tmp_path):
    repo, inputs = make_repo(tmp_path)
    flag, started = tmp_path / "hang_while_this_exists", tmp_path / "hang_started"
    flag.write_text("")
    hang = (f"import os, time\nif os.path.exists({str(flag)!r}):\n    open({str(started)!r}, 'w')\n"
            "    time.sleep(60)\nVALUE = 4.0\n")
    patches = write_patches(tmp_path / "patches", repo, [
        ("lower to 3", "params.py", "VALUE = 3.0\n", True), ("raise to 4", "params.py", "VALUE = 4.0\n", False),
        ("hangs the first time", "params2.py", hang.replace("VALUE = 4.0", "OTHER = -1.0"), True),
        ("lower to 2", "params.py", "VALUE = 2.0\n", True)])
    stage_file = tmp_path / "stage.json"
    stage_file.write_text(json.dumps(ar.asdict(toy_stage(tmp_path))))
    run_dir = tmp_path / "run"
    cli = ["--stage-file", str(stage_file), "--agent", f"replay:{patches}", "--repo", str(repo), "--tag", "t",
           "--run-dir", str(run_dir), "--inputs", str(inputs), "--budget", "30"]

    ar.main(cli + ["--max-experiments", "2"])
    assert [r["status"] for r in read_rows(run_dir)] == ["baseline", "baseline", "keep", "discard"]
    assert len((tmp_path / "runs.log").read_text().split()) == 4

    # A second invocation in its own process, killed (SIGTERM) while experiment 3 hangs.
    proc = subprocess.Popen([sys.executable, "-m", "research.autoresearch", *cli], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 30
    while not started.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert started.exists()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode != 0 and "interrupted" in out
    assert len(read_rows(run_dir)) == 4  # the interrupted experiment was not logged

    flag.unlink()
    ar.main(cli)
    rows = read_rows(run_dir)
    assert [(r["exp"], r["status"]) for r in rows] == [
        ("b0", "baseline"), ("b1", "baseline"), ("0001", "keep"), ("0002", "discard"), ("0003", "keep"),
        ("0004", "keep")]
    assert float(rows[-1]["metric"]) == 1.5
    assert len((tmp_path / "runs.log").read_text().split()) == 4 + 1 + 2  # + the killed run, then 3 and 4
    assert branch_log(repo) == ["lower to 2", "hangs the first time", "lower to 3"]
    with pytest.raises(SystemExit, match="different stage or budget"):
        ar.main(cli[:-1] + ["31"])


def test_noise_margin_guard_and_confirm(tmp_path):
    repo, inputs = make_repo(tmp_path)
    # The score jitters by +0.2 on odd-numbered runs: baseline 5.7 then 5.5, so the margin is 0.2 around 5.6.
    patches = write_patches(tmp_path / "patches", repo, [
        ("inside the noise", "params.py", "VALUE = 4.8\n", False),       # run 3: 5.5, not below 5.4
        ("faster but different", "params2.py", "OTHER = -1.0\nCHECK = 'changed'\n", False),  # guard changed
        ("real gain", "params.py", "VALUE = 4.0\n", True),               # runs 5 and 6: 4.7, 4.5; keeps 4.7
    ])
    run_dir = tmp_path / "run"
    ar.Research(toy_stage(tmp_path, args="0.2"), ag.ReplayAgent(str(patches)),
                options(repo, inputs, run_dir, confirm=True)).run()
    rows = read_rows(run_dir)
    assert [r["status"] for r in rows] == ["baseline", "baseline", "discard", "discard", "keep"]
    assert [float(r["metric"]) for r in rows] == pytest.approx([5.7, 5.5, 5.5, 4.5, 4.7])
    assert "guard changed" in rows[3]["description"]
    assert "runs 4.7 and 4.5" in rows[4]["description"]
    assert len((tmp_path / "runs.log").read_text().split()) == 6
    assert branch_log(repo) == ["real gain"]


def test_parallel_workers_one_gpu_each_and_stale_winner_rerun_on_new_tip(tmp_path):
    repo, inputs = make_repo(tmp_path)
    slow = "import time\ntime.sleep(1.0)\n"  # both candidates run at the same time, from the same tip
    patches = write_patches(tmp_path / "patches", repo, [
        ("lower value", "params.py", slow + "VALUE = 4.0\n", True),
        ("lower other", "params2.py", slow + "OTHER = -2.0\n", True)])
    run_dir = tmp_path / "run"
    ar.Research(toy_stage(tmp_path), ag.ReplayAgent(str(patches)),
                options(repo, inputs, run_dir, gpus=["0", "1"])).run()
    rows = read_rows(run_dir)
    assert sorted(r["status"] for r in rows) == ["baseline", "baseline", "keep", "keep"]
    assert min(float(r["metric"]) for r in rows) == 2.5  # the second winner was re-measured with the first in
    runs = (tmp_path / "runs.log").read_text().split()
    assert set(runs) == {"0-run", "1-run"} and len(runs) == 5  # 2 baselines, 2 candidates, 1 rerun on the new tip
    assert sorted(branch_log(repo)) == ["lower other", "lower value"]
    assert ag.detect_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert ag.detect_gpus({"CUDA_VISIBLE_DEVICES": ""}) == [None]


def test_command_agent_gets_the_prompt_and_edits_its_worktree(tmp_path):
    repo, inputs = make_repo(tmp_path)
    seen = tmp_path / "seen_prompt.md"
    agent = ag.CommandAgent(f"cat {{prompt}} > {seen} && sed -i 's/5.0/3.0/' params.py && echo 100 > bonus.local && "
                            "echo 'lower via sed' > \"$AUTORESEARCH_DESCRIPTION\"", timeout=30)
    run_dir = tmp_path / "run"
    ar.Research(toy_stage(tmp_path), agent, options(repo, inputs, run_dir, max_experiments=1)).run()
    rows = read_rows(run_dir)
    assert [(r["status"], r["description"]) for r in rows[2:]] == [("keep", "lower via sed")]
    assert float(rows[2]["metric"]) == 3.5  # the git-ignored file the agent left did not reach the measured run
    prompt = seen.read_text()
    assert "Make the score lower." in prompt and "params*.py" in prompt and "lower is better" in prompt
    assert re.search(r"^b1\t\w+\t5\.5\t", prompt, re.M)  # the results so far are in the prompt
    assert sh(repo, "show", "autoresearch/t:params.py") == "VALUE = 3.0"
    assert sh(repo, "show", "HEAD:params.py") == "VALUE = 5.0" and (repo / "params.py").read_text() == "VALUE = 5.0\n"


def test_openai_agent_against_a_local_server(tmp_path):
    repo, inputs = make_repo(tmp_path)
    diff = "".join(difflib.unified_diff(["VALUE = 5.0\n"], ["VALUE = 1.0\n"], "a/params.py", "b/params.py"))
    replies = [f"Here you go.\nDESCRIPTION: lower the value\n\n```diff\n{diff}```\nDone.",
               "I would rather not change anything.",
               "```diff\n--- a/params.py\n+++ b/params.py\n@@ -1 +1 @@\n-NOT THERE\n+VALUE = 0.0\n```"]
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append((self.path, self.headers.get("Authorization"), body))
            content = replies[len(requests) - 1]
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        stage = toy_stage(tmp_path)
        agent = ag.OpenAIAgent("tiny-model", f"http://127.0.0.1:{server.server_port}/v1", "sk-test", 30,
                               stage.editable)
        run_dir = tmp_path / "run"
        ar.Research(stage, agent, options(repo, inputs, run_dir, max_experiments=3)).run()
    finally:
        server.shutdown()
    rows = read_rows(run_dir)
    assert [r["status"] for r in rows[2:]] == ["keep", "reject", "reject"]
    assert rows[2]["description"] == "lower the value" and float(rows[2]["metric"]) == 1.5
    assert "no unified diff" in rows[3]["description"] and "git apply failed" in rows[4]["description"]
    path, auth, body = requests[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test" and body["model"] == "tiny-model"
    content = body["messages"][-1]["content"]
    assert "Make the score lower." in content and "### params.py\n```\nVALUE = 5.0" in content
    assert "### score.py" not in content  # only the editable files are sent
    assert branch_log(repo) == ["lower the value"]


def test_clear_errors_for_missing_prerequisites_and_commits(tmp_path):
    repo, inputs = make_repo(tmp_path)
    (inputs / "offset.txt").unlink()
    agent = ag.ReplayAgent(str(write_patches(tmp_path / "p", repo, [("x", "params.py", "VALUE = 1.0\n", True)])))
    with pytest.raises(FileNotFoundError, match=r"offset\.txt; make it with: python make_offset\.py"):
        ar.Research(toy_stage(tmp_path), agent, options(repo, inputs, tmp_path / "run"))
    empty = tmp_path / "empty"
    empty.mkdir()
    sh(empty, "init", "-q")
    (empty / "research").mkdir()
    (empty / "research" / "program.md").write_text("x")
    with pytest.raises(ValueError, match="no commit yet"):
        ar.Research(st.Stage("s", "true", "true", "m.json", "x", True, ["*"]), agent,
                    options(empty, inputs, tmp_path / "run2"))


def test_held_out_shard_is_seen_only_by_the_evaluation(tmp_path):
    """The stage's run reads the first shard under the validation shard's name and cannot plant a shard of its
    own; the evaluation reads the real validation shard, and gets the run's own seed for generated problems."""
    repo, inputs = make_repo(tmp_path)
    (inputs / "base_data").mkdir()
    for i, text in enumerate(["train0", "train1", "VAL"]):
        (inputs / "base_data" / f"shard_{i:05d}.parquet").write_text(text)
    last = "sorted(os.listdir(d))[-1]"
    command = ("{python} -c \"import os; b = os.environ['NANOCHAT_BASE_DIR']; d = os.path.join(b, 'base_data'); "
               f"open(os.path.join(b, 'seen.txt'), 'w').write(open(os.path.join(d, {last})).read()); "
               "open(os.path.join(d, 'shard_99999.parquet'), 'w').write('PLANTED')\"")
    evaluate = ("{python} -c \"import json, os; b = os.environ['NANOCHAT_BASE_DIR']; d = os.path.join(b, 'base_data'); "
                f"json.dump({{{{'val': open(os.path.join(d, {last})).read(), 'seen': open(os.path.join(b, 'seen.txt'))"
                ".read(), 'score': 1.0, 'seed': {eval_seed}}}, open(os.path.join(b, 'score.json'), 'w'))\"")
    stage = st.Stage("held", command, evaluate, "score.json", "score", True, ["params.py"], protected=["score.py"],
                     needs={"base_data": "make it"}, held_out="base_data")
    run_dir = tmp_path / "run"
    agent = ag.ReplayAgent(str(write_patches(tmp_path / "p", repo, [("x", "params.py", "VALUE = 1.0\n", True)])))
    ar.Research(stage, agent, options(repo, inputs, run_dir, baseline_runs=1, max_experiments=0)).run()
    seed = int((run_dir / "eval_seed").read_text())
    assert seed >= 10**6   # drawn for this run, not the public default (tasks/registry.py EVAL_SEED)
    assert json.loads((run_dir / "logs" / "b0.metrics.json").read_text()) == {"val": "VAL", "seen": "train0",
                                                                              "score": 1.0, "seed": seed}
    assert sorted(os.listdir(inputs / "base_data"))[-1] == "shard_00002.parquet"  # the user's folder untouched


def test_extract_diff_and_patch_descriptions(tmp_path):
    diff = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
    assert ag.extract_diff(f"text\n```python\nprint(1)\n```\n```diff\n{diff}```") == diff
    assert ag.extract_diff(f"no fence:\n{diff}") == diff
    assert ag.extract_diff("nothing here") == ""
    p = tmp_path / "0001.patch"
    p.write_text("From abc Mon Sep 17 00:00:00 2001\nSubject: [PATCH 1/2] fuse the qkv matmul\n\n" + diff)
    assert ag.patch_description(str(p)) == "fuse the qkv matmul"
    p.write_text(diff)
    assert ag.patch_description(str(p)) == "0001"


def test_builtin_stages_are_well_formed():
    files = _repo_files()
    for name, stage in st.STAGES.items():
        assert stage.name == name
        for cmd in (stage.command, stage.evaluate):
            cmd.format(python="python", budget="300", run_dir="/r", slot=0, metrics="/m.json", eval_seed=7)
        assert stage.evaluate and stage.protected
        for pattern in stage.editable + stage.protected:   # every glob names files this repo has
            assert any(st.fnmatch.fnmatchcase(p, pattern) for p in files), (name, pattern)
        # the evaluation's code is never editable, and every script a command runs is
        assert not [p for p in files if st.matches(p, stage.editable) and st.matches(p, stage.protected)], name
        for script in re.findall(r"-m (scripts\.\w+)", stage.command):
            assert st.matches(script.replace(".", "/") + ".py", stage.editable), (name, script)
        for script in re.findall(r"-m ((?:scripts|bench)\.\w+)", stage.evaluate):
            assert st.matches(script.replace(".", "/") + ".py", stage.protected), (name, script)
    assert st.lookup({"tasks": {"X": {"accuracy": 0.5}}}, "tasks.X.accuracy") == 0.5
    assert st.lookup({"tasks": {}}, "tasks.X.accuracy") is None


def _repo_files():
    out = []
    for d, dirs, files in os.walk(REPO_ROOT):
        dirs[:] = [x for x in dirs if not x.startswith(".") and x != "target"]
        out += [os.path.relpath(os.path.join(d, f), REPO_ROOT) for f in files]
    return out


@pytest.mark.slow
def test_engine_stage_metrics_from_the_real_benchmark(tmp_path):
    """bench/engine.py writes the engine stage's metric and an outputs digest that repeats run to run, and that
    changes with an attention 1% off or without the sliding windows: the guard sees the whole decode step."""
    stage = st.STAGES["engine"]
    flags = ["--depth", "2", "--vocab-size", "512", "--decode-steps", "4", "--batch-sizes", "1", "2", "--repeats", "1"]
    off = ("import sys, nanochat.gpt as g; f = g.cached_attention; "
           "g.cached_attention = lambda *a, **k: 1.01 * f(*a, **k); from bench.engine import main; main(sys.argv[1:])")
    no_windows = ("import sys, nanochat.gpt as g; f = g.GPT._cache_positions; "
                  "g.GPT._cache_positions = lambda *a: (*(r := f(*a))[:3], dict.fromkeys(r[3], r[3][None])); "
                  "from bench.engine import main; main(sys.argv[1:])")
    results = []
    for i, run in enumerate([["-m", "bench.engine"], ["-m", "bench.engine"], ["-c", off], ["-c", no_windows]]):
        path = tmp_path / f"engine{i}.json"
        subprocess.run([sys.executable, *run, *flags, "--json", str(path)], cwd=REPO_ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, check=True)
        results.append(json.loads(path.read_text()))
    assert all(st.lookup(r, stage.metric) > 0 for r in results)
    digests = [st.lookup(r, stage.guard) for r in results]
    assert digests[0] == digests[1] and len(set(digests)) == 3 and len(digests[0]) == 16
