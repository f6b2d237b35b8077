"""
Batches of conversations for midtraining and SFT: `pad_batch`/`PaddedLoader` (one conversation per row,
padded) and `PackedConversationLoader` (best-fit packed rows of seq_len + 1). Targets are -1 where the mask
is 0. Rank r of W reads conversations r, r + W, ...; state_dict() gives exact resume.
Deliberately left out: shuffling, background workers, importing tasks/ (render is handed in).
"""

import torch

from nanochat.dataloader import BestFit

IGNORE = -1  # target value the loss skips


def shift_targets(ids, mask):
    """(inputs, targets) as lists for one row: targets[t] = ids[t+1], or IGNORE where mask[t+1] == 0."""
    return ids[:-1], [tok if m else IGNORE for tok, m in zip(ids[1:], mask[1:])]


def pad_batch(docs, seq_len, pad_id):
    """(inputs, targets, num_cropped) from docs, a list of rendered (ids, mask), one per row. Each is cropped to
    seq_len + 1 tokens (num_cropped: how many lost a tail); rows are padded with pad_id, target IGNORE.
    Shapes: (B, T) with T = min(longest conversation, seq_len + 1) - 1."""
    assert docs, "a batch of at least one conversation"
    rows = [(ids[:seq_len + 1], mask[:seq_len + 1]) for ids, mask in docs]
    num_cropped = sum(len(ids) > seq_len + 1 for ids, _ in docs)
    T = max(len(ids) for ids, _ in rows) - 1
    assert T >= 1, "every conversation in the batch is a single token: nothing to predict"
    inputs = torch.full((len(rows), T), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), T), IGNORE, dtype=torch.long)
    for b, (ids, mask) in enumerate(rows):
        x, y = shift_targets(ids, mask)
        inputs[b, :len(x)] = torch.tensor(x, dtype=torch.long)
        targets[b, :len(y)] = torch.tensor(y, dtype=torch.long)
    return inputs, targets, num_cropped


class RankCursor:
    """This rank's conversations of `dataset`, rendered, in order and forever: indices rank, rank + W, ..."""

    def __init__(self, dataset, render, rank=0, world_size=1):
        assert len(dataset) > 0, "mixtures refuse empty tasks where they are built"
        self.dataset, self.render = dataset, render
        self.rank, self.world_size = rank, world_size
        self.cursor = 0   # conversations this rank has taken so far

    def index(self):
        return (self.cursor * self.world_size + self.rank) % len(self.dataset)

    def epoch(self):
        """Passes over the dataset so far (all ranks together), as a float."""
        return self.cursor * self.world_size / len(self.dataset)

    def next(self):
        ids, mask = self.render(self.dataset[self.index()])
        self.cursor += 1
        return ids, mask


def _to_device(t, device):
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class PaddedLoader:
    """Infinite iterator of SFT micro-batches (inputs, targets), (B, T<=seq_len), one conversation per row."""

    def __init__(self, dataset, render, batch_size, seq_len, pad_id, rank=0, world_size=1, device="cpu"):
        self.source = RankCursor(dataset, render, rank, world_size)
        self.B, self.T, self.pad_id = batch_size, seq_len, pad_id
        self.device = torch.device(device)
        self.cropped = 0   # conversations cropped to seq_len + 1 tokens so far on this rank

    def state_dict(self):
        return {"cursor": self.source.cursor, "cropped": self.cropped}

    def load_state_dict(self, state):
        self.source.cursor, self.cropped = state["cursor"], state["cropped"]

    def __iter__(self):
        return self

    def __next__(self):
        x, y, cropped = pad_batch([self.source.next() for _ in range(self.B)], self.T, self.pad_id)
        self.cropped += cropped
        return _to_device(x, self.device), _to_device(y, self.device)


class PackedConversationLoader:
    """Infinite iterator of midtraining micro-batches (inputs, targets), (B, T), packed by BestFit over
    `buffer_size` rendered conversations. With `use_mask=False` every token is a target."""

    def __init__(self, dataset, render, batch_size, seq_len, rank=0, world_size=1, device="cpu",
                 use_mask=True, buffer_size=64):
        self.source = RankCursor(dataset, render, rank, world_size)
        self.B, self.T, self.use_mask = batch_size, seq_len, use_mask
        self.device = torch.device(device)
        self.buffer = BestFit(lambda: self.buffer.add(self.source.next()), buffer_size)   # (ids, mask) each

    def state_dict(self):
        return {"cursor": self.source.cursor, "docs": self.buffer.state_dict()}

    def load_state_dict(self, state):
        self.source.cursor = state["cursor"]
        self.buffer.load_state_dict(state["docs"])

    def __iter__(self):
        return self

    def __next__(self):
        rows = [shift_targets(ids, mask if self.use_mask else [1] * len(ids))
                for ids, mask in (self.buffer.row(self.T + 1) for _ in range(self.B))]
        x = torch.tensor([r[0] for r in rows], dtype=torch.long)   # (B, T)
        y = torch.tensor([r[1] for r in rows], dtype=torch.long)   # (B, T)
        return _to_device(x, self.device), _to_device(y, self.device)
