"""
Custom conversations from a .jsonl file, e.g. the identity conversations that teach the model its name.

Each non-blank line is a JSON array of {"role", "content": str} messages: user and assistant alternating,
starting with the user (an optional system message may come first), at least two messages. The whole
file is checked when loaded and the first bad line is reported with its line number.
Training only: there is no automatic check of a reply.
"""

import json
import os

from nanochat.tokenizer import check_messages
from tasks.common import Task


def read_conversations(path):
    """The message lists of a conversations .jsonl file; ValueError naming path:line for a bad line."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"conversations file {path!r} does not exist")
    conversations = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                messages = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: invalid JSON ({e.msg} at column {e.colno})") from None
            try:
                check_messages(messages, last="assistant")
            except ValueError as e:
                raise ValueError(f"{path}:{n}: {e}") from None
            conversations.append([{"role": m["role"], "content": m["content"]} for m in messages])
    return conversations


class CustomJSON(Task):
    def __init__(self, path, **view):
        self.rows = read_conversations(path)
        super().__init__(name=f"CustomJSON/{os.path.basename(path)}", **view)

    def conversation(self, row):
        return {"messages": [dict(m) for m in row]}
