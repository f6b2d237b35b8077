"""
CORE: the base-model benchmark of the DCLM paper (arXiv 2406.11794), 22 in-context-learning tasks scored by
comparing the model's losses on candidate continuations, each accuracy centered on its random baseline.
Bundle layout in docs/DATA_FORMATS.md. Deliberately left out: generation-based scoring (chat evals live
elsewhere), per-task prompt templates beyond the bundle's continuation_delimiter, caching tokenized prompts.
"""

import csv
import os
import random
import shutil
import tempfile
import time
import zipfile
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from nanochat.common import all_ranks_sum, download_file, file_lock, get_base_dir, read_jsonl

EVAL_BUNDLE_URL = "https://karpathy-public.s3.us-west-2.amazonaws.com/eval_bundle.zip"
FEWSHOT_SEED = 1234        # example i draws its few-shot examples from random.Random(FEWSHOT_SEED + i)
SHUFFLE_SEED = 1337        # evaluation order of each task's examples (matters only with max_per_task)
EXAMPLE_SEPARATOR = "\n\n"  # between consecutive examples in a few-shot prompt

# the task types, each with the required fields of one of its jsonl examples
FIELDS = {
    "multiple_choice": {"query": str, "choices": list, "gold": int},
    "schema": {"context_options": list, "continuation": str, "gold": int},
    "language_modeling": {"context": str, "continuation": str},
}


# -----------------------------------------------------------------------------
# The bundle on disk

def _check_bundle(bundle_dir, what, error=FileNotFoundError, hint=""):
    """Raise `error` "<what> lacks <parts>" unless `bundle_dir` holds every part of an eval bundle."""
    parts = ("core.yaml", "eval_meta_data.csv", "eval_data")
    missing = [p for p in parts if not os.path.exists(os.path.join(bundle_dir, p))]
    if missing:
        raise error(f"{what} lacks {', '.join(missing)}{hint}")


def _unpack(zip_path, bundle_dir):
    """Unzip into a temp dir next to bundle_dir, then rename the folder holding core.yaml onto bundle_dir."""
    if not zipfile.is_zipfile(zip_path):
        raise ValueError(f"{zip_path} is not a zip file; expected the CORE eval_bundle.zip from {EVAL_BUNDLE_URL}")
    tmp = tempfile.mkdtemp(dir=os.path.dirname(bundle_dir), prefix="eval_bundle.", suffix=".tmp")
    try:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)   # zipfile drops absolute and ".." parts of member names
        # The zip normally holds one top-level folder eval_bundle/; accept the files at the top level too.
        candidates = [tmp] + sorted(os.path.join(tmp, d) for d in os.listdir(tmp))
        roots = [d for d in candidates if os.path.isfile(os.path.join(d, "core.yaml"))]
        if not roots:
            raise ValueError(f"{zip_path} holds no core.yaml (looked at its top level and one folder down); "
                             "is it the CORE eval bundle?")
        _check_bundle(roots[0], f"{zip_path} is an incomplete eval bundle: it", ValueError)
        os.rename(roots[0], bundle_dir)   # atomic: other processes see no bundle or a whole one
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_eval_bundle(base_dir=None, url=EVAL_BUNDLE_URL):
    """`base_dir/eval_bundle`, unpacked on first use from `url` (http(s) or a zip path), or `url` itself
    when it is an unpacked bundle. Safe from every rank at once: one works under a file lock, the others wait."""
    if os.path.isdir(url):
        _check_bundle(url, f"{url} is not an eval bundle directory: it")
        return url
    base_dir = base_dir or get_base_dir()
    bundle_dir = os.path.join(base_dir, "eval_bundle")
    with file_lock(os.path.join(base_dir, "eval_bundle.lock")):  # creates base_dir
        if os.path.exists(bundle_dir):
            _check_bundle(bundle_dir, f"{bundle_dir} exists but", hint="; delete it and run again to unpack it afresh")
            return bundle_dir
        zip_path = url
        if "://" in url:
            zip_path = os.path.join(base_dir, "eval_bundle.zip")
            try:
                download_file(url, zip_path, max_attempts=1)
            except RuntimeError as e:
                raise ConnectionError(
                    f"could not download the CORE eval bundle from {url} ({e.__cause__}). Offline? Fetch "
                    f"eval_bundle.zip from {EVAL_BUNDLE_URL} on a machine with internet, copy it here and pass its "
                    f"path (--eval-bundle=/path/eval_bundle.zip), or unzip it so that "
                    f"{os.path.join(bundle_dir, 'core.yaml')} exists.") from e
        elif not os.path.isfile(url):
            raise FileNotFoundError(f"eval bundle {url!r} does not exist; pass a zip file, an unpacked bundle "
                                    f"directory or a URL (default {EVAL_BUNDLE_URL})")
        try:
            _unpack(zip_path, bundle_dir)
        finally:
            if zip_path != url:   # downloaded, then unpacked (or unusable): the 160 MB zip is not needed again
                os.remove(zip_path)
    return bundle_dir


def _check_example(ex, task_type, where):
    """`ex`, unless it is not a well-formed example of task_type (then a ValueError naming `where`)."""
    if not isinstance(ex, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(ex).__name__}")
    for key, typ in FIELDS[task_type].items():
        if not isinstance(ex.get(key), typ) or isinstance(ex.get(key), bool):
            raise ValueError(f"{where}: a {task_type} example needs {key!r} of type {typ.__name__}, "
                             f"got {ex.get(key)!r}")
    options = ex.get("choices", ex.get("context_options"))
    if options is not None:
        if len(options) < 2 or not all(isinstance(o, str) for o in options):
            raise ValueError(f"{where}: needs a list of at least 2 strings to choose from, got {options!r}")
        if not 0 <= ex["gold"] < len(options):
            raise ValueError(f"{where}: gold={ex['gold']} is out of range for {len(options)} options")
    continuations = ex["choices"] if task_type == "multiple_choice" else [ex["continuation"]]
    if not all(continuations):
        raise ValueError(f"{where}: an empty continuation cannot be scored")
    return ex


def _task_meta(entry, baselines, where):
    for key in ("label", "dataset_uri", "num_fewshot", "icl_task_type"):
        if key not in entry:
            raise ValueError(f"{where} has no {key!r}")
    label, task_type = entry["label"], entry["icl_task_type"]
    if task_type not in FIELDS:
        raise ValueError(f"{where} ({label}): icl_task_type {task_type!r} is not one of {', '.join(FIELDS)}")
    shots = entry["num_fewshot"]
    shots = shots if isinstance(shots, list) else [shots]   # core.yaml writes [10]; accept a bare int too
    if len(shots) != 1 or not isinstance(shots[0], int) or shots[0] < 0:
        raise ValueError(f"{where} ({label}): num_fewshot must be one non-negative int like [10], "
                         f"got {entry['num_fewshot']!r}")
    if label not in baselines:
        raise ValueError(f"task {label!r} has no row in eval_meta_data.csv, so it has no random baseline")
    if not 0 <= baselines[label] < 1:
        raise ValueError(f"task {label!r}: random baseline {100 * baselines[label]}% must be in [0, 100)")
    return {"label": label, "task_type": task_type, "num_fewshot": shots[0],
            "continuation_delimiter": entry.get("continuation_delimiter", " "),
            "random_baseline": baselines[label], "dataset_uri": entry["dataset_uri"]}


def load_core_tasks(bundle_dir):
    """[(task_meta, examples)] for each task of core.yaml, in file order.
    task_meta: {label, task_type, num_fewshot, continuation_delimiter, random_baseline (a fraction), dataset_uri}."""
    import yaml

    _check_bundle(bundle_dir, f"{bundle_dir} is not an eval bundle: it")
    config_path = os.path.join(bundle_dir, "core.yaml")
    with open(config_path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict) or not isinstance(config.get("icl_tasks"), list) or not config["icl_tasks"]:
        raise ValueError(f"{config_path} must hold a non-empty list under the key 'icl_tasks'")
    with open(os.path.join(bundle_dir, "eval_meta_data.csv"), newline="", encoding="utf-8") as f:
        # {task label: random baseline as a fraction}; the file gives percents
        baselines = {row["Eval Task"].strip(): float(row["Random baseline"]) / 100 for row in csv.DictReader(f)}
    tasks = []
    for i, entry in enumerate(config["icl_tasks"]):
        meta = _task_meta(entry, baselines, f"{config_path}: icl_tasks[{i}]")
        path = os.path.join(bundle_dir, "eval_data", meta["dataset_uri"])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"task data {path} is missing; the eval bundle is incomplete, re-download it")
        examples = [_check_example(ex, meta["task_type"], where) for where, ex in read_jsonl(path)]
        if len(examples) <= meta["num_fewshot"]:
            raise ValueError(f"task {meta['label']!r} has {len(examples)} examples, too few for "
                             f"{meta['num_fewshot']} few-shot examples that exclude the example itself")
        tasks.append((meta, examples))
    return tasks


# -----------------------------------------------------------------------------
# Prompts

def fewshot_indices(num_examples, idx, k, seed=FEWSHOT_SEED):
    """k distinct example indices, never `idx`, the same on every call (and every rank) for the same idx."""
    rng = random.Random(seed + idx)
    # Sample from the n-1 other positions, then skip over idx: O(k), not O(n) per example.
    return [j + (j >= idx) for j in rng.sample(range(num_examples - 1), k)]


def _candidates(ex, task_type):
    """(contexts, continuations, gold): candidate i is contexts[i] + delimiter + continuations[i]."""
    if task_type == "multiple_choice":
        return [ex["query"]] * len(ex["choices"]), ex["choices"], ex["gold"]
    if task_type == "schema":
        return ex["context_options"], [ex["continuation"]] * len(ex["context_options"]), ex["gold"]
    return [ex["context"]], [ex["continuation"]], 0


def render_candidates(examples, idx, task_meta):
    """[(prefix, full)], one per candidate answer of examples[idx]; the model is scored on full after prefix.
    The prompt: num_fewshot solved examples, each followed by EXAMPLE_SEPARATOR, then the example's context."""
    task_type, delim = task_meta["task_type"], task_meta["continuation_delimiter"]
    head = ""
    for j in fewshot_indices(len(examples), idx, task_meta["num_fewshot"]):
        contexts, continuations, gold = _candidates(examples[j], task_type)
        head += contexts[gold] + delim + continuations[gold] + EXAMPLE_SEPARATOR
    contexts, continuations, _ = _candidates(examples[idx], task_type)
    return [(head + c + delim, head + c + delim + cont) for c, cont in zip(contexts, continuations)]


def tokenize_candidates(tokenizer, pairs, max_len):
    """[(ids, start)] for (prefix, full) text pairs: ids = BOS + tokens of full, ids[start:] = the continuation.

    The continuation starts where the tokens of full and prefix differ, so a token BPE merges across the
    boundary counts as continuation. Rows longer than max_len lose tokens from the LEFT (oldest few-shot first).
    """
    assert max_len >= 2, "a row needs at least one context token and one to score"
    bos = tokenizer.get_bos_token_id()
    encoded = tokenizer.encode([p for p, _ in pairs] + [f for _, f in pairs], prepend=bos)
    rows = []
    for prefix_ids, ids in zip(encoded[:len(pairs)], encoded[len(pairs):]):
        start = len(os.path.commonprefix([prefix_ids, ids]))  # commonprefix works on any sequences, not just paths
        if start == len(ids):
            raise ValueError(f"no continuation tokens to score in {tokenizer.decode(ids[1:])[-200:]!r}")
        excess = len(ids) - max_len
        if excess > 0:
            ids, start = ids[excess:], max(1, start - excess)   # position 0 has no prediction for it
        rows.append((ids, start))
    return rows


# -----------------------------------------------------------------------------
# Scoring

@torch.no_grad()
def score_rows(model, rows, device, pad_id=0, autocast=None):
    """Per row (ids, start): mean loss over the continuation ids[start:], and whether argmax predicts all of it.
    Rows are right-padded: a causal model's logits at real positions do not see the padding."""
    B, T = len(rows), max(len(ids) for ids, _ in rows)
    x = torch.full((B, T), pad_id, dtype=torch.long)
    targets = torch.full((B, T), -1, dtype=torch.long)   # -1: not scored
    for i, (ids, start) in enumerate(rows):
        x[i, :len(ids)] = torch.tensor(ids)
        targets[i, start - 1:len(ids) - 1] = torch.tensor(ids[start:])   # logits at t predict token t+1
    x, targets = x.to(device), targets.to(device)
    with (autocast or nullcontext)():
        logits = model(x)   # (B, T, V)
    mask = targets >= 0
    picked, wanted = logits[mask].float(), targets[mask]   # (N, V), (N,): N scored positions, row-major
    losses = F.cross_entropy(picked, wanted, reduction="none")
    misses = (picked.argmax(-1) != wanted).float()
    row_of = mask.nonzero()[:, 0]   # (N,) row index of each scored position
    mean_loss = torch.zeros(B, device=device).index_add_(0, row_of, losses) / mask.sum(1)
    all_hit = torch.zeros(B, device=device).index_add_(0, row_of, misses) == 0
    return mean_loss.tolist(), all_hit.tolist()


def _judge(task_type, gold, mean_losses, all_hit):
    if task_type == "language_modeling":
        return bool(all_hit[0])   # greedy (teacher-forced argmax) decoding reproduces every continuation token
    # lowest MEAN loss wins (mean, not sum: longer answers are not penalised); on an exact tie the earlier one does
    return min(range(len(mean_losses)), key=mean_losses.__getitem__) == gold


def evaluate_task(model, tokenizer, examples, task_meta, device, rank=0, world_size=1, batch_size=16,
                  max_examples=-1, autocast=None):
    """Accuracy on examples[:max_examples] (all when -1), the same on every rank; few-shot examples come from
    the whole list. batch_size counts rows per forward pass; an example's candidates are never split.
    model (in eval mode): model(idx) -> (B, T, V) logits, model.config.sequence_len its context.
    """
    n = len(examples) if max_examples < 0 else min(max_examples, len(examples))
    max_len, task_type = model.config.sequence_len, task_meta["task_type"]
    pad_id = tokenizer.get_bos_token_id()
    correct, total = 0, len(range(rank, n, world_size))
    pending = []   # [(gold, rows)] of examples waiting for the next forward pass

    def flush():
        nonlocal correct
        mean_losses, all_hit = score_rows(model, [r for _, rows in pending for r in rows], device, pad_id, autocast)
        for gold, rows in pending:   # each example takes its candidates' results off the front
            correct += _judge(task_type, gold, mean_losses[:len(rows)], all_hit[:len(rows)])
            del mean_losses[:len(rows)], all_hit[:len(rows)]
        pending.clear()

    for idx in range(rank, n, world_size):
        rows = tokenize_candidates(tokenizer, render_candidates(examples, idx, task_meta), max_len)
        if pending and sum(len(r) for _, r in pending) + len(rows) > batch_size:
            flush()
        pending.append((_candidates(examples[idx], task_type)[2], rows))
    if pending:
        flush()
    correct, total = all_ranks_sum([correct, total], device)
    assert total > 0, f"task {task_meta['label']!r}: no examples to evaluate (max_examples={max_examples})"
    return correct / total


def centered_accuracy(accuracy, baseline):
    """(acc - b) / (1 - b): 0 at the random-guess accuracy b, 1 when perfect (both fractions, not percents)."""
    return (accuracy - baseline) / (1 - baseline)


def evaluate_core(model, tokenizer, bundle_dir, device, max_per_task=-1, rank=0, world_size=1, batch_size=16,
                  autocast=None, log=None):
    """{"accuracy": {label: acc}, "centered": {label: centered acc}, "core": mean centered accuracy}.
    Examples are shuffled with a fixed seed first, so max_per_task > 0 takes the same fair sample every run."""
    results = {"accuracy": {}, "centered": {}}
    for meta, examples in load_core_tasks(bundle_dir):
        t0 = time.time()
        random.Random(SHUFFLE_SEED).shuffle(examples)   # the permutation depends only on the length
        acc = evaluate_task(model, tokenizer, examples, meta, device, rank, world_size, batch_size,
                            max_per_task, autocast)
        label = meta["label"]
        results["accuracy"][label] = acc
        results["centered"][label] = centered_accuracy(acc, meta["random_baseline"])
        if log:
            log(f"{label:<40} accuracy {acc:.4f} | centered {results['centered'][label]:+.4f} "
                f"| {time.time() - t0:.1f}s")
    results["core"] = sum(results["centered"].values()) / len(results["centered"])
    return results
