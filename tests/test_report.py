"""nanochat/report.py and scripts/report.py: sections, curves (also across a resumed base_train run), and the
assembled report.md with its summary table, time and cost lines, and PNG plots."""

import json
import os
import re
import time

import pytest

from nanochat.report import METRICS, PIPELINE, Report, get_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def report(tmp_path):
    return get_report(str(tmp_path))


def test_sections_are_written_and_read_back(report, tmp_path):
    path = report.log("Base model training", [{"depth": 4, "tokens": 123_456, "val_bpb": 1.2345678},
                                              "a paragraph", {"note": "ok"}])
    assert path == str(tmp_path / "report" / "base-model-training.md")
    with open(path) as f:
        md = f.read()
    assert md.startswith("## Base model training\ntimestamp: ")
    assert "- depth: 4\n- tokens: 123,456\n- val_bpb: 1.23457\na paragraph\n- note: ok\n" in md
    assert report.read("Base model training") == {"depth": 4, "tokens": 123_456, "val_bpb": 1.2345678, "note": "ok"}
    assert report.read("Chat SFT") is None
    report.log("My own stage", [{"x": 1}])
    report.log("Tokenizer training", [{"vocab_size": 4096}])
    # pipeline order first, whatever the order they were written in; unknown sections after
    assert report.sections() == ["Tokenizer training", "Base model training", "My own stage"]


def test_log_curve_merges_by_step_and_drops_what_a_resume_redoes(report):
    report.log_curve("Base model training", "train loss", [1, 2, 3, 4, 5, 6], [6.0, 5.0, 4.0, 3.5, 3.2, 3.0])
    report.log_curve("Base model training", "train loss", [7, 8], [2.9, 2.8])  # a later flush: merged
    [curve] = report.curves("Base model training")
    assert curve["steps"] == [1, 2, 3, 4, 5, 6, 7, 8] and curve["values"][-1] == 2.8
    # resumed from a checkpoint at step 3: steps 4..8 of the old run are gone, the new run's points replace them
    report.log_curve("Base model training", "train loss", [4, 5], [3.4, 3.1], resume_step=3)
    [curve] = report.curves()
    assert curve == {"section": "Base model training", "name": "train loss", "steps": [1, 2, 3, 4, 5],
                     "values": [6.0, 5.0, 4.0, 3.4, 3.1]}
    with pytest.raises(AssertionError, match="2 steps but 1 values"):
        report.log_curve("Chat SFT", "val loss", [1, 2], [0.5])


def fake_run(report, start_epoch, gpus):
    """A run's report directory as the stages would leave it, with a hand-written run_info.json."""
    os.makedirs(report.dir, exist_ok=True)
    system = {"git": {"commit": "abc1234", "dirty": True}, "gpus": [{"name": "NVIDIA H100", "memory_gib": 79.6}] * gpus,
              "cpu_count": 16, "memory_gib": 128.0, "python": "3.12.0", "torch": "2.8.0", "platform": "Linux"}
    with open(os.path.join(report.dir, "run_info.json"), "w") as f:
        json.dump({"start_time": "2026-01-01 00:00:00", "start_epoch": start_epoch, "system": system}, f)
    report.log("Chat evaluation sft", [{"tasks": "ARC-Easy,GSM8K", "ARC-Easy": 0.41, "GSM8K": 0.05, "ChatCORE": 0.1}])
    report.log("Custom stage", [{"anything": 1}])
    report.log("Base model evaluation", [{"core": 0.2, "val_bpb": 0.83}])
    report.log("Chat evaluation mid", [{"tasks": "ARC-Easy,SyntheticMath", "ARC-Easy": 0.3, "SyntheticMath": 0.05,
                                        "ChatCORE": 0.02}])
    report.log("Tokenizer training", [{"vocab_size": 65536}])
    report.log("Chat SFT", [{"val_loss": 1.1}])
    report.log("Base model training", [{"val_bpb": 0.81, "total_training_time": 5940.4}])
    report.log_curve("Base model training", "train loss", range(1, 101), [5 / (1 + s / 10) for s in range(1, 101)])
    report.log_curve("Base model training", "val bpb", [0, 50, 100], [3.0, 1.0, 0.8])
    report.log_curve("Chat SFT", "val loss", [0, 10, 20], [2.0, 1.5, 1.2])
    report.log_curve("Chat RL", "reward", [1, 2, 3], [0.1, 0.2, 0.3])  # RL was interrupted: no section


def test_generate_assembles_everything(report):
    fake_run(report, time.time() - 2 * 3600, gpus=8)
    path = report.generate(gpu_hour_rate=3.0)
    with open(path) as f:
        md = f.read()
    assert path == os.path.join(report.dir, "report.md")
    assert "- git commit: abc1234 (with uncommitted changes)" in md and "- GPUs: 8 x NVIDIA H100 (79.6 GiB)" in md
    assert "- CPUs: 16, memory: 128.0 GiB" in md and "Python 3.12.0, torch 2.8.0" in md
    # every section, in pipeline order, the unfinished RL stage and the unknown section last
    order = ["Tokenizer training", "Base model training", "Base model evaluation", "Chat evaluation mid", "Chat SFT",
             "Chat evaluation sft", "Custom stage", "Chat RL"]
    positions = [md.index(f"## {s}\n") for s in order]
    assert positions == sorted(positions)
    assert "- val_loss: 1.1" in md and "- anything: 1" in md
    # the summary table: every standard metric, '-' where a stage did not report it, extra tasks after
    table = md[md.index("## Summary"):md.index("Total wall-clock")]
    assert "| metric | BASE | MID | SFT | RL |" in table
    assert "| CORE | 0.2000 | - | - | - |\n| val bpb | 0.8300 | - | - | - |\n| ARC-Easy |" in table
    assert "| ARC-Easy | - | 0.3000 | 0.4100 | - |" in table
    assert "| GSM8K | - | - | 0.0500 | - |" in table
    assert "| HumanEval | - | - | - | - |" in table
    # ChatCORE is the mean over the full task set; a mean over fewer tasks gets its own row naming them
    assert "| ChatCORE | - | - | - | - |" in table
    assert "| ChatCORE over ARC-Easy+SyntheticMath | - | 0.0200 | - | - |" in table
    assert "| ChatCORE over ARC-Easy+GSM8K | - | - | 0.1000 | - |" in table
    assert "| SyntheticMath | - | 0.0500 | - | - |" in table
    assert all(f"| {m} |" in table for m in METRICS)
    assert "Leaderboard: base training 1h39m (training steps only), CORE 0.2000, does not beat GPT-2's 0.2565" in md
    assert re.search(r"Total wall-clock time: 2h00m since the run started", md)
    assert "The plan's estimate" not in md   # no plan was logged
    assert "Estimated cost: 8 GPUs x 2.00 h x $3.00/GPU-hour = $48.00 (an estimate" in md
    # one PNG per stage with curves, next to report.md and linked from it inside its section
    for section in ("Base model training", "Chat SFT", "Chat RL"):
        name = section.lower().replace(" ", "-") + "-curves.png"
        assert f"![{section} curves]({name})" in md
        assert md.index(f"]({name})") > md.index(f"## {section}\n")
        with open(os.path.join(report.dir, name), "rb") as f:
            assert f.read(8) == PNG_MAGIC
    assert "(no summary logged: the stage did not finish)" in md  # Chat RL
    assert not [f for f in os.listdir(report.dir) if f.endswith(".tmp")]


def test_chatcore_row_is_only_the_full_task_set(report):
    full = METRICS[1:-1]   # the tasks chat_eval runs by default
    report.log("Chat evaluation sft", [{"tasks": ",".join(full), **dict.fromkeys(full, 0.5), "ChatCORE": 0.25}])
    report.log("Chat evaluation rl", [{"tasks": ",".join(reversed(full[1:])), "ChatCORE": 0.125}])
    assert report.summary()["ChatCORE"] == {"sft": 0.25}
    assert report.summary()["ChatCORE over " + "+".join(reversed(full[1:]))] == {"rl": 0.125}


def test_leaderboard_line_and_the_plans_estimate_beside_the_cost(report):
    from nanochat import plan
    fake_run(report, time.time() - 3600, gpus=8)
    hw = plan.parse_gpus("8xH100")
    model = plan.meta_model(24, 32768, 2048)
    the_plan = plan.make_plan([plan.plan_row("base_train", model, hw, 16, 2**19, 11000)], hw)
    report.log_plan(the_plan)
    report.log("Base model evaluation", [{"core": 0.2612}])
    with open(report.generate(gpu_hour_rate=3.0)) as f:
        md = f.read()
    assert "Leaderboard: base training 1h39m (training steps only), CORE 0.2612, beats GPT-2's 0.2565" in md
    measured = re.search(r"Estimated cost: 8 GPUs x 1.00 h x \$3.00/GPU-hour = \$24.0\d", md).start()
    total = the_plan["total"]
    estimate = md.index(f"The plan's estimate: {total['hours']:.2f} h of training and eval compute, "
                        f"${total['cost']:,.2f}, on 8 x H100 at 40% MFU")
    assert estimate > measured and "## Summary" in md
    assert "run_plan" not in " ".join(report.sections())   # the plan is not a section
    report.log("Base model training", [{"val_bpb": 0.81}])   # a run that recorded no training time: no line
    with open(report.generate()) as f:
        assert "Leaderboard" not in f.read()


def test_generate_on_a_cpu_run_without_reset(report):
    report.log("Base model training", [{"val_bpb": 1.0}])
    path = report.generate()
    with open(path) as f:
        md = f.read()
    assert "Total wall-clock time: 0m" in md and "since the first section" in md   # system_info() can take seconds
    import torch
    if not torch.cuda.is_available():
        assert "Estimated cost: $0.00 (a CPU run" in md and "- GPUs: none (CPU run)" in md
    assert "| CORE | - | - | - | - |" in md


def test_reset_starts_a_new_run(report):
    report.log("Chat SFT", [{"val_loss": 1.0}])
    report.log_curve("Chat SFT", "val loss", [1], [1.0])
    report.reset()
    assert report.sections() == [] and report.curves() == []
    info = report.run_info()
    assert info["start_epoch"] <= time.time() and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", info["start_time"])
    system = info["system"]
    assert set(system["git"]) == {"commit", "dirty"} and system["cpu_count"] >= 1 and system["memory_gib"] > 0
    assert system["torch"] and system["python"].count(".") == 2


def test_failed_generate_leaves_the_previous_card_intact(report):
    fake_run(report, time.time(), gpus=0)
    path = report.generate()
    with open(path) as f:
        before = f.read()
    with open(os.path.join(report.dir, "curves", "chat-sft--broken.json"), "w") as f:
        json.dump({"section": "Chat SFT", "name": "broken"}, f)  # no steps or values: plotting it fails
    report.log("Chat evaluation rl", [{"ChatCORE": 0.3}])
    with pytest.raises(KeyError):
        report.generate()
    with open(path) as f:
        assert f.read() == before
    assert not [f for f in os.listdir(report.dir) if ".tmp" in f]


def test_other_ranks_write_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    report = Report(str(tmp_path / "report"))
    assert report.reset() is None and report.log("Chat SFT", [{"a": 1}]) is None
    assert report.log_curve("Chat SFT", "val loss", [1], [1.0]) is None and report.generate() is None
    assert not os.path.exists(tmp_path / "report")


def test_report_script(tmp_path, monkeypatch, capsys):
    from scripts.report import main
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path))
    main(["reset"])
    get_report().log("Base model evaluation", [{"core": 0.25}])
    path = main(["generate", "--gpu-hour-rate=2.5"])
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote {path}"
    with open(path) as f:
        assert "| CORE | 0.2500 | - | - | - |" in f.read()
    with pytest.raises(SystemExit):
        main(["publish"])
    assert PIPELINE.index("Chat SFT") < PIPELINE.index("Chat evaluation sft") < PIPELINE.index("Chat RL")


# ----------------------------------------------------------------------------- base_train records its curves

BASE_TRAIN = ["--depth=2", "--aspect-ratio=32", "--head-dim=32", "--max-seq-len=32", "--device-batch-size=4",
              "--total-batch-size=128", "--eval-tokens=256", "--sample-every=-1", "--compile=0", "--device-type=cpu",
              "--num-iterations=6", "--eval-every=2", "--save-every=3", "--keep-last=5", "--core-every=0"]


@pytest.fixture
def train_base(tmp_path, monkeypatch):
    from nanochat.synthetic import write_embedded_corpus
    from tests.engine_utils import byte_tokenizer
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path))
    write_embedded_corpus(str(tmp_path / "base_data"), num_shards=2, chars_per_shard=20_000)
    byte_tokenizer().save(str(tmp_path / "tokenizer"))
    return tmp_path


def test_base_train_curves_survive_resume(train_base):
    from scripts.base_train import main
    report = get_report(str(train_base))
    main([*BASE_TRAIN, "--model-tag=straight"])
    straight = report.curves("Base model training")
    assert [c["name"] for c in straight] == ["train loss", "val bpb"]
    assert straight[0]["steps"] == [1, 2, 3, 4, 5, 6] and straight[1]["steps"] == [0, 2, 4, 6]

    # the same run, interrupted after its step-3 checkpoint; its curve file already holds later points,
    # including one (val bpb at step 5) that the resumed run will not produce again
    main([*BASE_TRAIN, "--model-tag=resumed"])
    ckpt = train_base / "base_checkpoints" / "resumed"
    for f in os.listdir(ckpt):
        if "000006" in f:
            os.remove(ckpt / f)
    report.log_curve("Base model training", "val bpb", [5], [9.9])
    main([*BASE_TRAIN, "--model-tag=resumed", "--resume"])
    assert report.curves("Base model training") == straight  # resume is exact, and no stale point survives
