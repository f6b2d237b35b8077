"""nanochat/dataloader.py and the shard helpers of nanochat/dataset.py, on small generated shards."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from nanochat.dataloader import PackedLoader, rank_row_groups
from nanochat.dataset import split_shards
from nanochat.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tok():
    return Tokenizer({bytes([i]): i for i in range(256)})  # one token per byte keeps the checks exact


def write_shards(d, num_shards, docs_per_shard, row_group_size=8, seed=0):
    """Documents 'doc S-I <filler>' with varied lengths; returns the shard paths."""
    import random
    rng = random.Random(seed)
    paths = []
    for s in range(num_shards):
        docs = [f"doc {s}-{i} " + "x" * rng.randrange(0, 90) for i in range(docs_per_shard)]
        path = d / f"shard_{s:05d}.parquet"
        pq.write_table(pa.table({"text": docs}), path, row_group_size=row_group_size, compression="zstd")
        paths.append(str(path))
    return paths


def doc_ids_in(rows, tok):
    """Names of the documents that start in these rows (each starts with BOS, then 'doc S-I ')."""
    bos = tok.get_bos_token_id()
    names = []
    for row in rows:
        row = row.tolist()
        for j, t in enumerate(row):
            if t == bos:
                text = bytes(x for x in row[j + 1:j + 14] if x < 256).decode()
                names.append(text.split(" ")[1] if text.startswith("doc ") and " " in text[4:] else None)
    return names


def test_batches_are_packed_and_shifted(tmp_path, tok):
    paths = write_shards(tmp_path, 3, 40)
    loader = PackedLoader(tok, paths[:-1], batch_size=4, seq_len=64, buffer_docs=16)
    bos = tok.get_bos_token_id()
    for _ in range(10):
        x, y = next(loader)
        assert x.shape == y.shape == (4, 64) and x.dtype == torch.long
        assert (x[:, 1:] == y[:, :-1]).all()       # targets are the inputs shifted by one
        assert (x[:, 0] == bos).all()              # every row starts a document
        assert (x != -1).all()                     # no padding


def test_resume_is_exact(tmp_path, tok):
    paths = write_shards(tmp_path, 3, 50)
    a = PackedLoader(tok, paths, batch_size=3, seq_len=32, buffer_docs=8)
    for _ in range(7):
        next(a)
    state = a.state_dict()
    expected = [next(a) for _ in range(30)]   # runs past an epoch boundary too
    b = PackedLoader(tok, paths, batch_size=3, seq_len=32, buffer_docs=8, state=state)
    for ex, got in zip(expected, (next(b) for _ in range(30))):
        assert torch.equal(ex[0], got[0]) and torch.equal(ex[1], got[1])


def test_resume_rejects_other_data(tmp_path, tok):
    paths = write_shards(tmp_path, 3, 50)
    state = PackedLoader(tok, paths, 2, 16).state_dict()
    with pytest.raises(ValueError, match="same shards and world size"):
        PackedLoader(tok, paths[:1], 2, 16, state=state)


def test_rank_shares_cover_everything_once(tmp_path):
    paths = write_shards(tmp_path, 3, 40, row_group_size=7)  # 6 row groups per shard, 18 in all
    all_pairs = rank_row_groups(paths, 0, 1)
    for world in (2, 3, 4):
        shares = [rank_row_groups(paths, r, world) for r in range(world)]
        flat = [p for s in shares for p in s]
        assert sorted(flat) == sorted(all_pairs) and len(flat) == len(set(flat))


def test_fewer_row_groups_than_ranks_splits_documents(tmp_path, tok):
    paths = write_shards(tmp_path, 1, 12, row_group_size=100)   # a single row group
    seen = []
    for rank in range(3):
        loader = PackedLoader(tok, paths, batch_size=1, seq_len=48, rank=rank, world_size=3, buffer_docs=1)
        names = []
        while loader.epoch == 0:
            names += [n for n in doc_ids_in(next(loader)[0], tok) if n]
        assert names and all(int(n.split("-")[1]) % 3 == rank for n in names)
        seen += names
    assert len(seen) == len(set(seen))


def test_one_epoch_reads_each_document_once_per_rank(tmp_path, tok):
    paths = write_shards(tmp_path, 2, 24, row_group_size=6)   # 8 row groups
    seen = {}
    for rank in range(2):
        loader = PackedLoader(tok, paths, batch_size=1, seq_len=48, rank=rank, world_size=2, buffer_docs=1)
        names = []
        while loader.epoch == 0:
            names += doc_ids_in(next(loader)[0], tok)
        seen[rank] = [n for n in names if n is not None]
    # rank 0 reads row groups 0,2 of shard 0 and 0,2 of shard 1 (docs 0-5, 12-17 of each), rank 1 the rest
    for rank, names in seen.items():
        assert len(names) == len(set(names)), "a document was read twice within one epoch"
        assert all((int(n.split("-")[1]) // 6) % 2 == rank for n in names)
    assert not set(seen[0]) & set(seen[1])


def test_training_split_never_reads_validation(tmp_path, tok):
    paths = write_shards(tmp_path, 3, 30)
    train = split_shards(str(tmp_path), "train")
    assert split_shards(str(tmp_path), "val") == [paths[-1]]
    assert paths[-1] not in train
    loader = PackedLoader(tok, train, batch_size=4, seq_len=64, buffer_docs=8)
    names = []
    for _ in range(40):
        names += doc_ids_in(next(loader)[0], tok)
    assert names and not any(n and n.startswith("2-") for n in names)


def test_split_needs_two_shards(tmp_path):
    write_shards(tmp_path, 1, 5)
    with pytest.raises(FileNotFoundError, match="--embedded"):
        split_shards(str(tmp_path), "train")


def test_best_fit_state_restores_the_exact_buffer():
    """Documents of equal length keep their order through state_dict/load_state_dict (re-inserting them would
    reverse it, and a resumed run would pack different rows)."""
    import random

    from nanochat.dataloader import BestFit
    rng = random.Random(0)
    docs = [([n] * rng.choice((3, 5, 5, 8)),) for n in range(300)]
    taken = {}

    def buffer(name, start=0):
        taken[name] = start
        buf = BestFit(None, buffer_size=6)

        def refill():
            buf.add(docs[taken[name]])
            taken[name] += 1
        buf.refill = refill
        return buf

    a = buffer("a")
    a.row(20)
    b = buffer("b", start=taken["a"])   # the resumed run: the same stream from here on
    b.load_state_dict(a.state_dict())
    assert [a.row(20) for _ in range(20)] == [b.row(20) for _ in range(20)]
