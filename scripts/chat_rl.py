"""
Reinforcement learning on math word problems, with the calculator tool: from the SFT model, sample
--num-samples completions per problem, reward each with the task's check, and step on
-sum(advantage * log p(token)), advantage = reward - its group's mean. That is GRPO (Shao et al. 2024) without
the parts that do nothing when each batch gets one update: no importance ratio, clipping or KL penalty.
Deliberately not here: several updates per batch (PPO), reward shaping or partial credit, a learned value.
"""

import argparse
import hashlib
import math
import os
from dataclasses import replace

import numpy as np
import torch

from nanochat.checkpoint import add_checkpoint_args, load_model
from nanochat.common import BadInput, all_ranks_sum, cli, compute_init, get_base_dir, positive, print0
from nanochat.engine import Engine, SamplingParams
from nanochat.run import Run
from nanochat.training import add_training_args, build_optimizer, fit_batch, probe_step, set_schedule

SYNTHETIC_TRAIN_SEED, SYNTHETIC_TEST_SEED = 0, 1
SYNTHETIC_TRAIN_SIZE = 8000  # about GSM8K's 7,473 training problems, so an epoch means the same on both


# -----------------------------------------------------------------------------
# The pure parts: which problems, the seeds, advantages, the batch, the loss, pass@k (tests/test_chat_rl.py)

def example_indices(step, rank, world_size, examples_per_step, num_examples, seed):
    """Rank `rank`'s share of positions step*E .. (step+1)*E - 1 of a walk in a fresh random order per epoch.
    A function of the step alone, so a resumed run takes exactly the problems the interrupted one would have."""
    per_rank = examples_per_step // world_size
    first = step * examples_per_step + rank * per_rank
    orders, out = {}, []
    for pos in range(first, first + per_rank):
        epoch, i = divmod(pos, num_examples)
        if epoch not in orders:
            orders[epoch] = np.random.default_rng([seed, epoch]).permutation(num_examples)
        out.append(int(orders[epoch][i]))
    return out


def sample_seed(*parts):
    """A 56-bit seed from any hashable description; the engine adds the sample number to it."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=7).digest(), "big")


def advantages(rewards, group_size, std_normalize=False, eps=1e-6):
    """rewards (N,) in groups of `group_size` consecutive rows -> (N,) reward minus its group's mean, optionally
    divided by the group's std. Off by default: it up-weights problems almost always or never solved (Dr. GRPO)."""
    r = rewards.view(-1, group_size)
    adv = r - r.mean(dim=1, keepdim=True)
    if std_normalize:
        adv = adv / (r.std(dim=1, unbiased=False, keepdim=True) + eps)
    return adv.view(-1)


def build_batch(prompts, completions, sampled, pad_id):
    """Rows of prompt + completion -> (inputs, targets), both (B, T) long. targets is -1 except where the model
    sampled the token (the final <|assistant_end|> included): prompt, tool-forced tokens and padding are not trained."""
    seqs = [list(p) + list(c) for p, c in zip(prompts, completions)]
    weights = [[0] * len(p) + list(s) for p, s in zip(prompts, sampled)]
    T = max(len(s) for s in seqs) - 1
    inputs = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    targets = torch.full((len(seqs), T), -1, dtype=torch.long)
    for b, (seq, w) in enumerate(zip(seqs, weights)):
        n = len(seq) - 1
        inputs[b, :n] = torch.tensor(seq[:-1])
        targets[b, :n] = torch.tensor([tok if keep else -1 for tok, keep in zip(seq[1:], w[1:])])
    return inputs, targets


def policy_gradient_loss(logprobs, targets, advantages, num_tokens):
    """-(sum of advantage * log p(token) over the sampled tokens) / num_tokens. logprobs (B, T), masked where
    targets == -1; advantages (B,); num_tokens: the whole step's, so micro-batching leaves the gradient unchanged."""
    mask = (targets >= 0).to(logprobs.dtype)
    return -(advantages[:, None].to(logprobs.dtype) * logprobs * mask).sum() / num_tokens


def pass_at_k(n, c, k):
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k) (Chen et al. 2021)."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


# -----------------------------------------------------------------------------
# Sampling and evaluation

def completion_text(tokenizer, tokens, stop_ids):
    """The text the task scores: the completion without its final stop token."""
    return tokenizer.decode(tokens[:-1] if tokens and tokens[-1] in stop_ids else tokens)


@torch.no_grad()
def evaluate_pass_at_k(engine, tokenizer, task, num_examples, k, params, seed, compute):
    """{1: pass@1, ..., k: pass@k} over the first num_examples problems; seeds depend on the problem only."""
    indices = list(range(compute.rank, min(num_examples, len(task)), compute.world_size))
    sums = [0.0] * (k + 1)  # [problems, sum of pass@1, ..., sum of pass@k]
    if indices:
        conversations = [task[i] for i in indices]
        prompts = [tokenizer.render_for_completion(c) for c in conversations]
        row_params = [replace(params, seed=sample_seed(seed, "eval", i)) for i in indices]
        with compute.autocast():
            completions, _ = engine.generate_batch(prompts, row_params, k)
        for p, conversation in enumerate(conversations):
            c = int(sum(task.evaluate(conversation, tokenizer.decode(t)) for t in completions[p * k:(p + 1) * k]))
            sums[0] += 1
            for j in range(1, k + 1):
                sums[j] += pass_at_k(k, c, j)
    sums = all_ranks_sum(sums, compute.device)
    return {j: sums[j] / sums[0] for j in range(1, k + 1)}


# -----------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Reinforcement learning on math problems (GSM8K or synthetic)")
    add_training_args(p)
    add_checkpoint_args(p, sources=("sft", "mid"), use="to start from (RL's go to chatrl_checkpoints/<its tag>)")
    p.add_argument("--task", default="gsm8k", choices=("gsm8k", "synthetic"),
                   help="math problems to train and evaluate on")
    p.add_argument("--train-path", default=None, help="--task=gsm8k offline: the train split as a local .jsonl/.json/"
                   ".parquet file with the hub's columns (question, answer)")
    p.add_argument("--test-path", default=None, help="--task=gsm8k offline: the test split, same format")
    p.add_argument("--num-epochs", type=float, default=1.0, help="passes over the training problems")
    p.add_argument("--num-steps", type=int, default=-1, help="optimizer steps (-1: from --num-epochs)")
    p.add_argument("--examples-per-step", type=positive(int), default=16, help="problems per step, over all ranks")
    p.add_argument("--num-samples", type=positive(int), default=16, help="completions sampled per problem (the group)")
    p.add_argument("--device-batch-size", type=positive(int), default=8, help="rows per training forward pass")
    p.add_argument("--sample-batch-size", type=int, default=0, help="rows the engine decodes at once (0: all of a "
                   "rank's rows of one step; sampling holds only a KV cache, so it takes far more rows than training)")
    p.add_argument("--max-new-tokens", type=positive(int), default=256, help="most tokens per completion")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (training and eval)")
    p.add_argument("--top-k", type=int, default=50, help="sample among the k most likely tokens (0: all)")
    p.add_argument("--std-normalize", action="store_true", help="divide advantages by the group's std (GRPO)")
    p.add_argument("--init-lr-frac", type=float, default=0.05, help="starting lr as a fraction of the lrs above; "
                   "it then decays linearly to 0")
    p.add_argument("--weight-decay", type=float, default=0.0, help="Muon weight decay")
    p.add_argument("--eval-every", type=positive(int), default=60,
                   help="pass@k every N steps (and at the start and end)")
    p.add_argument("--eval-examples", type=positive(int), default=400, help="test problems per pass@k evaluation")
    p.add_argument("--eval-samples", type=positive(int), default=8, help="k: samples per test problem")
    p.add_argument("--save-every", type=positive(int), default=60,
                   help="checkpoint every N steps (and always at the end)")
    p.add_argument("--seed", type=int, default=42, help="seeds the order of the problems and every sample")
    args = p.parse_args(argv)
    if min(args.temperature, args.top_k, args.sample_batch_size) < 0:
        p.error("--temperature, --top-k and --sample-batch-size must be >= 0")
    if args.task != "gsm8k" and (args.train_path or args.test_path):
        p.error(f"--train-path/--test-path are GSM8K files, but --task={args.task}")
    return args


def train(args):
    compute = compute_init(args.device_type, seed=args.seed)
    if args.examples_per_step % compute.world_size:
        raise BadInput(f"--examples-per-step={args.examples_per_step} must be a multiple of the "
                         f"{compute.world_size} processes (each rank takes an equal share)")
    base_dir = get_base_dir()
    model, tokenizer, source_meta = load_model(args.source, compute.device, args.model_tag, args.step, base_dir)
    args.device_batch_size = fit_batch(lambda b: probe_step(model, b, model.config.sequence_len, compute),
                                       args.device_batch_size, compute)   # rows are at most the context long
    if args.task == "gsm8k":   # from the hub, or from local files in the hub's row format
        from tasks.gsm8k import GSM8K
        train_task, test_task = GSM8K("train", data_path=args.train_path), GSM8K("test", data_path=args.test_path)
    else:
        from tasks.synthetic import SyntheticMath
        train_task = SyntheticMath(size=SYNTHETIC_TRAIN_SIZE, seed=SYNTHETIC_TRAIN_SEED)
        test_task = SyntheticMath(size=max(1, args.eval_examples), seed=SYNTHETIC_TEST_SEED)
    model_tag = os.path.basename(source_meta["checkpoint_dir"])
    ckpt_dir = os.path.join(base_dir, "chatrl_checkpoints", model_tag)
    num_steps = args.num_steps if args.num_steps > 0 else \
        max(1, int(args.num_epochs * len(train_task)) // args.examples_per_step)
    per_rank = args.examples_per_step // compute.world_size
    resolved = {**vars(args), "num_steps": num_steps, "world_size": compute.world_size, "model_tag": model_tag,
                "source_checkpoint": source_meta["checkpoint_dir"], "source_step": source_meta["step"],
                "train_task": train_task.name, "test_task": test_task.name}
    print0(f"model: {source_meta['model_config']} from {source_meta['checkpoint_dir']} step {source_meta['step']}")
    print0(f"task: {train_task.name} ({len(train_task):,} problems) -> eval on {test_task.name}")
    print0(f"step: {args.examples_per_step} problems ({per_rank} per rank x {compute.world_size} processes) x "
           f"{args.num_samples} samples; {num_steps:,} steps")

    frac = args.init_lr_frac
    optimizer = build_optimizer(model, args.matrix_lr * frac, args.embedding_lr * frac, args.unembedding_lr * frac,
                                scalar_lr=args.scalar_lr * frac, weight_decay=args.weight_decay)
    # A row's samples do not depend on the rows beside it, so this changes speed, not results.
    engine = Engine(model, tokenizer, max_batch_size=args.sample_batch_size or per_rank * args.num_samples)
    engine.max_batch_size = fit_batch(engine.session, engine.max_batch_size, compute, "--sample-batch-size")
    params = SamplingParams(temperature=args.temperature, top_k=args.top_k or None, max_tokens=args.max_new_tokens)
    pad_id = tokenizer.encode_special("<|assistant_end|>")

    run = Run("RL", args, compute, base_dir, ckpt_dir, model, optimizer, None, num_steps, config=resolved,
              report_section="Chat RL", wandb_project="nanochat-rl", metric="pass@1",
              metrics={"evals": {}, "pass@1": float("nan"), "reward_ema": None},
              meta={"source_checkpoint": source_meta["checkpoint_dir"], "source_step": source_meta["step"]})
    if run.finished:
        return run.finished
    while True:
        if run.due(args.eval_every):
            model.eval()
            result = evaluate_pass_at_k(engine, tokenizer, test_task, args.eval_examples, args.eval_samples,
                                        params, args.seed, compute)
            run.metrics["evals"][str(run.step)] = {str(j): v for j, v in result.items()}  # str keys: the meta is JSON
            run.evaluated({f"pass@{j}": v for j, v in result.items()})
        if run.last:
            break
        step = run.step
        with run.timing():
            # ---- sample: this rank's problems, num_samples completions each
            model.eval()
            indices = example_indices(step, compute.rank, compute.world_size, args.examples_per_step,
                                      len(train_task), args.seed)
            conversations = [train_task[i] for i in indices]
            prompts = [tokenizer.render_for_completion(c) for c in conversations]
            row_params = [replace(params, seed=sample_seed(args.seed, "train", step, i)) for i in indices]
            with compute.autocast():
                tokens, sampled = engine.generate_batch(prompts, row_params, args.num_samples, keep_stop=True)
            G = args.num_samples
            rewards = torch.tensor([train_task.evaluate(conversations[r // G],
                                                        completion_text(tokenizer, t, engine.always_stop))
                                    for r, t in enumerate(tokens)], dtype=torch.float32)
            adv = advantages(rewards, G, args.std_normalize).to(compute.device)
            row_prompts = [prompts[r // G] for r in range(len(tokens))]

            # ---- one policy-gradient step, in micro-batches of device_batch_size rows
            model.train()
            reward_sum, num_rows, num_tokens = all_ranks_sum([rewards.sum().item(), len(tokens),
                                                              sum(map(sum, sampled))], compute.device)
            # The optimizer AVERAGES gradients over ranks, so each rank normalises by its share of the tokens:
            # the mean over ranks of (local sum / (N / W)) is (total sum / N), the per-token loss of the step.
            norm = max(num_tokens, 1) / compute.world_size
            lrm = 1.0 - run.progress()  # linear decay to 0 over the run
            set_schedule(optimizer, lrm)
            B = args.device_batch_size
            for b0 in range(0, len(tokens), B):
                inputs, targets = build_batch(row_prompts[b0:b0 + B], tokens[b0:b0 + B], sampled[b0:b0 + B],
                                              pad_id)
                inputs, targets = inputs.to(compute.device), targets.to(compute.device)
                with compute.autocast():
                    nll = model(inputs, targets, loss_reduction="none")  # (B*T,), 0 where targets == -1
                loss = policy_gradient_loss(-nll.view(targets.shape), targets, adv[b0:b0 + B], norm)
                loss.backward()
            optimizer.step()
            model.zero_grad(set_to_none=True)
        mean_reward = reward_sum / num_rows
        ema = run.metrics["reward_ema"]
        ema = run.metrics["reward_ema"] = mean_reward if ema is None else 0.9 * ema + 0.1 * mean_reward
        run.end_step(f"reward {mean_reward:.4f} (smooth {ema:.4f}) | sampled tokens/row {num_tokens / num_rows:.1f} "
                     f"| lrm {lrm:.3f}", {"train reward": mean_reward, "train/sampled_tokens": num_tokens / num_rows})

    evals = run.metrics["evals"]
    first, final = evals[min(evals, key=int)], evals[str(run.step)]
    k = args.eval_samples
    return run.finish({"eval_examples": min(args.eval_examples, len(test_task)), "pass@1_start": first["1"],
                       f"pass@{k}_start": first[str(k)], f"pass@{k}": final[str(k)]})


def main(argv=None):
    with cli("chat_rl"):
        return train(parse_args(argv))


if __name__ == "__main__":
    main()
