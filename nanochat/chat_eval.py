"""
Chat evaluation: how often a chat model answers a task's problems right, and ChatCORE, one number over tasks.

Tasks come in two kinds (their `eval_type`, see the Task interface in tasks/common.py):
- categorical (multiple choice: ARC, MMLU): the conversation is rendered up to the assistant's turn and the
  model runs one forward pass; its answer is the allowed letter with the highest logit at the last prompt
  position. No sampling, so the result is exact, and many questions share one right-padded forward pass.
- generative (GSM8K, HumanEval, SpellingBee): the engine samples `num_samples` replies per problem, running
  calculator calls as it goes, and the task's `evaluate` checks each reply. A problem passes when any of its
  samples does: pass@k with k = num_samples.

ChatCORE is the mean over tasks of the centered accuracy (acc - b) / (1 - b): 0 at chance, 1 when perfect.
b is what guessing scores: for a categorical task the mean of 1 / (number of choices) over the questions
asked (0.25 when all have four), for a generative task 0.

Under torchrun every rank takes problems rank, rank + world_size, ... and the counts are summed with
all_reduce, so every rank returns the same numbers. Sampling seeds depend on the problem's index only, so
the result does not depend on how many ranks share the work.

Tasks are used only through their interface (len, get, evaluate, eval_type), so this module does not import
tasks/. Deliberately not here: picking tasks and loading checkpoints (scripts/chat_eval.py), per-subject
breakdowns, and unbiased pass@k estimates for k < num_samples.
"""

import time
from contextlib import nullcontext
from dataclasses import replace

import torch
import torch.distributed as dist

from nanochat.core_eval import centered_accuracy
from nanochat.engine import Engine, SamplingParams, prompt_budget


def chatcore(centered):
    """ChatCORE: the mean of the tasks' centered accuracies ({name: centered})."""
    assert centered, "ChatCORE needs at least one task"
    return sum(centered.values()) / len(centered)


def letter_token_ids(tokenizer, letters):
    """The one token id of each answer letter; a letter that is not a single token cannot be scored by its logit."""
    ids = []
    for letter in letters:
        encoded = tokenizer.encode(letter)
        if len(encoded) != 1:
            raise ValueError(f"answer letter {letter!r} encodes to {len(encoded)} tokens {encoded}; categorical "
                             "evaluation reads one logit per letter, so each letter must be a single token")
        ids.append(encoded[0])
    return ids


@torch.no_grad()
def predict_letters(model, tokenizer, conversations, device, autocast=None):
    """The model's answer letter for each multiple-choice conversation, from ONE forward pass over all of them.

    Each conversation carries "letters" (the allowed answers). Rows are right-padded to the longest: a causal
    model's logit at a row's last real position never sees the padding. A prompt longer than the context keeps
    its end (the choices and the question's last words). model(idx) -> (B, T, V) logits is all that is used.
    """
    max_len = model.config.sequence_len
    prompts = [tokenizer.render_for_completion(c)[-max_len:] for c in conversations]
    B, T = len(prompts), max(len(p) for p in prompts)
    x = torch.full((B, T), tokenizer.get_bos_token_id(), dtype=torch.long)
    for i, p in enumerate(prompts):
        x[i, :len(p)] = torch.tensor(p)
    with (autocast or nullcontext)():
        logits = model(x.to(device))  # (B, T, V)
    last = torch.tensor([len(p) - 1 for p in prompts], device=logits.device)
    final = logits[torch.arange(B, device=logits.device), last].float()  # (B, V): logits after each prompt
    answers = []
    for row, conversation in zip(final, conversations):
        letters = conversation["letters"]
        allowed = row[letter_token_ids(tokenizer, letters)]  # only the letters this question offers
        answers.append(letters[int(allowed.argmax())])
    return answers


def any_passes(task, conversation, completions):
    """1.0 if any of the completions passes the task's check, else 0.0: pass@k with k = len(completions)
    (chat_rl's pass_at_k estimates it from more samples than k).
    Stops checking at the first pass (a HumanEval check runs a program)."""
    return 1.0 if any(task.evaluate(conversation, c) >= 1.0 for c in completions) else 0.0


def _batches(indices, size):
    indices = list(indices)
    return [indices[i:i + size] for i in range(0, len(indices), size)]


def evaluate_task(task, model, tokenizer, engine=None, device="cpu", max_problems=None, batch_size=8,
                  num_samples=1, sampling=None, seed=0, rank=0, world_size=1, autocast=None):
    """{"accuracy", "baseline", "correct", "total"} of one task over its first max_problems problems (all: None).

    batch_size: questions per forward pass (categorical) or problems sampled together (generative; the
    engine then holds batch_size * num_samples rows). sampling: a SamplingParams for the generative replies
    (default greedy, 256 tokens); problem i samples with seeds seed + i * num_samples + j, j < num_samples.
    """
    n = len(task) if max_problems is None else min(max_problems, len(task))
    mine = range(rank, n, world_size)
    correct = chance = 0.0
    if task.eval_type == "categorical":
        for batch in _batches(mine, batch_size):
            conversations = [task.get(i) for i in batch]
            for conversation, letter in zip(conversations, predict_letters(model, tokenizer, conversations,
                                                                           device, autocast)):
                correct += task.evaluate(conversation, letter)
                chance += 1 / len(conversation["letters"])
    elif task.eval_type == "generative":
        engine = engine or Engine(model, tokenizer, max_batch_size=batch_size * num_samples)
        sampling = sampling or SamplingParams(temperature=0.0)
        # keep room for the reply: a longer prompt keeps its end, but never less than half the context
        max_prompt = prompt_budget(engine.max_len, sampling.max_tokens)
        for batch in _batches(mine, batch_size):
            conversations = [task.get(i) for i in batch]
            prompts = [tokenizer.render_for_completion(c)[-max_prompt:] for c in conversations]
            params = [replace(sampling, seed=seed + i * num_samples) for i in batch]
            with (autocast or nullcontext)():
                completions, _ = engine.generate_batch(prompts, params, num_samples)
            for j, conversation in enumerate(conversations):
                replies = [tokenizer.decode(ids) for ids in completions[j * num_samples:(j + 1) * num_samples]]
                correct += any_passes(task, conversation, replies)
    else:
        raise AssertionError(f"eval_type {task.eval_type!r}")
    counts = torch.tensor([correct, len(mine), chance], dtype=torch.float64, device=device)
    if world_size > 1 and dist.is_available() and dist.is_initialized():
        dist.all_reduce(counts)
    correct, total, chance = counts.tolist()
    if total == 0:
        raise ValueError(f"task {getattr(task, 'name', task)!r}: no problems to evaluate "
                         f"(it has {len(task)}, max_problems={max_problems})")
    return {"accuracy": correct / total, "baseline": chance / total, "correct": int(correct), "total": int(total)}


def run_chat_eval(model, tokenizer, tasks, engine=None, *, device=None, max_problems=None, batch_size=8,
                  num_samples=1, temperature=0.0, top_k=None, max_new_tokens=256, seed=0, rank=0, world_size=1,
                  autocast=None, log=None):
    """Evaluate a chat model on several tasks. tasks: {name: Task}. Returns
    {"accuracy": {name: acc}, "baseline": {...}, "centered": {...}, "correct": {...}, "total": {...},
     "chatcore": mean centered accuracy}.

    The model must be in eval mode; `engine` (built from model and tokenizer when None) is only needed for
    generative tasks. Under torchrun pass the rank and world size: every rank must call this with the same
    arguments. log: optional callable given one line per finished task.
    """
    if device is None:
        device = next(model.parameters()).device
    sampling = SamplingParams(temperature=temperature, top_k=top_k, max_tokens=max_new_tokens)
    results = {key: {} for key in ("accuracy", "baseline", "centered", "correct", "total")}
    for name, task in tasks.items():
        t0 = time.time()
        r = evaluate_task(task, model, tokenizer, engine, device, max_problems, batch_size, num_samples, sampling,
                          seed, rank, world_size, autocast)
        r["centered"] = centered_accuracy(r["accuracy"], r["baseline"])
        for key in results:
            results[key][name] = r[key]
        if log:
            log(f"{name:<14} accuracy {r['accuracy']:.4f} ({r['correct']}/{r['total']}) | centered "
                f"{r['centered']:+.4f} | {time.time() - t0:.1f}s")
    results["chatcore"] = chatcore(results["centered"])
    return results
