"""
Custom conversations from a .jsonl file (e.g. the identity conversations), one JSON array of messages a
line, checked whole at load (the first bad line named). Training only: no automatic check of a reply.
"""

import os

from nanochat.common import read_jsonl
from nanochat.tokenizer import check_messages
from tasks.common import Task


def read_conversations(path):
    """The message lists of a conversations .jsonl file; ValueError naming path:line for a bad line."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"conversations file {path!r} does not exist")
    conversations = []
    for where, messages in read_jsonl(path):
        try:
            check_messages(messages, last="assistant")
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        conversations.append([{"role": m["role"], "content": m["content"]} for m in messages])
    return conversations


class CustomJSON(Task):
    def __init__(self, path, **view):
        self.rows = read_conversations(path)
        super().__init__(name=f"CustomJSON/{os.path.basename(path)}", **view)

    def conversation(self, row):
        return {"messages": [dict(m) for m in row]}
