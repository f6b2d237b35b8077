"""MMLU (cais/mmlu): four-choice questions over 57 subjects, plus a large auxiliary training set whose rows
are wrapped one level deeper ({"train": row}). Conversations carry "subject" for per-subject accuracy.
Deliberately not here: the 57 per-subject configs (filter "all" by subject instead) and few-shot prompts.
"""

from tasks.common import MultipleChoice, load_rows, mc_conversation

SPLITS = {"all": ("test", "validation", "dev"), "auxiliary_train": ("train",)}


class MMLU(MultipleChoice):
    def __init__(self, subset, split, data_path=None, **view):
        assert split in SPLITS[subset], (subset, split)
        self.subset = subset
        name = f"MMLU-{subset}/{split}"
        columns = ("train",) if subset == "auxiliary_train" else ("question", "subject", "choices", "answer")
        self.rows = load_rows(name, "cais/mmlu", subset, split, data_path, columns=columns)
        super().__init__(name=name, **view)

    def conversation(self, row):
        if self.subset == "auxiliary_train":
            row = row["train"]
        return mc_conversation(row["question"], row["choices"], row["answer"], subject=row["subject"])
