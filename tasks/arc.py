"""ARC (allenai/ai2_arc): grade-school science questions with 3 to 5 choices, in an Easy and a Challenge set.
Some rows label choices "1".."4"; the prompt shows letters A, B, ... by position, like every other task.
Deliberately not here: scoring each answer's likelihood, as the base-model CORE eval does.
"""

from tasks.common import MultipleChoice, load_rows, mc_conversation


class ARC(MultipleChoice):
    def __init__(self, subset, split, data_path=None, **view):
        assert subset in ("ARC-Easy", "ARC-Challenge"), subset
        assert split in ("train", "validation", "test"), split
        name = f"{subset}/{split}"
        self.rows = load_rows(name, "allenai/ai2_arc", subset, split, data_path,
                              columns=("question", "choices", "answerKey"))
        super().__init__(name=name, **view)

    def conversation(self, row):
        labels = list(row["choices"]["label"])
        if row["answerKey"] not in labels:
            raise ValueError(f"{self.name} row {row.get('id')!r}: answerKey {row['answerKey']!r} is not one "
                             f"of its choice labels {labels}")
        return mc_conversation(row["question"], row["choices"]["text"], labels.index(row["answerKey"]))
