"""Custom conversations from a .jsonl file (e.g. the identity conversations), one JSON array of messages a
line, checked whole at load (the first bad line named). Training only: no automatic check of a reply.
"""

import os

from nanochat.common import read_jsonl
from tasks.common import Task, checked_messages


class CustomJSON(Task):
    def __init__(self, path, **view):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"conversations file {path!r} does not exist")
        self.rows = [checked_messages(messages, where) for where, messages in read_jsonl(path)]  # ValueError: path:line
        super().__init__(name=f"CustomJSON/{os.path.basename(path)}", **view)

    def conversation(self, row):
        return {"messages": [dict(m) for m in row]}
