"""
Evaluate a pretrained base model: bits per byte on the train and validation shards, a few greedy samples, and CORE
(nanochat/core_eval.py). Writes eval/base.json (what the research harness reads), eval/base_core.csv and the report
section "Base model evaluation". --hf-path: CORE and samples of any transformers causal LM, printed only.
"""

import argparse
import os
from types import SimpleNamespace

import torch

from nanochat.checkpoint import add_checkpoint_args, load_model
from nanochat.common import atomic_write_json, atomic_write_text, cli, compute_init, get_base_dir, positive, print0
from nanochat.core_eval import EVAL_BUNDLE_URL, download_eval_bundle, evaluate_core
from nanochat.dataloader import PackedLoader
from nanochat.dataset import data_dir, list_shards, split_shards
from nanochat.engine import SAMPLE_PROMPTS, sample_greedy
from nanochat.loss_eval import check_model_is_honest, evaluate_bpb
from nanochat.report import get_report
from nanochat.tokenizer import get_token_bytes
from nanochat.training import fit_batch, probe_step


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Evaluate a base model: bits per byte, samples and CORE")
    add_checkpoint_args(p, source=None)   # always the base model
    p.add_argument("--max-per-task", type=int, default=-1, help="CORE examples per task (-1: all)")
    p.add_argument("--batch-size", type=positive(int), default=16, help="CORE candidate rows per forward pass")
    p.add_argument("--eval-bundle", default="", help=f"CORE eval bundle: URL, zip or unpacked directory "
                   f"(default: download {EVAL_BUNDLE_URL} once into the base dir)")
    p.add_argument("--skip-core", action="store_true", help="no CORE (offline without a bundle: the tiny profile); "
                   "the last line is then `val_bpb: X`")
    p.add_argument("--eval-tokens", type=positive(int), default=10 * 524288, help="tokens per split for bits per byte")
    p.add_argument("--device-batch-size", type=positive(int), default=32, help="sequences per bits-per-byte batch")
    p.add_argument("--sample-tokens", type=int, default=16, help="tokens per greedy sample (0: no samples)")
    p.add_argument("--device-type", default="", help="cuda|cpu|mps (default: autodetect)")
    p.add_argument("--hf-path", default="", help="evaluate this transformers causal LM (directory or hub name) instead")
    p.add_argument("--trust-remote-code", action="store_true", help="let --hf-path run its own modeling code "
                   "(needed for a scripts/export.py remote-code export)")
    args = p.parse_args(argv)
    if args.max_per_task == 0 or args.max_per_task < -1:
        p.error(f"--max-per-task must be positive or -1 (all), got {args.max_per_task}")
    return args


class HFModel(torch.nn.Module):
    """A transformers causal LM as CORE and the samples call ours: model(idx) -> logits; config.sequence_len."""

    def __init__(self, lm, sequence_len):
        super().__init__()
        self.lm, self.config = lm, SimpleNamespace(sequence_len=sequence_len)

    def forward(self, idx):
        return self.lm(input_ids=idx).logits.float()


def load_hf(path, device, trust_remote_code):
    """A transformers causal LM and its tokenizer, called as CORE and the samples call ours."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:
        lm = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=trust_remote_code, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:   # not there (cli() turns FileNotFoundError into exit 2), or code not trusted
        raise FileNotFoundError(f"cannot load --hf-path {path} ({e}): pass a save_pretrained directory or a hub "
                                "name, with --trust-remote-code if it has its own modeling code") from None
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id   # GPT-2 has only an EOS

    def encode(text, prepend=None):   # any prepend means BOS (ours pass an id or "<|bos|>")
        rows = tok(text if isinstance(text, list) else [text], add_special_tokens=False)["input_ids"]
        rows = [[bos] * (prepend is not None) + ids for ids in rows]
        return rows if isinstance(text, list) else rows[0]
    tokenizer = SimpleNamespace(encode=encode, decode=tok.decode, get_bos_token_id=lambda: bos)
    # The context CORE crops to and the batch probe fills: the model's own limit, capped at 2,048 (long-context
    # models declare 128k positions, and transformers' "no limit" is 1e30; CORE's examples are far shorter).
    sequence_len = min(getattr(lm.config, "max_position_embeddings", None) or tok.model_max_length, 2048)
    return HFModel(lm.to(device).eval(), sequence_len), tokenizer


def evaluate(args):
    compute = compute_init(args.device_type)
    base_dir = get_base_dir()
    summary = {"max_per_task": args.max_per_task, "world_size": compute.world_size}
    if args.hf_path:
        model, tokenizer = load_hf(args.hf_path, compute.device, args.trust_remote_code)
        summary["hf_path"] = args.hf_path
    else:
        model, tokenizer, meta = load_model("base", compute.device, args.model_tag, args.step)
        summary = {"model_tag": os.path.basename(meta["checkpoint_dir"]), "step": meta["step"], **summary}
        print0(f"base model {summary['model_tag']} at step {summary['step']} ({meta['checkpoint_dir']})")

    def probe(b):   # a forward of b full rows: the most a bpb batch or a CORE batch holds
        probe_step(model, b, model.config.sequence_len, compute, train=False)
    args.device_batch_size = fit_batch(probe, args.device_batch_size, compute)
    args.batch_size = fit_batch(probe, args.batch_size, compute, "--batch-size")

    # ---- bits per byte on both splits of the pretraining data
    shards = data_dir(base_dir)
    if not args.hf_path and len(list_shards(shards)) >= 2:   # bpb needs our tokenizer's byte counts
        token_bytes = get_token_bytes(base_dir, device=compute.device)
        B, T = args.device_batch_size, model.config.sequence_len
        steps = max(1, args.eval_tokens // (B * T * compute.world_size))

        def batches(split):
            return PackedLoader(tokenizer, split_shards(shards, split), B, T, compute.rank, compute.world_size,
                                compute.device)
        # bpb is only worth something from a causal model's honest loss (the model's code may be an agent's)
        check_model_is_honest(model, *next(batches("val")), compute.autocast)
        for split in ("train", "val"):
            summary[f"{split}_bpb"] = evaluate_bpb(model, batches(split), steps, token_bytes, compute.autocast)
            print0(f"{split} bpb: {summary[f'{split}_bpb']:.4f}")
    else:
        print0(f"--hf-path, or fewer than 2 data shards in {shards}: skipping bits per byte")

    # ---- a few greedy samples, to eyeball
    if compute.master and args.sample_tokens > 0:
        for prompt in SAMPLE_PROMPTS:
            print0("sample: " + repr(sample_greedy(model, tokenizer, prompt, args.sample_tokens, compute.autocast)))

    # ---- CORE
    if args.skip_core:
        print0("CORE: skipped (--skip-core)")
        section = "CORE skipped (--skip-core: no eval bundle)."
    else:
        bundle_dir = download_eval_bundle(base_dir, args.eval_bundle or EVAL_BUNDLE_URL)
        results = evaluate_core(model, tokenizer, bundle_dir, compute.device, args.max_per_task, compute.rank,
                                compute.world_size, args.batch_size, compute.autocast, log=print0)
        summary["core"] = results["core"]
        section = {f"centered {label}": round(c, 4) for label, c in results["centered"].items()}
    if not args.hf_path and compute.master:   # another model's numbers stay out of this run's report and files
        get_report(base_dir).log("Base model evaluation", [summary, section])
        if not args.skip_core:
            rows = [f"{label},{acc:.6f},{results['centered'][label]:.6f}" for label, acc in results["accuracy"].items()]
            atomic_write_text(os.path.join(base_dir, "eval", "base_core.csv"),
                              "\n".join(["task,accuracy,centered", *rows, f"CORE,,{results['core']:.6f}"]) + "\n")
        atomic_write_json(os.path.join(base_dir, "eval", "base.json"), summary)   # what the research harness reads
        print0(f"wrote {os.path.join(base_dir, 'eval', 'base.json')}")
    if "core" in summary:
        print0(f"core: {summary['core']:.6f}")
    else:
        print0(f"val_bpb: {summary.get('val_bpb', float('nan')):.6f}")
    return summary


def main(argv=None):
    with cli("base_eval"):
        return evaluate(parse_args(argv))


if __name__ == "__main__":
    main()
