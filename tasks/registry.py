"""The evaluation tasks by name, as `chat_eval -a` and SFT's ChatCORE take them: real datasets on their test
split (hub or local file), generated ones with EVAL_SEED (or a seed of the caller's), apart from the problems
training draws.
"""

import os

from tasks.arc import ARC
from tasks.gsm8k import GSM8K
from tasks.humaneval import HumanEval
from tasks.mmlu import MMLU
from tasks.spellingbee import SpellingBee
from tasks.synthetic import SyntheticMath, SyntheticMathChoice

EVAL_SEED = 1000    # the generated tasks' eval problems; training draws its problems from other seeds
GENERATED_SIZE = 256  # problems in each generated task

# name -> constructor(data_path or None, seed). Real datasets use their test split (ARC's and MMLU's are public);
# generated ones draw their problems from the seed.
TASKS = {
    "ARC-Easy": lambda path, seed: ARC("ARC-Easy", "test", data_path=path),
    "ARC-Challenge": lambda path, seed: ARC("ARC-Challenge", "test", data_path=path),
    "MMLU": lambda path, seed: MMLU("all", "test", data_path=path),
    "GSM8K": lambda path, seed: GSM8K("test", data_path=path),
    "HumanEval": lambda path, seed: HumanEval(data_path=path),
    "SpellingBee": lambda path, seed: SpellingBee(size=GENERATED_SIZE, seed=seed),
    "SyntheticMath": lambda path, seed: SyntheticMath(size=GENERATED_SIZE, seed=seed),
    "SyntheticMathChoice": lambda path, seed: SyntheticMathChoice(size=GENERATED_SIZE, seed=seed),
}
DEFAULT_TASKS = "ARC-Easy,ARC-Challenge,MMLU,GSM8K,HumanEval,SpellingBee"
TINY_TASKS = "SyntheticMathChoice,SyntheticMath,SpellingBee"  # no download needed
DATA_EXTENSIONS = (".jsonl", ".json", ".parquet", ".jsonl.gz")


def parse_task_names(text):
    """'ARC-Easy,GSM8K' -> ['ARC-Easy', 'GSM8K']; ValueError naming the valid tasks for an unknown one."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown or not names:
        raise ValueError(f"unknown task(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"choose from {', '.join(TASKS)}")
    return list(dict.fromkeys(names))  # drop repeats, keep the order


def build_tasks(names, data_dir=None, seed=EVAL_SEED):
    """{name: Task} for the given task names; a real dataset loads from data_dir/<name>.jsonl (or another of
    DATA_EXTENSIONS) when that file exists, else from the hub; a generated one draws its problems from `seed`."""
    tasks = {}
    for name in names:
        paths = [os.path.join(data_dir, name + ext) for ext in DATA_EXTENSIONS] if data_dir else []
        tasks[name] = TASKS[name](next(filter(os.path.isfile, paths), None), seed)
    return tasks
