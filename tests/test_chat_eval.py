"""nanochat/chat_eval.py and scripts/chat_eval.py.

Categorical scoring is checked against a slow one-question-at-a-time forward pass, and on a model whose logits
the test controls (so the accuracy is worked out by hand); generative scoring and pass@k on bigram models that
script their replies; then the script end to end on local data files, in one process and under torchrun.
The tokenizer is bytes-only, so every answer letter is one token and nothing needs training.
"""

import csv
import json
import os
import random
import subprocess
import sys
from dataclasses import asdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from nanochat.chat_eval import (
    any_passes,
    centered_accuracy,
    evaluate_task,
    predict_letters,
    run_chat_eval,
)
from nanochat.checkpoint import save_checkpoint
from nanochat.engine import Engine
from nanochat.report import get_report
from tasks.common import MultipleChoice, Task, mc_conversation
from tests.dist_utils import REPO_ROOT, check_ok, run_torchrun
from tests.engine_utils import bigram_model, byte_tokenizer, chain, random_model

TOK = byte_tokenizer()
S = TOK.special_ids
A_START, A_END = S["<|assistant_start|>"], S["<|assistant_end|>"]


class ListChoice(MultipleChoice):
    """Multiple-choice questions given as (question, choices, gold index) rows."""

    def __init__(self, rows, **view):
        self.rows = rows
        super().__init__(name="ListChoice", **view)

    def conversation(self, row):
        return mc_conversation(*row)


class SayTask(Task):
    """Generative: problem "say X" passes when the reply is exactly X."""

    def __init__(self, golds):
        self.rows = golds
        super().__init__(name="SayTask")

    def conversation(self, gold):
        return {"messages": [{"role": "user", "content": f"say {gold}"}, {"role": "assistant", "content": gold}],
                "gold": gold}

    def evaluate(self, conversation, completion):
        return 1.0 if completion == conversation["gold"] else 0.0


def varied_questions(n, seed=0):
    """Questions of 0 to 60 words with 2 to 5 choices: prompts of very different lengths, one past 256 tokens."""
    rng = random.Random(seed)
    words = "the cat sat on a mat while red birds sang over quiet hills near water".split()
    rows = []
    for i in range(n):
        question = " ".join(rng.choice(words) for _ in range(rng.randint(0, 60 if i else 120))) + "?"
        choices = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(2, 5))]
        rows.append((question, choices, rng.randrange(len(choices))))
    return rows


def reference_letter(model, conversation):
    """Slow and obviously right: this prompt alone, full forward, argmax over the allowed letters' logits."""
    ids = TOK.render_for_completion(conversation)[-model.config.sequence_len:]
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0, -1]
    letters = conversation["letters"]
    return letters[int(logits[[TOK.encode(letter)[0] for letter in letters]].argmax())]


@pytest.fixture(scope="module")
def gpt():
    return random_model(seed=3, sequence_len=256)


# ----------------------------------------------------------------------------- categorical

@pytest.mark.parametrize("batch_size", [1, 4, 16])
def test_batched_letters_match_one_at_a_time(gpt, batch_size):
    task = ListChoice(varied_questions(12))
    conversations = list(task)
    lengths = [len(TOK.render_for_completion(c)) for c in conversations]
    assert max(lengths) > gpt.config.sequence_len and min(lengths) < 130  # cropping and heavy padding both occur
    expected = [reference_letter(gpt, c) for c in conversations]
    assert len(set(expected)) > 2  # the model does not answer the same letter everywhere
    got = []
    for i in range(0, len(conversations), batch_size):
        got += predict_letters(gpt, TOK, conversations[i:i + batch_size], "cpu")
    assert got == expected
    r = evaluate_task(task, gpt, TOK, batch_size=batch_size)
    golds = [c["messages"][-1]["content"] for c in conversations]
    assert r["correct"] == sum(g == e for g, e in zip(golds, expected)) and r["total"] == 12
    assert r["baseline"] == pytest.approx(sum(1 / len(c["letters"]) for c in conversations) / 12)


class LetterModel(nn.Module):
    """Logits the test controls: right after <|assistant_start|> (the last prompt token) D=5, B=3, A=1, others 0;
    at every other position 'A' = 9. So reading the logits anywhere but the last real position answers A."""

    def __init__(self, sequence_len=512, vocab_size=265):
        super().__init__()
        self.config = SimpleNamespace(sequence_len=sequence_len, vocab_size=vocab_size)

    def forward(self, idx):
        B, T = idx.shape
        logits = torch.zeros(B, T, self.config.vocab_size)
        at_answer = idx == A_START
        logits[..., ord("A")] = torch.where(at_answer, 1.0, 9.0)
        logits[..., ord("B")] = 3.0 * at_answer
        logits[..., ord("D")] = 5.0 * at_answer
        return logits


def test_controlled_model_gives_hand_computed_accuracy():
    rows = [
        ("Short?", ["a", "b", "c", "d"], 3),                        # D allowed: answers D, right
        ("A much longer question, padded less?", ["a", "b", "c", "d"], 1),  # D, wrong
        ("Three?", ["a", "b", "c"], 1),                             # D not offered: B, right
        ("Two choices only, and a long question to pad the others?", ["a", "b"], 0),  # B, wrong
        ("Three again?", ["a", "b", "c"], 0),                       # B, wrong
    ]
    for batch_size in (1, 2, 5):
        results = run_chat_eval(LetterModel(), TOK, {"mc": ListChoice(rows)}, device="cpu", batch_size=batch_size)
        assert results["accuracy"]["mc"] == pytest.approx(2 / 5)
        assert results["correct"]["mc"] == 2 and results["total"]["mc"] == 5
        baseline = (1 / 4 + 1 / 4 + 1 / 3 + 1 / 2 + 1 / 3) / 5  # = 1/3
        assert results["baseline"]["mc"] == pytest.approx(baseline)
        assert results["centered"]["mc"] == pytest.approx((0.4 - 1 / 3) / (2 / 3))  # = 0.1
        assert results["chatcore"] == pytest.approx(0.1)
    # max_problems takes the first problems only: D right, D wrong, B right
    assert run_chat_eval(LetterModel(), TOK, {"mc": ListChoice(rows)}, device="cpu",
                         max_problems=3)["accuracy"]["mc"] == pytest.approx(2 / 3)


def test_ranks_split_the_problems():
    rows = [("q?", ["a", "b", "c", "d"], i % 4) for i in range(7)]  # gold D at 3: only problem 3 is right
    task = ListChoice(rows)
    parts = [evaluate_task(task, LetterModel(), TOK, rank=r, world_size=3) for r in range(3)]
    # without a process group nothing is summed: rank r scores problems r, r+3, ...
    assert [p["total"] for p in parts] == [3, 2, 2] and [p["correct"] for p in parts] == [1, 0, 0]


def test_letters_must_be_single_tokens():
    from nanochat.chat_eval import letter_token_ids
    assert letter_token_ids(TOK, ["A", "B"]) == [65, 66]
    with pytest.raises(ValueError, match="'AB' encodes to 2 tokens"):
        letter_token_ids(TOK, ["AB"])


# ----------------------------------------------------------------------------- generative and pass@k

def test_pass_at_k_hand_made():
    task = SayTask(["yes"])
    conversation = task.get(0)
    assert any_passes(task, conversation, ["no", "yes", "maybe"]) == 1.0
    assert any_passes(task, conversation, ["no", "maybe"]) == 0.0
    assert any_passes(task, conversation, ["yes"]) == 1.0

    checked = []

    class Counting(SayTask):
        def evaluate(self, conversation, completion):
            checked.append(completion)
            return super().evaluate(conversation, completion)

    any_passes(Counting(["yes"]), conversation, ["no", "yes", "never checked"])
    assert checked == ["no", "yes"]  # stops at the first pass


def coin_model():
    """After <|assistant_start|>, '7' and '8' are equally likely (greedy picks '7', the lower id); either ends
    the reply. A reply is one of "7" and "8", so pass@k of "say 8" is 1 - 2^-k in expectation."""
    model = bigram_model({A_START: ord("7"), ord("7"): A_END, ord("8"): A_END})
    k = sorted([A_START, ord("7"), ord("8")]).index(A_START)  # the basis vector bigram_model gave A_START
    with torch.no_grad():
        model.lm_head.weight[ord("8"), k] = model.lm_head.weight[ord("7"), k]
    return model


def test_generative_greedy_and_pass_at_k_through_the_engine():
    model = coin_model()
    task = SayTask(["7", "8", "9", "8"])
    greedy = run_chat_eval(model, TOK, {"say": task}, batch_size=3)
    assert greedy["accuracy"]["say"] == pytest.approx(1 / 4)  # always "7"
    assert greedy["baseline"]["say"] == 0 and greedy["centered"]["say"] == pytest.approx(1 / 4)
    sampled = run_chat_eval(model, TOK, {"say": task}, batch_size=3, num_samples=8, temperature=1.0, seed=5)
    assert sampled["accuracy"]["say"] == pytest.approx(3 / 4)  # 7 and both 8s pass among 8 coin flips; 9 never
    one = run_chat_eval(model, TOK, {"say": task}, batch_size=3, num_samples=1, temperature=1.0, seed=5)
    assert one["correct"]["say"] in (1, 2, 3)
    # the seeds follow the problem index, not the batch: any batch size gives the same result
    again = run_chat_eval(model, TOK, {"say": task}, batch_size=1, num_samples=8, temperature=1.0, seed=5)
    assert again == sampled


def test_calculator_calls_run_during_generative_eval():
    py_start, py_end, out_end = S["<|python_start|>"], S["<|python_end|>"], S["<|output_end|>"]
    transitions = chain(A_START, py_start, "3*4", py_end)
    transitions[out_end] = A_END
    model = bigram_model(transitions)

    class ToolAnswer(SayTask):
        def evaluate(self, conversation, completion):
            return 1.0 if completion.endswith("<|output_start|>" + conversation["gold"] + "<|output_end|>") else 0.0

    engine = Engine(model, TOK, max_batch_size=2)
    results = run_chat_eval(model, TOK, {"tool": ToolAnswer(["12", "13"])}, engine, max_new_tokens=32)
    assert results["correct"]["tool"] == 1  # the engine evaluated 3*4 and forced "12"


def test_chatcore_centering():
    assert centered_accuracy(0.25, 0.25) == 0
    assert centered_accuracy(1.0, 0.25) == 1
    assert centered_accuracy(0.5, 0.25) == pytest.approx(1 / 3)
    assert centered_accuracy(0.1, 0.25) == pytest.approx(-0.2)  # below chance is negative
    assert centered_accuracy(0.3, 0.0) == pytest.approx(0.3)  # generative: centered = accuracy
    with pytest.raises(AssertionError):   # the CLI and SFT always name at least one task
        run_chat_eval(LetterModel(), TOK, {}, device="cpu")


def test_mixed_tasks_chatcore():
    rows = [("q?", ["a", "b", "c", "d"], 3), ("q?", ["a", "b", "c", "d"], 0)]
    model = coin_model()
    engine = Engine(model, TOK)

    class Both(nn.Module):  # LetterModel for the forward pass, the coin model's config for the engine
        config = model.config

        def forward(self, idx):
            return LetterModel(vocab_size=model.config.vocab_size)(idx)

    results = run_chat_eval(Both(), TOK, {"mc": ListChoice(rows), "say": SayTask(["7", "9"])}, engine, device="cpu")
    assert results["accuracy"] == {"mc": 0.5, "say": 0.5}
    assert results["centered"]["mc"] == pytest.approx(1 / 3) and results["centered"]["say"] == 0.5
    assert results["chatcore"] == pytest.approx((1 / 3 + 0.5) / 2)


# ----------------------------------------------------------------------------- scripts/chat_eval.py

def write_jsonl(path, rows):
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def write_task_files(d):
    os.makedirs(d, exist_ok=True)
    write_jsonl(d / "ARC-Easy.jsonl", [
        {"id": f"e{i}", "question": q, "choices": {"text": ch, "label": list("ABCDE"[:len(ch)])},
         "answerKey": "ABCDE"[g]} for i, (q, ch, g) in enumerate(varied_questions(5, seed=1))])
    write_jsonl(d / "MMLU.jsonl", [
        {"question": q, "subject": "birds", "choices": (ch * 4)[:4], "answer": g % 4}
        for q, ch, g in varied_questions(4, seed=2)])
    write_jsonl(d / "GSM8K.jsonl", [{"question": "Tom has 2 apples and buys 3. How many now?",
                                     "answer": "2+3=<<2+3=5>>5\n#### 5"}] * 2)
    write_jsonl(d / "HumanEval.jsonl", [{"task_id": "t/0", "prompt": "def f(x):\n", "entry_point": "f",
                                         "canonical_solution": "    return x\n",
                                         "test": "def check(f):\n    assert f(1) == 1\n"}])


@pytest.fixture(scope="module")
def chat_base(tmp_path_factory, gpt):
    base = tmp_path_factory.mktemp("chat")
    TOK.save(str(base / "tokenizer"))
    save_checkpoint(str(base / "chatsft_checkpoints" / "t1"), 5, gpt.state_dict(), {},
                    {"model_config": asdict(gpt.config)})
    write_task_files(base / "data")
    return base


SCRIPT_TASKS = "ARC-Easy,MMLU,GSM8K,HumanEval,SpellingBee,SyntheticMathChoice,SyntheticMath"


def script_args(base):
    return ["-i", "sft", "-a", SCRIPT_TASKS, "--max-problems=3", "--max-new-tokens=6", "--batch-size=2",
            "--device-type=cpu", f"--data-dir={base / 'data'}"]


def test_script_end_to_end(chat_base, gpt, monkeypatch, capsys):
    from scripts.chat_eval import main
    from tasks.registry import build_tasks
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(chat_base))
    main(script_args(chat_base))
    out = capsys.readouterr().out.strip().splitlines()
    with open(chat_base / "eval" / "chat_sft.json") as f:
        saved = json.load(f)
    assert out[-1] == f"chatcore: {saved['chatcore']:.6f}"
    assert sorted(saved["tasks"]) == sorted(SCRIPT_TASKS.split(","))
    assert saved["step"] == 5 and saved["model_tag"] == "t1" and saved["world_size"] == 1 and saved["eval_seed"] == 1000
    tasks = build_tasks(SCRIPT_TASKS.split(","), chat_base / "data")
    for name, r in saved["tasks"].items():
        assert r["total"] == min(3, len(tasks[name]))
        assert r["eval_type"] == tasks[name].eval_type
        if r["eval_type"] == "categorical":  # the numbers are the slow reference's
            convs = [tasks[name].get(i) for i in range(r["total"])]
            right = sum(reference_letter(gpt, c) == c["messages"][-1]["content"] for c in convs)
            assert r["correct"] == right and r["accuracy"] == pytest.approx(right / r["total"])
            assert r["baseline"] == pytest.approx(sum(1 / len(c["letters"]) for c in convs) / r["total"])
        else:
            assert r["baseline"] == 0 and 0 <= r["accuracy"] <= 1
        assert r["centered"] == pytest.approx((r["accuracy"] - r["baseline"]) / (1 - r["baseline"]))
    assert saved["chatcore"] == pytest.approx(sum(r["centered"] for r in saved["tasks"].values()) / 7)
    with open(chat_base / "eval" / "chat_sft.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["task"] for r in rows] == SCRIPT_TASKS.split(",") + ["ChatCORE"]
    assert float(rows[-1]["centered"]) == pytest.approx(saved["chatcore"], abs=1e-6)
    section = get_report(str(chat_base)).read("Chat evaluation sft")
    assert section["ChatCORE"] == pytest.approx(saved["chatcore"], abs=1e-4)
    assert section["ARC-Easy"] == pytest.approx(saved["tasks"]["ARC-Easy"]["accuracy"], abs=1e-4)
    assert not [f for f in os.listdir(chat_base / "eval") if f.endswith(".tmp")]


def test_eval_seed_draws_other_generated_problems():
    """--eval-seed (the research harness's own) changes the generated tasks' problems, not the real datasets'."""
    from tasks.registry import EVAL_SEED, build_tasks
    names = ["SyntheticMath", "SyntheticMathChoice", "SpellingBee"]
    public, secret = build_tasks(names), build_tasks(names, seed=123457)
    for name in names:
        assert public[name].get(0) == build_tasks([name], seed=EVAL_SEED)[name].get(0)
        assert public[name].get(0) != secret[name].get(0), name


def test_script_fits_its_batch_to_a_small_gpu(chat_base, monkeypatch, capsys):
    """On a simulated GPU that holds 1 row, --batch-size=2 fits itself to 1 and scores the same."""
    from scripts.chat_eval import main
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(chat_base))
    args = [*script_args(chat_base), "-a", "ARC-Easy,SyntheticMath"]
    results = []
    for rows in ("1", "2"):
        monkeypatch.setenv("NANOCHAT_SIMULATE_GPU_ROWS", rows)
        main(args)
        with open(chat_base / "eval" / "chat_sft.json") as f:
            results.append(json.load(f)["tasks"])
    assert "--batch-size 2 does not fit in GPU memory: using 1" in capsys.readouterr().out
    assert results[0] == results[1]


def test_script_rejects_unknown_tasks(capsys):
    from scripts.chat_eval import main
    with pytest.raises(SystemExit) as e:
        main(["-a", "ARC-Easy,ARC-Medium"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "'ARC-Medium'" in err and "SyntheticMathChoice" in err and "HumanEval" in err


def test_script_reports_an_unavailable_dataset(chat_base, tmp_path):
    """No local file and no reachable hub: the script stops with the task's own message, which names the fix."""
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(chat_base), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO_ROOT}
    proc = subprocess.run([sys.executable, "-m", "scripts.chat_eval", "-i", "sft", "-a", "ARC-Easy,ARC-Challenge",
                           f"--data-dir={chat_base / 'data'}", "--device-type=cpu"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]   # bad input: the one exit status of every script
    assert "could not load ARC-Challenge/test ('allenai/ai2_arc'" in proc.stderr  # ARC-Easy is local
    assert "data_path=" in proc.stderr and "-a/--tasks" in proc.stderr


def test_two_processes_match_one(chat_base, monkeypatch):
    from scripts.chat_eval import main
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(chat_base))
    main(script_args(chat_base))
    with open(chat_base / "eval" / "chat_sft.json") as f:
        one = json.load(f)
    proc = run_torchrun(["-m", "scripts.chat_eval", *script_args(chat_base)], nproc=2, timeout=300,
                        extra_env={"NANOCHAT_BASE_DIR": str(chat_base)})
    check_ok(proc)
    with open(chat_base / "eval" / "chat_sft.json") as f:
        two = json.load(f)
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["tasks"] == one["tasks"] and two["chatcore"] == one["chatcore"]
    assert proc.stdout.strip().splitlines()[-1] == f"chatcore: {one['chatcore']:.6f}"


def test_sampling_params_reach_the_engine():
    """--temperature and --top-k are honoured: top_k=1 is greedy whatever the temperature."""
    model = coin_model()
    task = SayTask(["8"] * 6)
    topk1 = run_chat_eval(model, TOK, {"s": task}, temperature=1.0, top_k=1, seed=1)["accuracy"]["s"]
    assert topk1 in (0.0, 1.0)  # all six replies alike
    assert 0 < run_chat_eval(model, TOK, {"s": task}, temperature=1.0, seed=1)["accuracy"]["s"] < 1
    with pytest.raises(AssertionError):   # the CLI checks user input; inside, a bad value is a bug
        run_chat_eval(model, TOK, {"s": task}, temperature=-1.0)
