"""MuonAdamW across processes: two gloo ranks under torchrun, each with half of a fixed global batch,
must end where one process on the whole batch ends, each rank holding optimizer state for its share only.
The worker (tests/dist_optim_worker.py) also writes that one-process reference."""

import os

import pytest
import torch
from dist_utils import check_ok, run_torchrun, run_torchrun_two_nodes


def load_results(out_dir, world_size):
    results = [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(world_size)]
    assert [res["world_size"] for res in results] == [world_size] * world_size
    reference = torch.load(os.path.join(out_dir, "reference.pt"))
    assert reference["world_size"] == 1
    return results, reference


def expected_shares(groups, param_shapes, world_size):
    """{rank: {param name: {state key: shape}}} that ZeRO-style sharding should leave on each rank.
    AdamW: every rank, rows ceil(n / W) of each parameter (a 0-D scalar is one row). Muon: whole
    matrices; the same-shape matrices of a group are dealt out in order, ceil(K / W) per rank."""
    shares = {r: {} for r in range(world_size)}
    for kind, names in groups:
        if kind == "adamw":
            for name in names:
                shape = param_shapes[name] or (1,)
                rows = -(-shape[0] // world_size)
                for r in range(world_size):
                    shares[r][name] = {"exp_avg": (rows, *shape[1:]), "exp_avg_sq": (rows, *shape[1:])}
            continue
        by_shape = {}
        for name in names:
            by_shape.setdefault(param_shapes[name], []).append(name)
        for same in by_shape.values():
            per_rank = -(-len(same) // world_size)
            for i, name in enumerate(same):
                shape = param_shapes[name]
                state = {"momentum_buffer": shape}
                if name != "lonely":  # the model's matrices use NorMuon: one second moment per row
                    state["row_moments"] = (shape[0], 1)
                shares[i // per_rank][name] = state
    return shares


def check_matches_one_process(results, reference):
    first = results[0]["params"]
    for name, ref in reference["params"].items():
        diff = (first[name] - ref).abs().max().item()
        assert diff < 1e-5, f"{name}: distributed and single-process results differ by {diff:.3g}"
        assert not torch.equal(ref, reference["initial"][name]), f"{name} never moved"
    for res in results[1:]:  # every rank ends with the same bits: the all-gathers put them there
        for name, p in res["params"].items():
            assert torch.equal(p, first[name]), name


def test_two_ranks_match_one_process_and_shard_state(tmp_path):
    proc = run_torchrun(["tests/dist_optim_worker.py", str(tmp_path)], nproc=2, timeout=240)
    check_ok(proc)
    results, reference = load_results(tmp_path, 2)
    check_matches_one_process(results, reference)
    shapes = {name: tuple(p.shape) for name, p in reference["params"].items()}
    shares = expected_shares(reference["groups"], shapes, 2)
    for r, res in enumerate(results):
        assert res["state"] == shares[r], f"rank {r} holds the wrong optimizer state"
    # The awkward cases really occur: 3 c_fc matrices on 2 ranks split 2 + 1, the lone matrix 1 + 0,
    # vocab 67 rows split 34 + 34 (one padding row), the length-5 vector 3 + 3, and the one-process
    # run keeps whole tensors.
    assert {n for n in results[1]["state"] if "c_fc" in n} == {"blocks.2.mlp.c_fc.weight"}
    assert "lonely" in results[0]["state"] and "lonely" not in results[1]["state"]
    assert results[1]["state"]["wte.weight"]["exp_avg"] == (34, shapes["wte.weight"][1])
    assert results[1]["state"]["vector"]["exp_avg"] == (3,)
    assert reference["state"]["wte.weight"]["exp_avg"] == shapes["wte.weight"]


@pytest.mark.slow  # two torchrun agents meeting at a rendezvous: ~30 s or more on 2 cores
def test_two_nodes_on_localhost_match_one_process(tmp_path):
    proc = run_torchrun_two_nodes(["tests/dist_optim_worker.py", str(tmp_path)], nproc_per_node=1, timeout=240)
    check_ok(proc)
    check_matches_one_process(*load_results(tmp_path, 2))
