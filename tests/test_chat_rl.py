"""scripts/chat_rl.py: the pure parts against hand computations (advantages, the masked per-token loss and the
direction of its gradient, the batch built from engine outputs), then end to end from a tiny SFT-ed model:
a short run that checkpoints and reports, SIGTERM + --resume reaching bit-identical weights, two processes,
bad input, and (slow) a real learning signal on held-out synthetic math problems."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from nanochat.checkpoint import complete_steps, load_checkpoint, load_model
from nanochat.engine import Engine, SamplingParams
from scripts.chat_rl import (
    advantages,
    build_batch,
    completion_text,
    example_indices,
    main,
    pass_at_k,
    policy_gradient_loss,
)
from tasks.synthetic import SyntheticMath
from tests.dist_utils import REPO_ROOT, check_ok, run_torchrun
from tests.engine_utils import bigram_model, byte_tokenizer, chain, random_model
from tests.rl_utils import make_sft_checkpoint

TOK = byte_tokenizer()
S = TOK.special_ids
BOS, U_START, U_END, A_START, A_END = (S[n] for n in ("<|bos|>", "<|user_start|>", "<|user_end|>",
                                                      "<|assistant_start|>", "<|assistant_end|>"))
PY_START, PY_END, OUT_START, OUT_END = (S[n] for n in ("<|python_start|>", "<|python_end|>",
                                                       "<|output_start|>", "<|output_end|>"))


# ----------------------------------------------------------------------------- advantages and the loss

def test_advantages_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    adv = advantages(rewards, group_size=4)
    # group means 0.5, 1.0, 0.25
    assert torch.allclose(adv, torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0, -0.25, -0.25, -0.25, 0.75]))
    # population std of the groups: 0.5, 0, sqrt(3)/4; a group with one reward for all stays at 0
    adv = advantages(rewards, group_size=4, std_normalize=True)
    s = 3 ** 0.5 / 4
    assert torch.allclose(adv, torch.tensor([1.0, -1, -1, 1, 0, 0, 0, 0, -0.25 / s, -0.25 / s, -0.25 / s, 0.75 / s]),
                          atol=1e-4)


def test_policy_gradient_loss_by_hand():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]],
                           [[1.0, 1.0, 0.0], [0.0, 0.0, 3.0], [5.0, 5.0, 5.0]]])  # (B=2, T=3, V=3)
    targets = torch.tensor([[0, 1, -1], [-1, 2, 0]])  # -1: not sampled (prompt, forced, padding)
    adv = torch.tensor([0.5, -1.0])
    logp = torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    loss = policy_gradient_loss(logp, targets, adv, num_tokens=4)
    # log p: row 0 -> log(e^2 / (e^2 + 2)), log(e / (e + 2)); row 1 -> log(e^3 / (e^3 + 2)), log(1/3)
    expected = -(0.5 * (math.log(math.e ** 2 / (math.e ** 2 + 2)) + math.log(math.e / (math.e + 2)))
                 - 1.0 * (math.log(math.e ** 3 / (math.e ** 3 + 2)) + math.log(1 / 3))) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # whatever sits at masked positions does not matter
    assert policy_gradient_loss(torch.where(targets >= 0, logp, 1e6), targets, adv, 4).item() == pytest.approx(expected)


def test_gradient_step_favours_positive_advantages():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, requires_grad=True)
    targets = torch.tensor([[1, 3, 0, -1], [-1, 2, 2, 4]])
    adv = torch.tensor([1.0, -1.0])

    def logp(lg):
        return torch.log_softmax(lg, -1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]

    policy_gradient_loss(logp(logits), targets, adv, num_tokens=6).backward()
    assert torch.all(logits.grad[targets < 0] == 0)  # masked positions get no gradient at all
    after = logp(logits.detach() - 0.1 * logits.grad)  # one small SGD step
    change = (after - logp(logits.detach()))[targets >= 0].view(-1)
    rows = torch.tensor([0, 0, 0, 1, 1, 1])
    assert torch.all(change[rows == 0] > 0), change  # positive advantage: every sampled token more likely
    assert torch.all(change[rows == 1] < 0), change  # negative advantage: less likely


def test_micro_batches_give_the_gradient_of_the_whole_step():
    """Normalising by the step's token count makes accumulation over micro-batches (with their own padding)
    equal to one big batch."""
    model = random_model(seed=3)
    g = torch.Generator().manual_seed(0)
    prompts = [[BOS] + torch.randint(0, 256, (n,), generator=g).tolist() for n in (3, 7, 2, 5)]
    completions = [torch.randint(0, 256, (n,), generator=g).tolist() for n in (6, 2, 9, 4)]
    sampled = [[int(x) for x in torch.rand(len(c), generator=g) > 0.3] for c in completions]
    adv = torch.tensor([0.7, -0.2, -0.9, 0.4])
    num_tokens = sum(map(sum, sampled))

    def grads(chunk):
        model.zero_grad()
        for b0 in range(0, 4, chunk):
            inputs, targets = build_batch(prompts[b0:b0 + chunk], completions[b0:b0 + chunk],
                                          sampled[b0:b0 + chunk], pad_id=A_END)
            nll = model(inputs, targets, loss_reduction="none")
            policy_gradient_loss(-nll.view(targets.shape), targets, adv[b0:b0 + chunk], num_tokens).backward()
        return [p.grad.clone() for p in model.parameters()]

    for a, b in zip(grads(4), grads(1)):
        assert torch.allclose(a, b, atol=1e-6)


# ----------------------------------------------------------------------------- the batch

def test_build_batch_masks_prompt_forced_tokens_and_padding():
    prompts = [[BOS, U_START, 7, U_END, A_START], [BOS, U_START, 8, 9, U_END, A_START]]
    completions = [[10, PY_START, 11, PY_END, OUT_START, 12, OUT_END, 13, A_END], [14, A_END]]
    sampled = [[1, 1, 1, 1, 0, 0, 0, 1, 1], [1, 1]]
    inputs, targets = build_batch(prompts, completions, sampled, pad_id=A_END)
    assert inputs.tolist() == [[BOS, U_START, 7, U_END, A_START, 10, PY_START, 11, PY_END, OUT_START, 12, OUT_END, 13],
                               [BOS, U_START, 8, 9, U_END, A_START, 14, A_END, A_END, A_END, A_END, A_END, A_END]]
    N = -1
    assert targets.tolist() == [[N, N, N, N, 10, PY_START, 11, PY_END, N, N, N, 13, A_END],
                                [N, N, N, N, N, 14, A_END, N, N, N, N, N, N]]


def test_batch_from_the_engine_masks_the_tool_output():
    # a scripted model: it calls the calculator on "6*7", then says "!" after the tool's output and stops
    model = bigram_model({**chain(A_START, PY_START, "6*7", PY_END, "?", A_END), **chain(OUT_END, "!", A_END)})
    engine = Engine(model, TOK, calculator=lambda expr: "42" if expr == "6*7" else None)
    prompt = [BOS, U_START, *b"q", U_END, A_START]
    tokens, sampled = engine.generate_batch([prompt], SamplingParams(temperature=1.0, seed=0), 2, keep_stop=True)
    expected = [PY_START, *b"6*7", PY_END, OUT_START, *b"42", OUT_END, ord("!"), A_END]
    assert tokens == [expected, expected]  # the stop token is kept: stopping is trained on
    assert sampled[0] == [1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1]
    assert completion_text(TOK, tokens[0], engine.always_stop).endswith("!")
    _, targets = build_batch([prompt] * 2, tokens, sampled, pad_id=A_END)
    trained = [t for t in targets[0].tolist() if t >= 0]
    assert trained == [PY_START, *b"6*7", PY_END, ord("!"), A_END]
    assert len(trained) == sum(sampled[0])


# ----------------------------------------------------------------------------- which problems, pass@k

def test_example_indices_split_the_step_and_cover_each_epoch():
    n, E, W = 10, 4, 2
    walk = [i for step in range(5) for r in range(W) for i in example_indices(step, r, W, E, n, seed=1)]
    assert sorted(walk[:10]) == list(range(10)) and sorted(walk[10:20]) == list(range(10))  # every epoch
    assert walk[:10] != walk[10:20]  # each epoch draws its own order
    one_rank = [i for step in range(5) for i in example_indices(step, 0, 1, E, n, seed=1)]
    assert one_rank == walk  # ranks take contiguous shares of the same walk
    assert example_indices(3, 1, W, E, n, seed=1) == example_indices(3, 1, W, E, n, seed=1)
    assert example_indices(3, 1, W, E, n, seed=1) != example_indices(3, 1, W, E, n, seed=2)


def test_pass_at_k():
    assert pass_at_k(8, 0, 1) == 0.0 and pass_at_k(8, 8, 3) == 1.0
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(4, 1, 4) == 1.0


# ----------------------------------------------------------------------------- end to end

FAST = ["--task=synthetic", "--examples-per-step=4", "--num-samples=4", "--device-batch-size=8",
        "--max-new-tokens=64", "--eval-examples=8", "--eval-samples=2", "--init-lr-frac=0.2", "--eval-every=100"]
STRAIGHT = [*FAST, "--num-steps=4", "--save-every=1", "--keep-last=10"]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A base dir with a tokenizer and a tiny SFT model (tag "tiny") that, sampled at temperature 1, solves
    a fair share of the synthetic problems but far from all: rewards vary within groups, so steps move weights."""
    d = tmp_path_factory.mktemp("rl")
    make_sft_checkpoint(d, steps=120)
    return d


@pytest.fixture(scope="module")
def straight(base_dir):
    """The log of a 4-step run (tag "straight") that kept a checkpoint after every step."""
    return run(base_dir, *STRAIGHT, sft_tag(base_dir, "straight"))


def sft_tag(base_dir, tag):
    """A copy of the fixture's SFT model under its own tag, so each run writes its own chatrl_checkpoints/<tag>."""
    shutil.copytree(base_dir / "chatsft_checkpoints" / "tiny", base_dir / "chatsft_checkpoints" / tag)
    return f"--model-tag={tag}"


def env_for(base_dir):
    return {**os.environ, "NANOCHAT_BASE_DIR": str(base_dir), "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO_ROOT}


def run(base_dir, *args, timeout=300, **env):
    proc = subprocess.run([sys.executable, "-m", "scripts.chat_rl", *args], cwd=REPO_ROOT,
                          env={**env_for(base_dir), **env},
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"chat_rl failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def step_rewards(log):
    return {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"step (\d+)/\d+ \| reward ([\d.]+)", log)}


def rl_weights(base_dir, tag, step=None):
    return load_checkpoint(str(base_dir / "chatrl_checkpoints" / tag), step=step, load_rank_state=False, log=None)[0]


def test_run_checkpoints_and_reports(base_dir, straight):
    assert "step 00000 | pass@1 " in straight and "step 00004 | pass@1 " in straight  # at the start and the end
    assert sorted(step_rewards(straight)) == [1, 2, 3, 4]
    assert re.fullmatch(r"pass@1: [\d.]+", straight.strip().splitlines()[-1])
    ckpt = str(base_dir / "chatrl_checkpoints" / "straight")
    assert complete_steps(ckpt) == [4, 3, 2, 1]
    model_state, rank_state, meta = load_checkpoint(ckpt, log=None)
    assert meta["final"] and meta["step"] == 4 and set(meta["evals"]) == {"0", "4"}
    assert "optimizer" in rank_state and "rng" in rank_state
    sft = load_checkpoint(str(base_dir / "chatsft_checkpoints" / "tiny"), log=None)[0]
    assert any(not torch.equal(sft[k], model_state[k]) for k in sft)  # RL changed the weights
    model, _, _ = load_model("rl", model_tag="straight", base_dir=str(base_dir))  # later stages can load it
    assert model.config.n_layer == 2
    report = (base_dir / "report" / "chat-rl.md").read_text()
    assert "## Chat RL" in report and "pass@1" in report
    # a finished run is not redone
    assert "nothing to do" in run(base_dir, *STRAIGHT, "--model-tag=straight", "--resume")


def test_sigterm_then_resume_reaches_the_same_weights(base_dir, straight):
    proc = subprocess.Popen([sys.executable, "-m", "scripts.chat_rl", *STRAIGHT, "--save-every=100",
                             sft_tag(base_dir, "killed")], cwd=REPO_ROOT, env=env_for(base_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    for line in proc.stdout:
        if line.startswith("step 00001/") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out[-2000:]
    assert "rerun with --resume" in out
    stopped_at = load_checkpoint(str(base_dir / "chatrl_checkpoints" / "killed"), log=None)[2]["step"]
    assert 1 <= stopped_at < 4
    resumed = run(base_dir, *STRAIGHT, "--model-tag=killed", "--resume")
    assert f"resumed from step {stopped_at}" in resumed
    a, b = step_rewards(straight), step_rewards(resumed)
    assert sorted(b) == list(range(stopped_at + 1, 5)) and all(a[s] == b[s] for s in b), (a, b)
    wa, wb = rl_weights(base_dir, "straight"), rl_weights(base_dir, "killed")
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    # and the weights did move at every step, so the equality above says something
    steps = [rl_weights(base_dir, "straight", s) for s in (1, 2, 3, 4)]
    assert all(any(not torch.equal(u[k], v[k]) for k in u) for u, v in zip(steps, steps[1:]))


def test_oversized_batches_fit_a_small_gpu(base_dir, straight):
    """On a simulated GPU that holds 4 rows, the training micro-batch (8) and the sampling batch (all 16 rows of
    a step) fit themselves to 4; the step is the same: rows sample alone, and micro-batches sum to the step."""
    log = run(base_dir, *STRAIGHT, "--num-steps=1", sft_tag(base_dir, "fitted"), NANOCHAT_SIMULATE_GPU_ROWS="4")
    assert "--device-batch-size 8 does not fit in GPU memory: using 4" in log
    assert "--sample-batch-size 16 does not fit in GPU memory: using 4" in log
    assert step_rewards(log) == {1: step_rewards(straight)[1]}
    meta = load_checkpoint(str(base_dir / "chatrl_checkpoints" / "fitted"), log=None)[2]
    assert meta["train_config"]["device_batch_size"] == 4 and meta["step"] == 1
    sft, whole, fitted = (load_checkpoint(str(base_dir / "chatsft_checkpoints" / "tiny"), log=None)[0],
                          rl_weights(base_dir, "straight", 1), rl_weights(base_dir, "fitted"))
    for k in whole:   # the same update up to the order of float sums (cautious Muon flips a few tiny entries)
        assert (fitted[k] - whole[k]).norm() <= 0.1 * (whole[k] - sft[k]).norm(), k


def test_two_processes_match_one(base_dir, straight):
    proc = run_torchrun(["-m", "scripts.chat_rl", *FAST, "--num-steps=1", sft_tag(base_dir, "two")], nproc=2,
                        timeout=300, extra_env={"NANOCHAT_BASE_DIR": str(base_dir)})
    check_ok(proc)
    two = proc.stdout
    assert "(2 per rank x 2 processes)" in two and two.strip().splitlines()[-1].startswith("pass@1: ")
    # Step 1 samples from the SFT model with the same seeds on either layout, so the all-reduced eval and
    # reward are exactly the one-process ones; the update, summed in another order, agrees to rounding.
    assert re.search(r"step 00000 \| (.*)", straight).group(1) == re.search(r"step 00000 \| (.*)", two).group(1)
    assert step_rewards(straight)[1] == step_rewards(two)[1]
    one_step, w2 = rl_weights(base_dir, "straight", step=1), rl_weights(base_dir, "two")
    sft = load_checkpoint(str(base_dir / "chatsft_checkpoints" / "tiny"), log=None)[0]
    assert any(not torch.equal(w2[k], sft[k]) for k in w2)
    for k in w2:
        assert torch.allclose(w2[k], one_step[k], atol=1e-5), k


def test_gsm8k_from_local_files_in_the_hub_format(base_dir, tmp_path):
    """The full profile's task offline: GSM8K rows (question; answer with <<calculator>> notes and '#### N')."""
    def rows(n, offset):
        return [{"question": f"Tom has {a} apples and buys {a + 2} more. How many apples does he have now?",
                 "answer": f"He has {a} + {a + 2} = <<{a}+{a + 2}={2 * a + 2}>>{2 * a + 2} apples.\n#### {2 * a + 2}"}
                for a in range(offset, offset + n)]
    for name, n, offset in (("train", 8, 1), ("test", 4, 20)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(n, offset)))
    out = run(base_dir, "--task=gsm8k", f"--train-path={tmp_path / 'train.jsonl'}",
              f"--test-path={tmp_path / 'test.jsonl'}", *FAST[1:], "--num-steps=1", sft_tag(base_dir, "gsm8k"))
    assert "GSM8K" in out and sorted(step_rewards(out)) == [1]
    assert re.fullmatch(r"pass@1: [\d.]+", out.strip().splitlines()[-1])


def test_engine_bench_runs_on_a_checkpoint(base_dir, tmp_path):
    """bench/engine.py --source times the fixture's SFT model: decode tokens/s at each batch size, no digest."""
    from bench.engine import main as bench_engine
    out = tmp_path / "bench.json"
    bench_engine(["--source=sft", "--model-tag=tiny", f"--base-dir={base_dir}", "--decode-steps=4", "--repeats=1",
                  "--batch-sizes", "1", "4", f"--json={out}"])
    result = json.loads(out.read_text())
    assert result["decode_tokens_per_s"] > 0 and "outputs_sha256" not in result


def test_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as e:
        main(["--task=aime"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "'aime'" in err and "gsm8k" in err and "synthetic" in err
    with pytest.raises(SystemExit) as e:   # no SFT checkpoint yet: exit 2, naming the stage that makes one
        main(["--task=synthetic", "--device-type=cpu"])
    assert e.value.code == 2 and "python -m scripts.chat_sft" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--task=synthetic", "--train-path=problems.jsonl"])
    assert e.value.code == 2 and "--task=synthetic" in capsys.readouterr().err


# ----------------------------------------------------------------------------- a real learning signal

def correct_counts(model, tokenizer, task, num_problems, num_samples, seed):
    """Per problem, how many of num_samples completions (temperature 1, top-k 50, as in training) are right."""
    engine = Engine(model, tokenizer, max_batch_size=64)
    prompts = [tokenizer.render_for_completion(task[i]) for i in range(num_problems)]
    params = [SamplingParams(temperature=1.0, top_k=50, max_tokens=96, seed=seed + i * num_samples)
              for i in range(num_problems)]
    completions, _ = engine.generate_batch(prompts, params, num_samples)
    right = [task.evaluate(task[r // num_samples], tokenizer.decode(t)) for r, t in enumerate(completions)]
    return torch.tensor(right).view(num_problems, num_samples).sum(1)


@pytest.mark.slow
def test_rl_raises_reward_on_held_out_problems(tmp_path):
    base_dir = tmp_path
    make_sft_checkpoint(base_dir, tag="learn", steps=200)  # better than the fast tests' model: ~2/3 right
    run(base_dir, "--task=synthetic", "--num-steps=60", "--examples-per-step=16", "--num-samples=8",
        "--device-batch-size=64", "--max-new-tokens=96", "--init-lr-frac=0.2", "--eval-every=100",
        "--eval-examples=16", "--eval-samples=2", "--model-tag=learn", timeout=900)
    # Held-out problems: SyntheticMath seed 7 (SFT trained on seed 0, RL on seed 0, its eval is seed 1).
    # Both models answer the same problems with the same sampling seeds, so we compare them problem by problem.
    task = SyntheticMath(size=128, seed=7)
    sft, tokenizer, _ = load_model("sft", model_tag="learn", base_dir=str(base_dir))
    rl, _, _ = load_model("rl", model_tag="learn", base_dir=str(base_dir))
    before = correct_counts(sft, tokenizer, task, 128, 8, seed=1234)
    after = correct_counts(rl, tokenizer, task, 128, 8, seed=1234)
    diff = (after - before).double() / 8  # per-problem change in the fraction of right answers
    mean, stderr = diff.mean().item(), (diff.std() / 128 ** 0.5).item()
    print(f"held-out reward {before.sum().item() / 1024:.4f} -> {after.sum().item() / 1024:.4f}, "
          f"paired change {mean:+.4f} +- {stderr:.4f}")
    # 1,024 samples each (128 problems x 8). The change must exceed 4 paired standard errors (not noise at
    # this sample size) and be at least 4 points of reward. Measured with torch 2.15: 30 steps gave 0.640 -> 0.685
    # (+0.045 +- 0.015, 2.9 standard errors; 0.594 -> 0.727 with an earlier torch), 60 steps 0.640 -> 0.759,
    # +0.119 +- 0.022 (5.4 standard errors).
    assert mean > 4 * stderr and mean > 0.04, (mean, stderr)



def test_inference_load_in_bf16_decodes_like_fp32_weights(base_dir):
    """load_model(dtype=bf16), as chat_web/chat_cli/chat_eval do on bf16 GPUs: every weight is stored in bf16, and
    under bf16 autocast its logits stay within bf16 rounding of the fp32-weight model's (the matmuls see the same
    rounded weights; only the residual stream and lookups lose fp32 precision)."""
    fp32, tokenizer, _ = load_model("sft", model_tag="tiny", base_dir=str(base_dir))
    bf16, _, _ = load_model("sft", model_tag="tiny", base_dir=str(base_dir), dtype=torch.bfloat16)
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    ids = torch.tensor([tokenizer.render_for_completion(
        {"messages": [{"role": "user", "content": "What is 12 + 30?"}, {"role": "assistant", "content": ""}]})])
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        a, b = fp32(ids).float(), bf16(ids).float()
    # measured: 0.12 against a largest logit of 14.1 (0.8%)
    assert (a - b).abs().max() < 0.03 * a.abs().max(), ((a - b).abs().max(), a.abs().max())
    assert (a[0, -1].argmax() == b[0, -1].argmax()).item()
