"""SmolTalk (HuggingFaceTB/smol-smoltalk): general chat conversations for SFT and midtraining; other columns
and extra message keys are ignored. Training only: there is no automatic check of a reply.
"""

from tasks.common import Task, checked_messages, load_rows


class SmolTalk(Task):
    def __init__(self, split, data_path=None, **view):
        assert split in ("train", "test"), split
        name = f"SmolTalk/{split}"
        self.rows = load_rows(name, "HuggingFaceTB/smol-smoltalk", None, split, data_path, columns=("messages",))
        super().__init__(name=name, **view)

    def example(self, index):
        # checked here rather than at load time: a split has ~0.5M rows and most runs read a fraction
        return {"messages": checked_messages(self.rows[index]["messages"], f"{self.name} row {index}")}
