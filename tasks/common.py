"""The Task interface (`len`, `get(i)` -> conversation, `evaluate(conversation, completion)` -> 1.0 or 0.0,
`eval_type` "categorical" or "generative", a `start`/`stop`/`step` slice view), the mixture, and what the
tasks share: loading rows (hub or local file), the multiple-choice prompt, scoring a "#### N" answer.
Deliberately not here: tokenization and batching (the scripts), sampling (nanochat/engine), download caching.
"""

import bisect
import gzip
import itertools
import os
import re
from decimal import Decimal

from nanochat.common import BadInput, parse_json
from nanochat.tokenizer import check_messages

LETTERS = "ABCDEFGHIJ"  # enough for every multiple-choice set we load (ARC has at most 5 choices)


class DatasetUnavailableError(BadInput):
    """A hub dataset could not be loaded (offline, not cached, or a typo in its id) and no data_path was given."""


class Task:
    """Base class. Subclasses either set `self.rows` (a sequence of dataset rows: a list of dicts or a
    `datasets.Dataset`) and implement `conversation(row)`, or override `num_examples()` and `example(index)`.
    Iteration needs no __iter__: Python's fallback calls get(0), get(1), ... until its IndexError."""

    eval_type = "generative"

    def __init__(self, name=None, start=0, stop=None, step=1):
        self.name = name or type(self).__name__
        self.view = slice(start, stop, step)

    def num_examples(self):
        """Size of the whole underlying dataset, before the start/stop/step view."""
        return len(self.rows)

    def example(self, index):
        """The conversation at `index` of the whole dataset (not of the view)."""
        return self.conversation(self.rows[index])

    def evaluate(self, conversation, completion):
        raise NotImplementedError(f"{self.name} has no automatic check: it is for training only")

    def _indices(self):
        # range slicing does the start/stop/step arithmetic (negatives, clipping) in O(1) memory
        return range(self.num_examples())[self.view]

    def __len__(self):
        return len(self._indices())

    def get(self, i):
        """The i-th conversation of this view (IndexError past its end); a fresh dict, so callers may modify it."""
        return self.example(self._indices()[i])

    __getitem__ = get


class TaskMixture(Task):
    """Several tasks as one, shuffled by `seed` with one fixed permutation of the concatenated indices (random
    access, the same on every rank). List a task twice to see it twice per pass (oversampling)."""

    def __init__(self, tasks, seed=0, **view):
        import numpy as np
        self.tasks = list(tasks)
        assert self.tasks and all(len(t) for t in self.tasks), "tasks/mixtures.py refuses empty tasks by name"
        self.offsets = [0, *itertools.accumulate(map(len, self.tasks))]  # offsets[k]: task k's first index
        # numpy: an int64 array is 8 bytes per example, a shuffled Python list ~36 (mixtures reach ~1M examples)
        self.order = np.random.default_rng(seed).permutation(self.offsets[-1])
        super().__init__(name="+".join(t.name for t in self.tasks), **view)

    def num_examples(self):
        return len(self.order)

    def example(self, index):
        j = int(self.order[index])
        k = bisect.bisect_right(self.offsets, j) - 1
        return self.tasks[k].get(j - self.offsets[k])


# -----------------------------------------------------------------------------
# Loading rows

def load_rows(name, hub_id, config, split, data_path=None, columns=()):
    """Rows (dicts) of a hub dataset split, or of the local file `data_path` in the same format: a list or a
    memory-mapped `datasets.Dataset`. `columns` are checked on the first row."""
    if data_path is not None:
        rows, source = read_rows(data_path, name), str(data_path)
    else:
        try:
            from datasets import load_dataset  # lazy: importing datasets takes seconds
            rows = load_dataset(hub_id, config, split=split)
        except Exception as e:  # offline, not cached, bad id...: datasets raises many unrelated types
            raise DatasetUnavailableError(
                f"could not load {name} ({hub_id!r}, config {config!r}, split {split!r}) from the Hugging Face "
                f"hub: {type(e).__name__}: {e}\nTo fix: load it once on a machine with internet access "
                "(datasets caches it; set HF_DATASETS_OFFLINE=1 to reuse that cache offline), or pass "
                "data_path= a local .jsonl / .json / .parquet file with the hub's columns") from e
        source = hub_id
    if len(rows) > 0:
        missing = [c for c in columns if c not in rows[0]]
        if missing:
            raise ValueError(f"{name}: rows from {source} lack column(s) {missing}; "
                             f"expected {list(columns)}, found {sorted(rows[0])}")
    return rows


def read_rows(path, name="dataset"):
    """A list of row dicts from .parquet, .jsonl (one object per line) or .json (one array, or JSON lines,
    as `datasets` writes them), each optionally gzipped (.jsonl.gz)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data_path for {name} does not exist: {path!r}; pass an existing local file "
                                "in the hub's row format, or data_path=None to load from the hub")
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq
        return pq.read_table(path).to_pylist()
    if not path.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")):
        raise ValueError(f"{path!r}: unknown file type for {name}; use .parquet, .jsonl, .json (or .jsonl.gz)")
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):  # one JSON array holding every row
        located = [(f"{path} row {i}", row) for i, row in enumerate(parse_json(text, path))]
    else:
        located = [(f"{path}:{n}", parse_json(line, f"{path}:{n}"))
                   for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    for at, row in located:
        if not isinstance(row, dict):
            raise ValueError(f"{at}: expected a JSON object (one row), got {type(row).__name__}")
    return [row for _, row in located]


def checked_messages(messages, where):
    """Role/content copies of a conversation from a data file, checked first (ValueError naming `where`)."""
    try:
        check_messages(messages, last="assistant")
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return [{"role": m["role"], "content": m["content"]} for m in messages]


# -----------------------------------------------------------------------------
# Multiple choice (categorical) tasks

def mc_conversation(question, choices, answer, **extra):
    """A categorical conversation: the question, its choices lettered A, B, ... and an instruction, then the gold
    letter as the assistant's reply. Every categorical task uses this one prompt, so a model learns one format."""
    choices = list(choices)
    if not 2 <= len(choices) <= len(LETTERS):
        raise ValueError(f"a multiple-choice question needs 2 to {len(LETTERS)} choices, got {len(choices)}: "
                         f"{question!r}")
    if not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise ValueError(f"answer {answer!r} is not a valid index into the {len(choices)} choices of {question!r}")
    letters = list(LETTERS[:len(choices)])
    prompt = [f"Multiple choice question: {question}",
              *(f"{letter}. {choice}" for letter, choice in zip(letters, choices)),
              "Answer with the letter of the correct choice only."]
    messages = [{"role": "user", "content": "\n".join(prompt)},
                {"role": "assistant", "content": letters[answer]}]
    return {"messages": messages, "letters": letters, **extra}


class MultipleChoice(Task):
    """Base for categorical tasks. The eval picks the letter with the highest logit and passes it here."""

    eval_type = "categorical"

    def evaluate(self, conversation, completion):
        return 1.0 if completion.strip() == conversation["messages"][-1]["content"] else 0.0


# -----------------------------------------------------------------------------
# "#### N" final answers (GSM8K and everything written in its style)

# "#### 1,234" / "#### -3.5": thousands commas allowed; the number is captured without what follows
_FINAL_ANSWER = re.compile(r"####\s*(-?[\d,]*\.?\d+)")


def extract_final_answer(text):
    """The number after the last "####" in `text`, commas removed ("1,234" -> "1234"), or None."""
    matches = _FINAL_ANSWER.findall(text)
    return matches[-1].replace(",", "") if matches else None


def score_final_answer(conversation, completion):
    """1.0 if the completion's final "#### N" equals the gold one (the last message's) as a number, else 0.0."""
    content = conversation["messages"][-1]["content"]  # a string, or a list of parts
    gold = extract_final_answer(content if isinstance(content, str) else "".join(p["text"] for p in content))
    if gold is None:
        raise ValueError(f"the reference answer has no '#### N' line: {conversation['messages'][-1]!r}")
    guess = extract_final_answer(completion)
    # Decimal, not float: "18.0" equals "18", and long integers compare exactly
    return 1.0 if guess is not None and Decimal(guess) == Decimal(gold) else 0.0
