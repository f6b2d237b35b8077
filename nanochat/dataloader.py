"""The pretraining data loader: parquet documents -> token rows of T+1 packed best-fit from whole documents
(each starting with <|bos|>, cropping only when nothing fits) -> batches. Row groups are dealt round-robin to
ranks; state_dict() gives exact resume.
Deliberately left out: shuffling (shards are pre-shuffled) and worker processes (tiktoken already threads).
"""

import bisect
from concurrent.futures import ThreadPoolExecutor

import torch

from nanochat.dataset import iter_documents


def rank_row_groups(paths, rank, world_size):
    """This rank's share of the data: a list of (shard index, row group index, first doc, doc stride).

    Whole row groups are dealt round-robin (stride 1); with fewer row groups than ranks (a small val shard),
    every rank reads every row group and keeps every world_size-th document, so each still has one rank.
    """
    import pyarrow.parquet as pq
    assert paths, "no parquet shards given to the data loader"
    pairs = [(si, rg) for si, p in enumerate(paths) for rg in range(pq.ParquetFile(p).num_row_groups)]
    if len(pairs) >= world_size:
        return [(si, rg, 0, 1) for si, rg in pairs[rank::world_size]]
    return [(si, rg, rank, world_size) for si, rg in pairs]


class BestFit:
    """Rows of exactly `size` tokens packed best-fit from a buffer of documents kept sorted by length: the
    longest document that still fits goes in, again and again; only when none fits is the shortest cropped
    to fill the row (its rest dropped). A document is a tuple of equal-length lists (ids; or ids and mask).
    `refill()` adds documents (with add) whenever fewer than `buffer_size` are waiting. Midtraining packs
    conversations with it too (nanochat/chat_data.py)."""

    def __init__(self, refill, buffer_size):
        self.refill, self.buffer_size = refill, buffer_size
        self.docs, self.lens = [], []

    def add(self, doc):
        k = bisect.bisect_left(self.lens, len(doc[0]))
        self.lens.insert(k, len(doc[0]))
        self.docs.insert(k, doc)

    def row(self, size):
        """One row: a list per field of the documents (ids, or ids and mask)."""
        row, room = None, size
        while room > 0:
            while len(self.docs) < self.buffer_size:
                self.refill()
            k = max(bisect.bisect_right(self.lens, room) - 1, 0)   # the longest that fits; none: the shortest
            self.lens.pop(k)
            doc = self.docs.pop(k)
            row = row or [[] for _ in doc]
            for field, seq in zip(row, doc):
                field.extend(seq[:room])
            room -= min(len(doc[0]), room)
        return row

    def state_dict(self):
        return [tuple(list(seq) for seq in doc) for doc in self.docs]

    def load_state_dict(self, docs):   # as saved: re-adding would reorder documents of equal length
        self.docs = [tuple(list(seq) for seq in doc) for doc in docs]
        self.lens = [len(doc[0]) for doc in self.docs]


class PackedLoader:
    """Infinite iterator of (inputs, targets) LongTensors of shape (B, T) on `device`."""

    def __init__(self, tokenizer, paths, batch_size, seq_len, rank=0, world_size=1, device="cpu",
                 buffer_docs=256, tokenizer_threads=4, state=None):
        self.tokenizer = tokenizer
        self.paths = list(paths)
        self.B, self.T = batch_size, seq_len
        self.device = torch.device(device)
        self.threads = tokenizer_threads
        self.bos = tokenizer.get_bos_token_id()
        self.share = rank_row_groups(self.paths, rank, world_size)
        self.epoch, self.pos = 0, 0
        self.buffer = BestFit(self._read_next_row_group, buffer_docs)
        # One thread reads and tokenizes the next row group while the caller trains: done inline, a ~1M-token
        # row group stalled every ~4th step of a d12 run on an H200 by ~150 ms (docs/LOG.md, 2026-12-04).
        self.prefetch, self.pending = ThreadPoolExecutor(1), None
        if state is not None:
            self.load_state_dict(state)

    def state_dict(self):
        return {"epoch": self.epoch, "pos": self.pos, "docs": [ids for ids, in self.buffer.state_dict()],
                "num_row_groups": len(self.share)}

    def load_state_dict(self, state):
        if state["num_row_groups"] != len(self.share):
            raise ValueError(f"loader state was saved over {state['num_row_groups']} row groups for this rank, "
                             f"but the data now gives {len(self.share)}: resume needs the same shards and world size")
        self.epoch, self.pos = state["epoch"], state["pos"]
        self.buffer.load_state_dict([(ids,) for ids in state["docs"]])

    def _tokenize_row_group(self, pos):
        si, rg, first, stride = self.share[pos]
        _, _, texts = next(iter_documents(self.paths, start_shard=si, start_row_group=rg))
        return self.tokenizer.encode(texts[first::stride], prepend=self.bos, num_threads=self.threads)

    def _read_next_row_group(self):
        pos, job = self.pending or (None, None)
        if pos != self.pos:   # nothing prefetched yet, or a resume moved the position
            job = self.prefetch.submit(self._tokenize_row_group, self.pos)
        self.pos += 1
        if self.pos == len(self.share):
            self.epoch, self.pos = self.epoch + 1, 0
        self.pending = (self.pos, self.prefetch.submit(self._tokenize_row_group, self.pos))
        for ids in job.result():
            self.buffer.add((ids,))

    def __iter__(self):
        return self

    def __next__(self):
        rows = torch.tensor([self.buffer.row(self.T + 1)[0] for _ in range(self.B)], dtype=torch.long)  # (B, T+1)
        if self.device.type == "cuda":
            rows = rows.pin_memory()   # then the copy overlaps the caller's compute
        rows = rows.to(self.device, non_blocking=self.device.type == "cuda")
        return rows[:, :-1], rows[:, 1:]
