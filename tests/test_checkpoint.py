"""nanochat/checkpoint.py: complete vs incomplete steps, corrupt files skipped, pruning, world-size check."""

import os

import pytest
import torch

from nanochat.checkpoint import complete_steps, load_checkpoint, save_checkpoint


def save(d, step, value, keep_last=None):
    save_checkpoint(str(d), step, {"w": torch.full((3,), float(value))}, {"opt": value}, {"note": value},
                    keep_last=keep_last)


def test_roundtrip_and_latest(tmp_path):
    for s in (10, 20, 30):
        save(tmp_path, s, s)
    assert complete_steps(str(tmp_path)) == [30, 20, 10]
    model, rank_state, meta = load_checkpoint(str(tmp_path), log=None)
    assert model["w"].tolist() == [30.0] * 3 and rank_state == {"opt": 30}
    assert meta["step"] == 30 and meta["world_size"] == 1 and meta["note"] == 30
    model, _, _ = load_checkpoint(str(tmp_path), step=10, log=None)
    assert model["w"][0] == 10
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_incomplete_and_corrupt_steps_are_skipped(tmp_path):
    save(tmp_path, 10, 10)
    save(tmp_path, 20, 20)
    save(tmp_path, 30, 30)
    os.remove(tmp_path / "meta_000030.json")                 # never declared complete (killed mid-save)
    with open(tmp_path / "model_000020.pt", "r+b") as f:     # truncated on disk
        f.truncate(40)
    messages = []
    model, _, meta = load_checkpoint(str(tmp_path), log=messages.append)
    assert meta["step"] == 10 and model["w"][0] == 10
    assert len(messages) == 1 and "skipping checkpoint step 20" in messages[0]


def test_nothing_loadable(tmp_path):
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        load_checkpoint(str(tmp_path), log=None)


def test_keep_last_prunes_old_steps(tmp_path):
    for s in (1, 2, 3, 4):
        save(tmp_path, s, s, keep_last=2)
    assert complete_steps(str(tmp_path)) == [4, 3]
    assert sorted(os.listdir(tmp_path)) == sorted(
        f"{kind}_{s:06d}{suffix}" for s in (3, 4)
        for kind, suffix in (("model", ".pt"), ("meta", ".json"), ("optim", "_rank0.pt")))


def test_world_size_mismatch(tmp_path):
    save(tmp_path, 5, 5)
    import json
    meta_path = tmp_path / "meta_000005.json"
    meta = json.loads(meta_path.read_text())
    meta["world_size"] = 8
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="written by 8 ranks"):
        load_checkpoint(str(tmp_path), log=None)
    # the weights alone (no rank state) still load, e.g. for evaluation or finetuning
    model, rank_state, _ = load_checkpoint(str(tmp_path), load_rank_state=False, log=None)
    assert rank_state is None and model["w"][0] == 5
