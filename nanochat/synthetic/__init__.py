"""
The embedded corpus: a small deterministic generator of pretraining text, chat conversations and
GSM8K-style math word problems, so that every stage runs offline (the tiny profile, the tests) on data in
exactly the real formats. It is a fixture, not a lesson: the course skips it, and this is its whole API.

- `generate_documents(seed)`: an endless stream of English documents (documents.py, chat.py, problems.py);
- `write_embedded_corpus(data_dir)`: those documents as parquet shards in the real pretraining format;
- `generate_conversations(seed, n)`, `generate_identity_conversations(seed, n)`: chat data (chat.py);
- `generate_math_problems(seed, n)`: GSM8K-format word problems with calculator notes (problems.py).

Inside: world.py holds the words, facts and templates (data only), grammar.py fills templates and phrases
facts, and the makers of each kind of text live in documents.py, chat.py and problems.py. All facts come
from the one table, and documents and chat answers phrase the same facts, so a model trained on the
documents can learn to answer the chat questions.

Determinism: each stream owns a `random.Random` seeded from a string (hashed with SHA-512 by the random
module, so independent of PYTHONHASHSEED); no code here iterates over a set or uses the global RNG.
Deliberately NOT here: natural-language quality beyond "reads like simple English", facts outside the
table, tokenization, and any downloading. The text is toy data for toy models, not a benchmark.
"""

import operator
import os
from collections.abc import Iterator

from nanochat.common import atomic_path
from nanochat.synthetic.chat import chat_doc, conversation, identity_conversation
from nanochat.synthetic.documents import (
    dialogue_doc,
    diary,
    encyclopedia,
    howto,
    letter,
    list_doc,
    poem_doc,
    qa_doc,
    snippet,
    story,
)
from nanochat.synthetic.grammar import _Choice, _Gen
from nanochat.synthetic.problems import arithmetic_doc, math_doc, math_problem

__all__ = ["generate_documents", "write_embedded_corpus", "generate_conversations",
           "generate_identity_conversations", "generate_math_problems"]


# -----------------------------------------------------------------------------
# Public API

_DOCS = _Choice((story, 26), (encyclopedia, 12), (howto, 4), (letter, 5), (diary, 5), (dialogue_doc, 5), (chat_doc, 9),
         (qa_doc, 8), (list_doc, 5), (arithmetic_doc, 5), (math_doc, 7), (poem_doc, 4), (snippet, 5))


def _documents(key):
    g = _Gen(key)
    while True:
        if g.chance(0.1):  # a page that strings several pieces together: the long tail of document lengths
            yield "\n\n".join(_DOCS(g)(g) for _ in range(g.randint(2, 6)))
        else:
            yield _DOCS(g)(g)


def generate_documents(seed: int = 0) -> Iterator[str]:
    """Infinite, deterministic stream of pretraining documents (same seed -> same documents)."""
    return _documents(f"documents:{_int(seed, 'seed', -2**63)}")


def generate_conversations(seed: int, n: int) -> list[dict]:
    """n chat conversations; conversation i depends only on (seed, i), so a longer list extends a shorter one."""
    seed = _int(seed, "seed", -2**63)
    return [conversation(_Gen(f"conversation:{seed}:{i}")) for i in range(_int(n, "n", 0))]


def generate_identity_conversations(seed: int, n: int) -> list[list[dict]]:
    """n identity conversations as message lists (the identity .jsonl format); i depends only on (seed, i)."""
    seed = _int(seed, "seed", -2**63)
    return [identity_conversation(_Gen(f"identity:{seed}:{i}")) for i in range(_int(n, "n", 0))]


def generate_math_problems(seed: int, n: int) -> list[dict]:
    """n GSM8K-format problems; problem i depends only on (seed, i)."""
    seed = _int(seed, "seed", -2**63)
    return [math_problem(_Gen(f"math:{seed}:{i}")) for i in range(_int(n, "n", 0))]


def _int(value, what, minimum):
    """`value` as an int (numpy ints welcome), or a ValueError saying what was wrong with it."""
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an int, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def _shard_documents(key, chars):
    """Documents from one stream until their total length reaches `chars` (at least one document)."""
    docs, total = [], 0
    for doc in _documents(key):
        docs.append(doc)
        total += len(doc)
        if total >= chars:
            return docs


def _read_texts(path):
    """The `text` column of an existing shard, or None if it is missing or unreadable (e.g. truncated)."""
    import pyarrow.parquet as pq
    try:
        return pq.read_table(path, columns=["text"]).column("text").to_pylist()
    except (OSError, ValueError, KeyError):  # pyarrow raises ArrowInvalid (a ValueError) on corrupt files
        return None


def write_embedded_corpus(data_dir: str, num_shards: int = 8, chars_per_shard: int = 4_000_000,
                          seed: int = 0) -> list[str]:
    """Write data_dir/shard_00000.parquet ... in the real pretraining format (one string column `text`,
    zstd, row groups of 1024 documents). The last shard is the validation shard: same generator, its own
    seed stream, so it does not change with num_shards. Each train shard has its own stream too, so shard i
    is the same whatever num_shards is. Files are written atomically; a shard already holding exactly the
    right documents is left untouched. Returns the paths in order."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    num_shards = _int(num_shards, "num_shards (at least one train and one validation shard)", 2)
    chars_per_shard = _int(chars_per_shard, "chars_per_shard", 1)
    seed = _int(seed, "seed", -2**63)
    os.makedirs(data_dir, exist_ok=True)
    paths = []
    for i in range(num_shards):
        key = f"val:{seed}" if i == num_shards - 1 else f"train:{seed}:{i}"
        docs = _shard_documents(key, chars_per_shard)
        path = os.path.join(data_dir, f"shard_{i:05d}.parquet")
        if not (os.path.exists(path) and _read_texts(path) == docs):
            with atomic_path(path) as tmp:
                table = pa.table({"text": pa.array(docs, type=pa.string())})
                pq.write_table(table, tmp, compression="zstd", row_group_size=1024)
        paths.append(path)
    return paths
