"""GSM8K (openai/gsm8k): grade-school math word problems whose worked answers use a calculator.
An annotation "48/2=<<48/2=24>>24" becomes text "48/2=", python "48/2", python_output "24", text "24";
scoring compares the final "#### N". `WordProblems` (rendering, scoring) is shared with SyntheticMath.
Deliberately not here: partial credit or reward shaping for RL (reward is the same 0/1).
"""

import re

from tasks.common import Task, load_rows, score_final_answer

# <<expression=result>>; the expression itself never contains "<" or ">" in GSM8K
_ANNOTATION = re.compile(r"<<([^<>]*)>>")


def tool_call_parts(answer):
    """Split a GSM8K answer into assistant parts at its <<expr=result>> annotations. Joining the parts' text gives
    `answer` less "<<", the last "=" inside and ">>"; an annotation without "=" stays in the text as written."""
    parts, pos = [], 0
    for m in _ANNOTATION.finditer(answer):
        expr, eq, result = m.group(1).rpartition("=")
        if eq:
            parts += [{"type": "text", "text": answer[pos:m.start()]}, {"type": "python", "text": expr},
                      {"type": "python_output", "text": result}]
            pos = m.end()
    parts.append({"type": "text", "text": answer[pos:]})
    return [p for p in parts if p["text"] or p["type"] != "text"]  # an empty text part renders to nothing


class WordProblems(Task):
    """Rows of {"question", "answer"} in GSM8K format, rendered with tool calls and scored on "#### N"."""

    def conversation(self, row):
        return {"messages": [{"role": "user", "content": row["question"]},
                             {"role": "assistant", "content": tool_call_parts(row["answer"])}]}

    evaluate = staticmethod(score_final_answer)  # also the RL reward (scripts/chat_rl.py calls evaluate)


class GSM8K(WordProblems):
    def __init__(self, split, subset="main", data_path=None, **view):
        assert split in ("train", "test") and subset in ("main", "socratic"), (split, subset)
        name = f"GSM8K-{subset}/{split}"
        self.rows = load_rows(name, "openai/gsm8k", subset, split, data_path, columns=("question", "answer"))
        super().__init__(name=name, **view)
