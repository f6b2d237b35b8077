"""Midtraining: teach the base model the chat format, multiple choice, tool calls and its identity, by continuing
pretraining (same optimizer and lrs) on conversations packed best-fit into full rows (nanochat/chat_data.py).
Mixtures: tasks/mixtures.py. Resumable like base_train.
"""

import argparse

import torch

from nanochat.chat_data import PackedConversationLoader
from nanochat.common import cli, compute_init, get_base_dir, positive, print0
from nanochat.finetune import Finetune, add_finetune_args
from nanochat.loss_eval import evaluate_bpb
from nanochat.tokenizer import get_token_bytes
from nanochat.training import evaluating, grad_accum_steps
from tasks.mixtures import mid_mixtures


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Midtrain a base model on conversations")
    add_finetune_args(p, source_default="base", init_lr_frac=1.0)
    p.add_argument("--total-batch-size", type=positive(int), default=524288, help="tokens per optimizer step")
    # Loss on every token by default: midtraining is still mostly language modelling, and user turns, MMLU
    # questions and special tokens are useful text for a model that sees them in every chat. SFT narrows it.
    p.add_argument("--loss-on", default="all", choices=("all", "assistant"), help="every token, or the assistant's")
    p.add_argument("--eval-tokens", type=positive(int), default=20 * 524288, help="tokens per validation bpb eval")
    p.add_argument("--compile", type=int, default=-1, help="torch.compile the model (1/0; -1: on for CUDA)")
    return p.parse_args(argv)


def train(args):
    compute = compute_init(args.device_type, seed=args.seed)
    base_dir = get_base_dir()
    ft = Finetune(args, compute, base_dir, "midtraining", "mid_checkpoints")
    render = ft.tokenizer.render_conversation
    token_bytes = get_token_bytes(base_dir, device=compute.device)
    seq_len = ft.seq_len
    accum = grad_accum_steps(args.total_batch_size, args.device_batch_size, seq_len, compute.world_size)
    train_ds, val_ds = mid_mixtures(args.mixture, args.synthetic_size, args.identity_path, base_dir, args.seed)
    # The horizon: one pass over the mixture, from the mean length of its first conversations (it is shuffled)
    n = min(1000, len(train_ds))
    est_tokens = sum(len(render(train_ds[i])[0]) for i in range(n)) / n * len(train_ds)
    num_iterations = args.num_iterations if args.num_iterations > 0 else \
        max(1, round(est_tokens / args.total_batch_size))
    print0(f"train: {train_ds.name} ({len(train_ds):,} examples, ~{est_tokens:,.0f} tokens); validation: {val_ds.name}")
    print0(f"batch: {args.total_batch_size:,} tokens = {args.device_batch_size} rows x {seq_len} tokens "
           f"x {compute.world_size} processes x {accum} accumulation steps; horizon {num_iterations:,} steps")

    use_mask = args.loss_on == "assistant"
    loader = PackedConversationLoader(train_ds, render, args.device_batch_size, seq_len, compute.rank,
                                      compute.world_size, compute.device, use_mask=use_mask)
    use_compile = args.compile == 1 or (args.compile == -1 and compute.device_type == "cuda")
    run = ft.run(loader, num_iterations, accum, report_section="Midtraining", wandb_project="nanochat-mid",
                 metrics={"val_bpb": float("nan"), "start_val_bpb": float("nan")}, metric="val_bpb",
                 compiled=use_compile)
    if run.finished:
        return run.finished
    if use_compile:
        ft.fwd = torch.compile(ft.model, dynamic=False)   # every row has the same length: one graph
    eval_steps = max(1, args.eval_tokens // (args.device_batch_size * seq_len * compute.world_size))
    while True:
        if run.due(args.eval_every):
            val_loader = PackedConversationLoader(val_ds, render, args.device_batch_size, seq_len, compute.rank,
                                                  compute.world_size, compute.device, use_mask=use_mask)
            with evaluating(ft.model):
                run.evaluated({"val bpb": evaluate_bpb(ft.fwd, val_loader, eval_steps, token_bytes, compute.autocast)})
        if run.last:
            break
        train_loss, lrm = ft.step(run, loader, accum)
        run.end_step(f"loss {train_loss:.4f} | lrm {lrm:.3f} | {args.total_batch_size / run.dt:,.0f} tok/s "
                     f"| epoch {loader.source.epoch():.3f}", {"train loss": train_loss, "train/lrm": lrm})

    return run.finish({"train_mixture": train_ds.name, "tokens": run.step * args.total_batch_size,
                       "epochs": round(loader.source.epoch(), 3)})


def main(argv=None):
    with cli("mid_train"):
        return train(parse_args(argv))


if __name__ == "__main__":
    main()
