"""
The pretraining data loader: documents from parquet shards -> token rows packed best-fit -> batches.

Every row of a batch has T+1 tokens (inputs are the first T, targets the last T) and is built from
whole documents, each starting with <|bos|>: the loader keeps a buffer of tokenized documents and
fills each row with the largest document that still fits, again and again; only when nothing fits
does it crop one document to fill the gap. No padding, little cropping, and the model never
attends across a document boundary without a BOS in between.

Distributed: the (shard, row group) pairs are dealt round-robin to ranks, so each rank reads only
its share and, over one epoch, every document is read by exactly one rank.

Exact resume: `state_dict()` is (epoch, position in this rank's row-group list, the buffer of
leftover documents). Restoring it reproduces exactly the batches an uninterrupted run would see.

Deliberately left out: shuffling (the shards are pre-shuffled) and multi-process workers (tiktoken
already tokenizes a batch of documents on threads).
"""

import bisect

import torch

from nanochat.dataset import iter_documents


def rank_row_groups(paths, rank, world_size):
    """This rank's share of the data: a list of (shard index, row group index, first doc, doc stride).

    Normally whole row groups are dealt round-robin across all shards (stride 1). With fewer row
    groups than ranks (e.g. a small validation shard), every rank reads every row group and keeps
    every world_size-th document instead, so each document still belongs to exactly one rank.
    """
    import pyarrow.parquet as pq
    if not paths:
        raise ValueError("no parquet shards given to the data loader")
    pairs = [(si, rg) for si, p in enumerate(paths) for rg in range(pq.ParquetFile(p).num_row_groups)]
    if len(pairs) >= world_size:
        return [(si, rg, 0, 1) for si, rg in pairs[rank::world_size]]
    return [(si, rg, rank, world_size) for si, rg in pairs]


class PackedLoader:
    """Infinite iterator of (inputs, targets) LongTensors of shape (B, T) on `device`."""

    def __init__(self, tokenizer, paths, batch_size, seq_len, rank=0, world_size=1, device="cpu",
                 buffer_docs=256, tokenizer_threads=4, state=None):
        self.tokenizer = tokenizer
        self.paths = list(paths)
        self.B, self.T = batch_size, seq_len
        self.device = torch.device(device)
        self.buffer_docs = buffer_docs
        self.threads = tokenizer_threads
        self.bos = tokenizer.get_bos_token_id()
        self.share = rank_row_groups(self.paths, rank, world_size)
        self.epoch, self.pos = 0, 0
        # buffer of documents (lists of ids) kept sorted by length, plus the lengths for bisect
        self.docs, self.lens = [], []
        if state is not None:
            self.load_state_dict(state)

    # --------------------------------------------------------------- state

    def state_dict(self):
        return {"epoch": self.epoch, "pos": self.pos, "docs": [list(d) for d in self.docs],
                "num_row_groups": len(self.share)}

    def load_state_dict(self, state):
        if state["num_row_groups"] != len(self.share):
            raise ValueError(f"loader state was saved over {state['num_row_groups']} row groups for this rank, "
                             f"but the data now gives {len(self.share)}: resume needs the same shards and world size")
        self.epoch, self.pos = state["epoch"], state["pos"]
        self.docs = [list(d) for d in state["docs"]]
        self.lens = [len(d) for d in self.docs]

    # --------------------------------------------------------------- filling the buffer

    def _read_next_row_group(self):
        si, rg, first, stride = self.share[self.pos]
        _, _, texts = next(iter_documents(self.paths, start_shard=si, start_row_group=rg))
        texts = texts[first::stride]
        self.pos += 1
        if self.pos == len(self.share):
            self.epoch, self.pos = self.epoch + 1, 0
        for ids in self.tokenizer.encode(texts, prepend=self.bos, num_threads=self.threads):
            i = bisect.bisect_left(self.lens, len(ids))
            self.lens.insert(i, len(ids))
            self.docs.insert(i, ids)

    def _take(self, i):
        self.lens.pop(i)
        return self.docs.pop(i)

    def _next_row(self):
        """One row of T+1 tokens, packed best-fit from the buffer."""
        row, room = [], self.T + 1
        while room > 0:
            while len(self.docs) < self.buffer_docs:
                self._read_next_row_group()
            i = bisect.bisect_right(self.lens, room) - 1   # the longest document that fits whole
            if i >= 0:
                doc = self._take(i)
                row.extend(doc)
                room -= len(doc)
            else:  # nothing fits: crop the shortest document to fill the row, drop its rest
                row.extend(self._take(0)[:room])
                room = 0
        return row

    # --------------------------------------------------------------- batches

    def __iter__(self):
        return self

    def __next__(self):
        rows = torch.tensor([self._next_row() for _ in range(self.B)], dtype=torch.long)  # (B, T+1)
        if self.device.type == "cuda":
            rows = rows.pin_memory().to(self.device, non_blocking=True)  # copy overlaps the caller's compute
        else:
            rows = rows.to(self.device)
        return rows[:, :-1], rows[:, 1:]
