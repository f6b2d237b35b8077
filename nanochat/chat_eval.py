"""Chat evaluation: accuracy of a chat model on a task (categorical: argmax over the allowed letters in one
forward; generative: pass@k, any of num_samples sampled replies) and ChatCORE, the mean centered accuracy.
Ranks split problems and all_reduce the counts; seeds depend on the problem index only.
Deliberately not here: picking tasks, loading checkpoints, per-subject breakdowns, unbiased pass@k.
"""

import time
from contextlib import nullcontext
from dataclasses import replace

import torch
from torch.nn.utils.rnn import pad_sequence

from nanochat.common import all_ranks_sum
from nanochat.core_eval import centered_accuracy
from nanochat.engine import Engine, SamplingParams, prompt_budget


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
    """The answer letter, among its "letters", for each multiple-choice conversation, from ONE forward pass.
    Rows are right-padded: a causal model's logit at a row's last real position never sees the padding. A prompt
    longer than the context keeps its end (the choices). model(idx) -> (B, T, V) logits is all that is used."""
    max_len = model.config.sequence_len
    prompts = [tokenizer.render_for_completion(c)[-max_len:] for c in conversations]
    x = pad_sequence([torch.tensor(p) for p in prompts], batch_first=True, padding_value=tokenizer.get_bos_token_id())
    with (autocast or nullcontext)():
        logits = model(x.to(device))  # (B, T, V)
    last = torch.tensor([len(p) - 1 for p in prompts], device=logits.device)
    final = logits[torch.arange(len(prompts), device=logits.device), last].float()  # (B, V): after each prompt
    answers = []
    for row, conversation in zip(final, conversations):
        letters = conversation["letters"]
        allowed = row[letter_token_ids(tokenizer, letters)]  # only the letters this question offers
        answers.append(letters[int(allowed.argmax())])
    return answers


def any_passes(task, conversation, completions):
    """1.0 if any completion passes the task's check, else 0.0: pass@k with k = len(completions) (chat_rl's
    pass_at_k estimates it from more samples). Stops at the first pass (a HumanEval check runs a program)."""
    return 1.0 if any(task.evaluate(conversation, c) >= 1.0 for c in completions) else 0.0


def evaluate_task(task, model, tokenizer, engine=None, device="cpu", max_problems=None, batch_size=8,
                  num_samples=1, sampling=None, seed=0, rank=0, world_size=1, autocast=None):
    """{"accuracy", "baseline", "correct", "total"} of one task over its first max_problems problems (all: None).
    batch_size: questions per forward pass (categorical) or problems sampled together (generative; the
    engine then holds batch_size * num_samples rows). sampling: a SamplingParams for the generative replies
    (default greedy, 256 tokens); problem i samples with seeds seed + i * num_samples + j, j < num_samples."""
    assert task.eval_type in ("categorical", "generative"), task.eval_type
    mine = range(len(task))[:max_problems][rank::world_size]
    correct = chance = 0.0
    if task.eval_type == "generative":
        engine = engine or Engine(model, tokenizer, max_batch_size=batch_size * num_samples)
        sampling = sampling or SamplingParams(temperature=0.0)
        # keep room for the reply: a longer prompt keeps its end, but never less than half the context
        max_prompt = prompt_budget(engine.max_len, sampling.max_tokens)
    for start in range(0, len(mine), batch_size):
        batch = mine[start:start + batch_size]
        conversations = [task.get(i) for i in batch]
        if task.eval_type == "categorical":
            for conversation, letter in zip(conversations, predict_letters(model, tokenizer, conversations,
                                                                           device, autocast)):
                correct += task.evaluate(conversation, letter)
                chance += 1 / len(conversation["letters"])
            continue
        prompts = [tokenizer.render_for_completion(c)[-max_prompt:] for c in conversations]
        params = [replace(sampling, seed=seed + i * num_samples) for i in batch]
        with (autocast or nullcontext)():
            completions, _ = engine.generate_batch(prompts, params, num_samples)
        for j, conversation in enumerate(conversations):
            replies = [tokenizer.decode(ids) for ids in completions[j * num_samples:(j + 1) * num_samples]]
            correct += any_passes(task, conversation, replies)
    correct, total, chance = all_ranks_sum([correct, len(mine), chance], device)
    if total == 0:
        raise ValueError(f"task {getattr(task, 'name', task)!r}: no problems to evaluate "
                         f"(it has {len(task)}, max_problems={max_problems})")
    return {"accuracy": correct / total, "baseline": chance / total, "correct": int(correct), "total": int(total)}


def run_chat_eval(model, tokenizer, tasks, engine=None, *, device=None, max_problems=None, batch_size=8,
                  num_samples=1, temperature=0.0, top_k=None, max_new_tokens=256, seed=0, rank=0, world_size=1,
                  autocast=None, log=None):
    """Evaluate an eval-mode chat model on tasks ({name: Task}). Returns {"accuracy"|"baseline"|"centered"|
    "correct"|"total": {name: value}, "chatcore": mean centered accuracy}. Under torchrun every rank calls this
    with the same arguments; `engine` (by default one per task) serves generative tasks; log gets a line per task.
    """
    assert tasks, "ChatCORE needs at least one task"
    device = device or next(model.parameters()).device
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
    results["chatcore"] = sum(results["centered"].values()) / len(tasks)  # ChatCORE: the mean centered accuracy
    return results
