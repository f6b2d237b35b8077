"""nanochat/core_eval.py and scripts/base_eval.py on small bundles written in the real format.

Two models: TriggerModel, whose logits the test controls so accuracies can be worked out by hand, and a
tiny random GPT, checked against a slow one-candidate-at-a-time reference. The tokenizer is bytes-only
(one token per byte), so token positions can be read straight off the text.
"""

import csv
import http.server
import json
import math
import os
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn as nn
import yaml

from nanochat.checkpoint import save_checkpoint
from nanochat.core_eval import (
    EVAL_BUNDLE_URL,
    EXAMPLE_SEPARATOR,
    centered_accuracy,
    download_eval_bundle,
    evaluate_core,
    evaluate_task,
    fewshot_indices,
    load_core_tasks,
    render_candidates,
    score_rows,
    tokenize_candidates,
)
from nanochat.gpt import GPT, GPTConfig
from nanochat.tokenizer import Tokenizer
from tests.dist_utils import REPO_ROOT, check_ok, run_torchrun


@pytest.fixture(scope="module")
def tok():
    return Tokenizer({bytes([i]): i for i in range(256)})


# -----------------------------------------------------------------------------
# Fixtures: a bundle in the real layout, and a model whose choices can be predicted by hand

def write_bundle(root, tasks):
    """tasks: [(core.yaml entry, random baseline %, examples)]. Returns root."""
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "core.yaml"), "w") as f:
        yaml.safe_dump({"icl_tasks": [entry for entry, _, _ in tasks]}, f)
    with open(os.path.join(root, "eval_meta_data.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Eval Task", "Task Category", "Task Type", "#shots", "Random baseline"])
        for entry, baseline, _ in tasks:
            w.writerow([entry["label"], "test", entry.get("icl_task_type"), entry.get("num_fewshot"), baseline])
    for entry, _, examples in tasks:   # .get: some tests break an entry on purpose
        path = os.path.join(root, "eval_data", entry.get("dataset_uri", entry["label"] + ".jsonl"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.writelines(json.dumps(ex) + "\n" for ex in examples)
    return root


def mc(q, choices, gold):
    return {"query": q, "choices": choices, "gold": gold}


# Hand-computed fixture for TriggerModel ('a' is the cheapest byte and the argmax; after a '!' in the
# row, 'z' is both). Expected accuracies are written next to each task.
HAND_TASKS = [
    ({"label": "mc", "dataset_uri": "multiple_choice/mc.jsonl", "num_fewshot": [2],
      "icl_task_type": "multiple_choice"}, 25.0, [
        mc("Q1?", ["aa", "bb"], 0),          # "aa" cheapest: correct
        mc("Q2?", ["bz", "aaa", "cc"], 1),   # "aaa": correct
        mc("Q3?", ["ab", "aa"], 0),          # "aa" (index 1): wrong
        mc("Q4?", ["a b", "cc"], 1),         # mean cost of "a b" < "cc": wrong      -> 2/4
    ]),
    ({"label": "schema", "dataset_uri": "schema/schema.jsonl", "num_fewshot": [0],
      "icl_task_type": "schema"}, 50.0, [
        {"context_options": ["It rained.", "It shone!"], "continuation": "zz", "gold": 1},  # '!' makes zz cheap
        {"context_options": ["Cold!", "Warm."], "continuation": "zzz", "gold": 1},          # picks 0: wrong
        {"context_options": ["Dry.", "Wet!"], "continuation": "z", "gold": 1},              # -> 2/3
    ]),
    ({"label": "lm", "dataset_uri": "language_modeling/lm.jsonl", "num_fewshot": [1],
      "icl_task_type": "language_modeling", "continuation_delimiter": "\nA: "}, 0.0, [
        {"context": "one", "continuation": "aaa"},   # greedy reproduces it
        {"context": "two", "continuation": "ab"},    # 'b' is not the argmax
        {"context": "three", "continuation": "a"},
        {"context": "four", "continuation": " a"},   # ' ' is not the argmax
        {"context": "five", "continuation": "aaaa"},  # -> 3/5
    ]),
]
HAND_ACCURACY = {"mc": 2 / 4, "schema": 2 / 3, "lm": 3 / 5}
HAND_CENTERED = {"mc": (0.5 - 0.25) / 0.75, "schema": (2 / 3 - 0.5) / 0.5, "lm": 0.6}


class TriggerModel(nn.Module):
    """Logits that ignore the context except for one thing: whether a '!' occurred at or before each position.
    Also checks the rows it is given never exceed its context length."""

    def __init__(self, sequence_len=512, vocab_size=265):
        super().__init__()
        self.config = SimpleNamespace(sequence_len=sequence_len, vocab_size=vocab_size)
        self.longest_row = 0

    def forward(self, idx):
        B, T = idx.shape
        assert T <= self.config.sequence_len, f"a row of {T} tokens, past the context {self.config.sequence_len}"
        self.longest_row = max(self.longest_row, T)
        logits = torch.zeros(B, T, self.config.vocab_size)
        logits[:, :, ord("a")] = 4.0
        seen = torch.cummax((idx == ord("!")).long(), dim=1).values.bool()   # (B, T)
        logits[:, :, ord("z")] += 8.0 * seen
        return logits


def tiny_gpt(sequence_len=64, seed=0):
    """A small GPT with every weight random (init_weights zeroes the output projections, which would make
    it ignore the context)."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(sequence_len=sequence_len, vocab_size=265, n_layer=2, n_head=2, n_kv_head=2, n_embd=32))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return model.eval()


# -----------------------------------------------------------------------------
# CORE on the hand-computed fixture

@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_core_matches_hand_computed(tmp_path, tok, batch_size):
    bundle = write_bundle(tmp_path / "bundle", HAND_TASKS)
    res = evaluate_core(TriggerModel(), tok, bundle, "cpu", batch_size=batch_size)
    assert res["accuracy"] == pytest.approx(HAND_ACCURACY)
    assert res["centered"] == pytest.approx(HAND_CENTERED)
    assert res["core"] == pytest.approx(sum(HAND_CENTERED.values()) / 3)


def test_evaluate_task_max_examples_and_ranks(tmp_path, tok):
    tasks = load_core_tasks(write_bundle(tmp_path / "bundle", HAND_TASKS))
    meta, examples = tasks[2]   # lm: correct, wrong, correct, wrong, correct
    model = TriggerModel()
    assert evaluate_task(model, tok, examples, meta, "cpu", max_examples=2) == 0.5
    # without a process group each rank counts only its own share: rank 1 of 2 sees examples 1 and 3
    assert evaluate_task(model, tok, examples, meta, "cpu", rank=1, world_size=2) == 0.0
    assert evaluate_task(model, tok, examples, meta, "cpu", rank=0, world_size=2) == 1.0


def test_centered_accuracy():
    assert centered_accuracy(0.25, 0.25) == 0.0
    assert centered_accuracy(1.0, 0.25) == 1.0
    assert centered_accuracy(0.0, 0.5) == -1.0


# -----------------------------------------------------------------------------
# Prompts

def test_fewshot_indices_are_deterministic_and_exclude_the_example():
    n = 30
    for idx in range(n):
        picks = fewshot_indices(n, idx, 5)
        assert picks == fewshot_indices(n, idx, 5)       # same on every call (and so on every rank)
        assert idx not in picks and len(set(picks)) == 5 and all(0 <= j < n for j in picks)
    assert sorted(fewshot_indices(4, 2, 3)) == [0, 1, 3]  # k = n - 1: all the others
    assert len({tuple(fewshot_indices(n, i, 5)) for i in range(n)}) > n // 2   # examples differ
    with pytest.raises(ValueError):   # random.sample: more than the other examples
        fewshot_indices(4, 0, 4)


def test_render_candidates_formats():
    mcs = [mc(f"q{i}", [f"x{i}", f"y{i}"], i % 2) for i in range(6)]
    meta = {"task_type": "multiple_choice", "num_fewshot": 2, "continuation_delimiter": " => "}
    for idx in range(6):
        j, k = fewshot_indices(6, idx, 2)
        head = (f"q{j} => {mcs[j]['choices'][j % 2]}{EXAMPLE_SEPARATOR}"
                f"q{k} => {mcs[k]['choices'][k % 2]}{EXAMPLE_SEPARATOR}")
        prefix = head + f"q{idx} => "
        assert render_candidates(mcs, idx, meta) == [(prefix, prefix + f"x{idx}"), (prefix, prefix + f"y{idx}")]
        assert f"q{idx} " not in head   # never its own few-shot example

    schemas = [{"context_options": [f"a{i}", f"b{i}"], "continuation": f"c{i}", "gold": 1} for i in range(3)]
    meta = {"task_type": "schema", "num_fewshot": 1, "continuation_delimiter": " "}
    (j,) = fewshot_indices(3, 0, 1)
    head = f"b{j} c{j}{EXAMPLE_SEPARATOR}"
    assert render_candidates(schemas, 0, meta) == [(head + "a0 ", head + "a0 c0"), (head + "b0 ", head + "b0 c0")]

    lms = [{"context": f"ctx{i}", "continuation": f"cont{i}"} for i in range(3)]
    meta = {"task_type": "language_modeling", "num_fewshot": 0, "continuation_delimiter": ""}
    assert render_candidates(lms, 1, meta) == [("ctx1", "ctx1cont1")]


def test_tokenize_candidates_crops_from_the_left(tok):
    bos = tok.get_bos_token_id()
    prefix = "a long few-shot prompt that will not fit " * 3
    full = prefix + "the answer"
    ids_full = [bos] + list(full.encode())
    [(ids, start)] = tokenize_candidates(tok, [(prefix, full)], max_len=10_000)
    assert ids == ids_full and bytes(ids[start:]) == b"the answer"
    [(ids, start)] = tokenize_candidates(tok, [(prefix, full)], max_len=16)
    assert ids == ids_full[-16:] and bytes(ids[start:]) == b"the answer"    # the continuation is kept
    # a continuation longer than the context: its start goes too, the rest is scored from position 1
    [(ids, start)] = tokenize_candidates(tok, [(prefix, full)], max_len=6)
    assert ids == ids_full[-6:] and start == 1
    with pytest.raises(ValueError, match="no continuation"):
        tokenize_candidates(tok, [("same", "same")], max_len=64)


def test_left_cropping_changes_what_the_model_sees(tmp_path, tok):
    # The '!' that makes "zz" the greedy continuation sits 40 bytes before it: a model with a context of 64
    # sees it, one with a context of 16 gets only the cropped tail and must fail (and never sees > 16 tokens).
    examples = [{"context": "!" + "." * 40, "continuation": "zz"}, {"context": "other", "continuation": "a"}]
    meta = {"label": "crop", "task_type": "language_modeling", "num_fewshot": 0, "continuation_delimiter": " "}
    assert evaluate_task(TriggerModel(64), tok, examples, meta, "cpu", max_examples=1) == 1.0
    short = TriggerModel(16)
    assert evaluate_task(short, tok, examples, meta, "cpu", max_examples=1) == 0.0
    assert short.longest_row == 16


# -----------------------------------------------------------------------------
# Batched scoring vs a slow reference

def reference_scores(model, tok, pairs, max_len):
    """One row at a time, bytes tokenizer: the continuation is exactly the bytes after the prefix."""
    out = []
    for prefix, full in pairs:
        ids = [tok.get_bos_token_id()] + list(full.encode())
        start = 1 + len(prefix.encode())
        cut = max(0, len(ids) - max_len)
        ids, start = ids[cut:], max(1, start - cut)
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids]))[0], dim=-1)
        losses = [-logp[t - 1, ids[t]].item() for t in range(start, len(ids))]
        hits = [int(logp[t - 1].argmax()) == ids[t] for t in range(start, len(ids))]
        out.append((sum(losses) / len(losses), all(hits)))
    return out


def reference_accuracy(model, tok, examples, meta):
    correct = 0
    for idx, ex in enumerate(examples):
        scores = reference_scores(model, tok, render_candidates(examples, idx, meta), model.config.sequence_len)
        if meta["task_type"] == "language_modeling":
            correct += scores[0][1]
        else:
            losses = [s[0] for s in scores]
            correct += losses.index(min(losses)) == ex["gold"]
    return correct / len(examples)


def varied_tasks():
    """Text of varied lengths, so batches get padding and some rows get cropped (sequence_len 64)."""
    words = "the cat sat on a mat while rain fell over quiet hills and rivers ran".split()
    w = lambda i, n: " ".join(words[(i * 7 + k) % len(words)] for k in range(n))
    mcq = [mc(w(i, 3 + i % 5), [w(i + c, 1 + (i + c) % 4) for c in range(2 + i % 3)], i % 2) for i in range(9)]
    sch = [{"context_options": [w(i, 2 + i % 3), w(i + 1, 4)], "continuation": w(i + 2, 2), "gold": i % 2}
           for i in range(7)]
    lms = [{"context": w(i, 2 + i % 6), "continuation": w(i + 3, 1 + i % 2)} for i in range(8)]
    return [
        ({"task_type": "multiple_choice", "num_fewshot": 2, "continuation_delimiter": " Answer: ", "label": "m"}, mcq),
        ({"task_type": "schema", "num_fewshot": 1, "continuation_delimiter": " ", "label": "s"}, sch),
        ({"task_type": "language_modeling", "num_fewshot": 3, "continuation_delimiter": "\n", "label": "l"}, lms),
    ]


@pytest.fixture(scope="module")
def gpt_and_reference(tok):
    """The tiny GPT and its reference accuracy on each of varied_tasks(), computed once."""
    model = tiny_gpt()
    return model, {meta["label"]: reference_accuracy(model, tok, exs, meta) for meta, exs in varied_tasks()}


def greedy_extend(model, ids, n):
    with torch.no_grad():
        for _ in range(n):
            ids = ids + [int(model(torch.tensor([ids[-model.config.sequence_len:]]))[0, -1].argmax())]
    return ids


def test_score_rows_matches_reference(tok, gpt_and_reference):
    model, _ = gpt_and_reference
    pairs = [p for meta, exs in varied_tasks() for i in range(len(exs)) for p in render_candidates(exs, i, meta)]
    rows = tokenize_candidates(tok, pairs, model.config.sequence_len)
    assert any(len(ids) == 64 for ids, _ in rows) and len({len(ids) for ids, _ in rows}) > 5  # crops, padding
    # rows whose continuation is the model's own greedy output (all hit), and the same with one token changed
    greedy = [greedy_extend(model, ids[:start], 3) for ids, start in rows[:6]]
    changed = [g[:-1] + [(g[-1] + 1) % 256] for g in greedy]
    rows += [(g, len(g) - 3) for g in greedy + changed]
    mean_loss, all_hit = score_rows(model, rows, "cpu", pad_id=tok.get_bos_token_id())
    ref = reference_scores(model, tok, pairs, model.config.sequence_len)
    assert mean_loss[:len(pairs)] == pytest.approx([r[0] for r in ref], rel=1e-5, abs=1e-5)
    assert all_hit == [r[1] for r in ref] + [True] * 6 + [False] * 6
    # the greedy rows one at a time, as a check on padding: same losses alone as in the batch
    alone = [score_rows(model, [r], "cpu")[0][0] for r in rows[len(pairs):]]
    assert mean_loss[len(pairs):] == pytest.approx(alone, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("batch_size", [1, 4, 256])
def test_evaluate_task_matches_reference(tok, gpt_and_reference, batch_size):
    model, expected = gpt_and_reference
    for meta, examples in varied_tasks():
        got = evaluate_task(model, tok, examples, meta, "cpu", batch_size=batch_size)
        assert got == expected[meta["label"]], meta["label"]


class LettersOnly(nn.Module):
    """The tiny GPT restricted to lowercase letters, so its greedy continuations are plain text."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def forward(self, idx):
        logits = self.model(idx)
        allowed = torch.zeros(logits.size(-1), dtype=torch.bool)
        allowed[ord("a"):ord("z") + 1] = True
        return logits - 100.0 * ~allowed


def test_language_modeling_needs_the_whole_greedy_continuation(tok):
    model = LettersOnly(tiny_gpt())
    bos = tok.get_bos_token_id()
    greedy = bytes(greedy_extend(model, [bos] + list(b"the cat: "), 4)[-4:]).decode()
    meta = {"label": "g", "task_type": "language_modeling", "num_fewshot": 0, "continuation_delimiter": ": "}
    ok = {"context": "the cat", "continuation": greedy}
    for wrong in (greedy[:3] + ("b" if greedy[3] == "a" else "a"), ("b" if greedy[0] == "a" else "a") + greedy[1:]):
        examples = [ok, {"context": "the cat", "continuation": wrong}]
        assert evaluate_task(model, tok, examples, meta, "cpu") == 0.5


# -----------------------------------------------------------------------------
# The bundle: download, locking, malformed input

def make_zip(tmp_path, top_folder="eval_bundle", tasks=HAND_TASKS):
    src = write_bundle(tmp_path / "src" / top_folder, tasks)
    zip_path = tmp_path / "eval_bundle.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for dirpath, _, files in os.walk(src):
            for name in files:
                full = os.path.join(dirpath, name)
                zf.write(full, os.path.relpath(full, tmp_path / "src"))
    return str(zip_path)


def test_download_from_local_zip_by_racing_threads(tmp_path):
    zip_path = make_zip(tmp_path)
    base = tmp_path / "base"
    with ThreadPoolExecutor(4) as pool:
        dirs = list(pool.map(lambda _: download_eval_bundle(str(base), zip_path), range(4)))
    assert dirs == [str(base / "eval_bundle")] * 4
    assert [m["label"] for m, _ in load_core_tasks(dirs[0])] == ["mc", "schema", "lm"]
    assert sorted(os.listdir(base)) == ["eval_bundle", "eval_bundle.lock"]   # no temp dirs left, no zip copy
    assert os.path.exists(zip_path)                                          # the user's zip is left alone
    # idempotent: a second call finds the bundle and unpacks nothing
    marker = base / "eval_bundle" / "marker"
    marker.write_text("kept")
    assert download_eval_bundle(str(base), zip_path) == str(base / "eval_bundle")
    assert marker.read_text() == "kept"


def _python(code, *args):
    """A fresh interpreter (not a fork of this threaded pytest process) running `code` with sys.argv[1:] = args."""
    import subprocess
    import sys
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(procs, timeout=120):
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-2000:]
        outs.append(out)
    return outs


def test_download_by_racing_processes(tmp_path):
    zip_path = make_zip(tmp_path, top_folder="")   # files at the zip's top level work too
    base = str(tmp_path / "base")
    code = "import sys; from nanochat.core_eval import download_eval_bundle as d; print(d(*sys.argv[1:]))"
    dirs = [out.strip() for out in _finish([_python(code, base, zip_path) for _ in range(3)])]
    assert dirs == [os.path.join(base, "eval_bundle")] * 3
    assert len(load_core_tasks(dirs[0])) == 3
    assert sorted(os.listdir(base)) == ["eval_bundle", "eval_bundle.lock"]


def test_file_lock_excludes_other_processes(tmp_path):
    # each holder writes "in", waits, writes "out": under the lock the log never shows two "in"s in a row
    code = ("import sys, time; from nanochat.common import file_lock\n"
            "with file_lock(sys.argv[1]):\n"
            "    open(sys.argv[2], 'a').write('in\\n'); time.sleep(0.2); open(sys.argv[2], 'a').write('out\\n')")
    log = tmp_path / "log"
    _finish([_python(code, tmp_path / "x.lock", log) for _ in range(3)])
    assert log.read_text().split() == ["in", "out"] * 3


def test_download_over_http_and_offline_error(tmp_path):
    zip_path = make_zip(tmp_path)
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **kw)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{os.path.basename(zip_path)}"
        base = tmp_path / "base"
        assert download_eval_bundle(str(base), url) == str(base / "eval_bundle")
        assert sorted(os.listdir(base)) == ["eval_bundle", "eval_bundle.lock"]   # downloaded zip removed
        with pytest.raises(ConnectionError, match="eval_bundle.zip") as e:
            download_eval_bundle(str(tmp_path / "base2"), url.replace("eval_bundle.zip", "missing.zip"))
        assert EVAL_BUNDLE_URL in str(e.value) and not os.path.exists(tmp_path / "base2" / "eval_bundle")
    finally:
        server.shutdown()
        server.server_close()


def test_download_rejects_bad_zips(tmp_path):
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("hello")
    with pytest.raises(ValueError, match="not a zip file"):
        download_eval_bundle(str(tmp_path / "b1"), str(not_zip))
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "no bundle here")
    with pytest.raises(ValueError, match="no core.yaml"):
        download_eval_bundle(str(tmp_path / "b2"), str(empty))
    assert os.listdir(tmp_path / "b2") == ["eval_bundle.lock"]   # nothing half-unpacked left behind
    with pytest.raises(FileNotFoundError, match="does not exist"):
        download_eval_bundle(str(tmp_path / "b3"), str(tmp_path / "nowhere.zip"))


def test_unpacked_directory_is_used_in_place(tmp_path):
    bundle = write_bundle(tmp_path / "bundle", HAND_TASKS)
    assert download_eval_bundle(str(tmp_path / "base"), str(bundle)) == str(bundle)
    os.remove(os.path.join(bundle, "eval_meta_data.csv"))
    with pytest.raises(FileNotFoundError, match="eval_meta_data.csv"):
        download_eval_bundle(str(tmp_path / "base"), str(bundle))


def _broken(tasks_edit):
    tasks = [(dict(e), b, [dict(x) for x in exs]) for e, b, exs in HAND_TASKS]
    tasks_edit(tasks)
    return tasks


@pytest.mark.parametrize("edit, error", [
    (lambda t: t[0][0].update(icl_task_type="cloze"), "icl_task_type 'cloze'"),
    (lambda t: t[1][0].update(num_fewshot=[1, 2]), "num_fewshot must be one"),
    (lambda t: t[0][0].pop("dataset_uri"), "no 'dataset_uri'"),
    (lambda t: t[0][2][1].update(gold=3), r"mc.jsonl:2: gold=3 is out of range"),
    (lambda t: t[1][2][0].pop("continuation"), r"schema.jsonl:1: .* needs 'continuation'"),
    (lambda t: t[2][2][0].update(continuation=""), "empty continuation"),
    (lambda t: t[0][0].update(num_fewshot=[4]), "too few for 4 few-shot"),
])
def test_malformed_bundles_are_rejected(tmp_path, edit, error):
    bundle = write_bundle(tmp_path / "bundle", _broken(edit))
    with pytest.raises(ValueError, match=error):
        load_core_tasks(bundle)


def test_malformed_files_are_rejected(tmp_path):
    bundle = write_bundle(tmp_path / "bundle", HAND_TASKS)
    lm_path = os.path.join(bundle, "eval_data", "language_modeling", "lm.jsonl")
    with open(lm_path, "a") as f:
        f.write("{not json\n")
    with pytest.raises(ValueError, match=r"lm.jsonl:6: invalid JSON"):
        load_core_tasks(bundle)
    os.remove(lm_path)
    with pytest.raises(FileNotFoundError, match="lm.jsonl is missing"):
        load_core_tasks(bundle)
    with open(os.path.join(bundle, "eval_meta_data.csv"), "w") as f:
        f.write("Eval Task,Random baseline\nmc,25\n")
    with pytest.raises(ValueError, match="task 'schema' has no row in eval_meta_data.csv"):
        load_core_tasks(bundle)
    with open(os.path.join(bundle, "core.yaml"), "w") as f:
        f.write("tasks: []\n")
    with pytest.raises(ValueError, match="icl_tasks"):
        load_core_tasks(bundle)
    with pytest.raises(FileNotFoundError, match="lacks core.yaml"):
        load_core_tasks(str(tmp_path))


# -----------------------------------------------------------------------------
# scripts/base_eval.py, in-process and under torchrun

@pytest.fixture
def base_dir_with_model(tmp_path, tok, monkeypatch):
    base = tmp_path / "nanochat"
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(base))
    tok.save(str(base / "tokenizer"))
    model = tiny_gpt()
    save_checkpoint(str(base / "base_checkpoints" / "t1"), 7, model.state_dict(), {},
                    {"model_config": asdict(model.config)})
    os.makedirs(base / "base_data")
    for s in range(2):
        docs = [f"document {s}-{i}: the cat sat on the mat. " * (1 + i % 3) for i in range(24)]
        pq.write_table(pa.table({"text": docs}), base / "base_data" / f"shard_{s:05d}.parquet", row_group_size=6)
    bundle = write_bundle(tmp_path / "bundle", [(e, b, exs) for e, b, exs in _varied_bundle_tasks()])
    return base, bundle, model


def _varied_bundle_tasks():
    baselines = {"m": 30.0, "s": 50.0, "l": 0.0}
    return [({"label": meta["label"], "dataset_uri": f"{meta['task_type']}/{meta['label']}.jsonl",
              "num_fewshot": [meta["num_fewshot"]], "icl_task_type": meta["task_type"],
              "continuation_delimiter": meta["continuation_delimiter"]}, baselines[meta["label"]], exs)
            for meta, exs in varied_tasks()]


SCRIPT_ARGS = ["--device-type=cpu", "--eval-tokens=512", "--device-batch-size=2", "--sample-tokens=2",
               "--batch-size=5"]


def read_core_csv(base):
    with open(base / "eval" / "base_core.csv") as f:
        return list(csv.DictReader(f))


def test_base_eval_script(base_dir_with_model, tok, capsys):
    from nanochat.report import get_report
    from scripts.base_eval import main
    base, bundle, model = base_dir_with_model
    summary = main(SCRIPT_ARGS + [f"--eval-bundle={bundle}"])
    out = capsys.readouterr().out.strip().splitlines()
    expected = evaluate_core(model, tok, bundle, "cpu")
    assert out[-1] == f"core: {expected['core']:.6f}"
    rows = read_core_csv(base)
    assert [r["task"] for r in rows] == ["m", "s", "l", "CORE"]
    for r in rows[:-1]:
        assert float(r["accuracy"]) == pytest.approx(expected["accuracy"][r["task"]], abs=1e-6)
        assert float(r["centered"]) == pytest.approx(expected["centered"][r["task"]], abs=1e-6)
    report = get_report(str(base)).read("Base model evaluation")
    assert report["core"] == pytest.approx(expected["core"]) and report["step"] == 7
    assert math.isfinite(summary["train_bpb"]) and math.isfinite(summary["val_bpb"])


def test_base_eval_fits_its_batches_to_a_small_gpu(base_dir_with_model, tok, monkeypatch, capsys):
    """On a simulated GPU that holds 1 row, the bpb batch (2) and the CORE batch (5) fit themselves to 1; the
    numbers stay the same."""
    from scripts.base_eval import main
    base, bundle, model = base_dir_with_model
    monkeypatch.setenv("NANOCHAT_SIMULATE_GPU_ROWS", "1")
    summary = main(SCRIPT_ARGS + [f"--eval-bundle={bundle}"])
    out = capsys.readouterr().out
    assert "--device-batch-size 2 does not fit in GPU memory: using 1" in out
    assert "--batch-size 5 does not fit in GPU memory: using 1" in out
    assert summary["core"] == pytest.approx(evaluate_core(model, tok, bundle, "cpu")["core"])


@pytest.mark.slow   # two torchrun workers importing torch on a shared 2-core box: ~15 s
def test_base_eval_under_torchrun_matches_one_process(base_dir_with_model):
    from scripts.base_eval import main
    base, bundle, _ = base_dir_with_model
    main(SCRIPT_ARGS + [f"--eval-bundle={bundle}"])
    one = read_core_csv(base)
    proc = run_torchrun(["-m", "scripts.base_eval"] + SCRIPT_ARGS + [f"--eval-bundle={bundle}"], nproc=2,
                        extra_env={"NANOCHAT_BASE_DIR": str(base)})
    check_ok(proc)
    assert read_core_csv(base) == one
    assert proc.stdout.strip().splitlines()[-1] == f"core: {float(one[-1]['centered']):.6f}"
