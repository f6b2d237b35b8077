"""The TaskMixtures of midtraining and SFT, `full` (hub datasets) and `synthetic` (the embedded generator,
offline), identity conversations included. A task that fails to load or is empty is BadInput naming it.
"""

import json
import os

from nanochat.common import BadInput, atomic_write_text, print0
from nanochat.synthetic import generate_identity_conversations
from tasks.arc import ARC
from tasks.common import TaskMixture
from tasks.customjson import CustomJSON
from tasks.gsm8k import GSM8K
from tasks.mmlu import MMLU
from tasks.smoltalk import SmolTalk
from tasks.spellingbee import SpellingBee
from tasks.synthetic import SyntheticChat, SyntheticMath

IDENTITY_DEFAULT_SIZE = 1000


def identity_entries(identity_path, base_dir, copies=1, write_default=False):
    """The identity-conversations task, `copies` times, from identity_path or base_dir's identity_conversations.jsonl.
    When that is missing, `write_default` (full mixtures: hub data never says who the model is) writes the
    default persona there to be edited; otherwise (synthetic chats already cover identity) there is no task."""
    path = identity_path or os.path.join(base_dir, "identity_conversations.jsonl")
    if not identity_path and not os.path.exists(path):
        if not write_default:
            print0(f"note: no identity conversations at {path}; the synthetic chats cover identity")
            return []
        rows = generate_identity_conversations(seed=0, n=IDENTITY_DEFAULT_SIZE)
        # every rank may get here at once: each writes the same bytes and renames, so any order is fine
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print0(f"wrote {len(rows)} identity conversations (the default persona) to {path}; "
               "edit it to change who the model says it is")
    return [(f"identity conversations {path}", lambda: CustomJSON(path))] * copies


def build_mixture(stage, entries, seed):
    """A TaskMixture from (label, factory) pairs; any failure is BadInput naming the task."""
    tasks, cache = [], {}
    for label, factory in entries:
        try:
            if label not in cache:   # a task listed twice (oversampled) is loaded once
                cache[label] = factory()
            if len(cache[label]) == 0:
                raise ValueError("it has no examples; check its data file, split and size")
        except Exception as e:   # missing file, offline hub, malformed rows: all name the task
            raise BadInput(f"{stage} mixture: task {label}: {type(e).__name__}: {e}") from e
        tasks.append(cache[label])
    return TaskMixture(tasks, seed=seed)


def mid_mixtures(mixture, synthetic_size, identity_path, base_dir, seed):
    """(train, validation) TaskMixtures of midtraining."""
    if mixture == "full":
        train = [("SmolTalk train", lambda: SmolTalk("train")),                           # ~460K conversations
                 ("MMLU auxiliary_train", lambda: MMLU("auxiliary_train", "train")),     # ~100K multiple choice
                 ("GSM8K train", lambda: GSM8K("train")),                                # ~7.5K, calculator calls
                 *identity_entries(identity_path, base_dir, copies=2, write_default=True),  # who am I, seen twice
                 ("SpellingBee train", lambda: SpellingBee(size=80_000, seed=0))]
        val = [("SmolTalk test", lambda: SmolTalk("test")),
               ("MMLU validation", lambda: MMLU("all", "validation")),
               ("GSM8K test", lambda: GSM8K("test", stop=420)),
               ("SpellingBee validation", lambda: SpellingBee(size=200, seed=1))]
    else:
        train, val = synthetic_entries(synthetic_size, 0, identity_entries(identity_path, base_dir, copies=2))
    return (build_mixture(f"midtraining ({mixture}, train)", train, seed),
            build_mixture(f"midtraining ({mixture}, validation)", val, seed))


def sft_mixtures(mixture, synthetic_size, identity_path, base_dir, seed):
    """(train, validation) TaskMixtures of SFT."""
    if mixture == "full":
        train = [("ARC-Easy train", lambda: ARC("ARC-Easy", "train")),                # ~2.3K multiple choice
                 ("ARC-Challenge train", lambda: ARC("ARC-Challenge", "train")),      # ~1.1K
                 ("GSM8K train", lambda: GSM8K("train")),                             # ~7.5K, calculator calls
                 ("SmolTalk train", lambda: SmolTalk("train", stop=10_000)),          # general chat
                 *identity_entries(identity_path, base_dir, write_default=True),
                 ("SpellingBee train", lambda: SpellingBee(size=300, seed=2))]
        val = [("SmolTalk test", lambda: SmolTalk("test")),
               ("GSM8K test", lambda: GSM8K("test", stop=420)),
               ("SpellingBee validation", lambda: SpellingBee(size=200, seed=1))]
    else:
        train, val = synthetic_entries(synthetic_size, 2, identity_entries(identity_path, base_dir))  # mid uses 0
    return (build_mixture(f"SFT ({mixture}, train)", train, seed),
            build_mixture(f"SFT ({mixture}, validation)", val, seed))


def synthetic_entries(n, seed, identity):
    """The embedded generator's chats and math (n each), the `identity` entries and SpellingBee on its vocabulary,
    drawn with `seed`, and the validation entries (seed 1) that midtraining and SFT share."""
    train = [("SyntheticChat train", lambda: SyntheticChat(size=n, seed=seed)),
             ("SyntheticMath train", lambda: SyntheticMath(size=n, seed=seed)),
             *identity,
             ("SpellingBee train", lambda: SpellingBee(size=max(1, n // 5), seed=seed))]
    val = [("SyntheticChat validation", lambda: SyntheticChat(size=500, seed=1)),
           ("SyntheticMath validation", lambda: SyntheticMath(size=500, seed=1)),
           ("SpellingBee validation", lambda: SpellingBee(size=100, seed=1))]
    return train, val
