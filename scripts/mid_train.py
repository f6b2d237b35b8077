"""
Midtraining: teach the base model the chat format, multiple choice, tool calls and its identity.

    python -m scripts.mid_train --mixture=synthetic ...                      # one process (CPU or 1 GPU)
    torchrun --standalone --nproc_per_node=8 -m scripts.mid_train -- --model-tag=d24

Starts from a base checkpoint (--source base, --model-tag, --step) and keeps pretraining, same
optimizer and learning rates, on conversations instead of web text. Conversations are rendered with
the chat template and packed best-fit into full rows, each starting with <|bos|>, exactly like
pretraining rows (nanochat/chat_data.py), so no compute goes to padding.

Loss on every token (--loss-on=all, the default): midtraining is still mostly language modelling,
and the user turns of SmolTalk, the MMLU questions and the template's special tokens are useful text
for a model that will see them in every chat. SFT (scripts/chat_sft.py) then narrows the loss to the
assistant's tokens. --loss-on=assistant trains (and validates) on the render mask instead.

Mixtures (`full` from the hub, `synthetic` offline): tasks/mixtures.py. Validation: bits per byte
(nanochat/loss_eval.py) on the held-out splits. The horizon, unless
--num-iterations is given, is one pass over the training mixture, estimated from a sample.
Resumable like base_train (--resume, SIGTERM); the last line printed is `val_bpb: X`.
"""

import argparse

from nanochat.chat_data import PackedConversationLoader
from nanochat.common import BadInput, cli, compute_init, get_base_dir, positive, print0
from nanochat.finetune import Finetune, add_finetune_args
from nanochat.loss_eval import evaluate_bpb
from nanochat.tokenizer import get_token_bytes
from nanochat.training import grad_accum_steps, lr_multiplier
from tasks.mixtures import mid_mixtures


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Midtrain a base model on conversations")
    add_finetune_args(p, source_default="base")
    p.add_argument("--max-seq-len", type=int, default=-1, help="row length (-1: the model's context length)")
    p.add_argument("--total-batch-size", type=positive(int), default=524288, help="tokens per optimizer step")
    p.add_argument("--init-lr-frac", type=float, default=1.0, help="learning rates as a fraction of pretraining's")
    p.add_argument("--loss-on", default="all", choices=("all", "assistant"),
                   help="train on every token, or only where the chat template's mask is 1")
    p.add_argument("--eval-tokens", type=positive(int), default=20 * 524288,
                   help="tokens per validation bpb evaluation")
    p.add_argument("--compile", type=int, default=-1, help="torch.compile the model (1/0; -1: on for CUDA)")
    return p.parse_args(argv)


def mean_tokens(dataset, render, sample=1000):
    """Mean rendered length of the first `sample` conversations (a mixture is shuffled, so they are typical)."""
    n = min(sample, len(dataset))
    return sum(len(render(dataset[i])[0]) for i in range(n)) / n


def train(args):
    compute = compute_init(args.device_type, seed=args.seed)
    base_dir = get_base_dir()
    ft = Finetune(args, compute, base_dir, "midtraining", "mid_checkpoints", args.init_lr_frac)
    render = ft.tokenizer.render_conversation
    token_bytes = get_token_bytes(base_dir, device=compute.device)
    seq_len = ft.seq_len(args.max_seq_len)
    try:
        accum = grad_accum_steps(args.total_batch_size, args.device_batch_size, seq_len, compute.world_size)
    except ValueError as e:
        raise BadInput(str(e)) from None
    train_ds, val_ds = mid_mixtures(args.mixture, args.synthetic_size, args.identity_path, base_dir,
                                    args.seed)
    est_tokens = mean_tokens(train_ds, render) * len(train_ds)
    num_iterations = args.num_iterations if args.num_iterations > 0 else \
        max(1, round(est_tokens / args.total_batch_size))
    resolved = {**vars(args), "max_seq_len": seq_len, "num_iterations": num_iterations, "grad_accum_steps": accum,
                "world_size": compute.world_size, "output_tag": ft.tag, **ft.source}
    print0(f"train: {train_ds!r} (~{est_tokens:,.0f} tokens); validation: {val_ds!r}")
    print0(f"batch: {args.total_batch_size:,} tokens = {args.device_batch_size} rows x {seq_len} tokens "
           f"x {compute.world_size} processes x {accum} accumulation steps; horizon {num_iterations:,} steps")

    use_mask = args.loss_on == "assistant"
    loader = PackedConversationLoader(train_ds, render, args.device_batch_size, seq_len, compute.rank,
                                      compute.world_size, compute.device, use_mask=use_mask)
    use_compile = args.compile == 1 or (args.compile == -1 and compute.device_type == "cuda")
    run = ft.run(loader, num_iterations, config=resolved, report_section="Midtraining", wandb_project="nanochat-mid",
                 metrics={"val_bpb": float("nan"), "start_val_bpb": float("nan")}, metric="val_bpb",
                 compiled=use_compile)
    if run.finished:
        return run.finished
    if use_compile:
        import torch
        ft.fwd = torch.compile(ft.model, dynamic=False)   # every row has the same length: one graph
    eval_steps = max(1, args.eval_tokens // (args.device_batch_size * seq_len * compute.world_size))
    while True:
        if run.due(args.eval_every):
            ft.model.eval()
            val_loader = PackedConversationLoader(val_ds, render, args.device_batch_size, seq_len, compute.rank,
                                                  compute.world_size, compute.device, use_mask=use_mask)
            run.evaluated({"val bpb": evaluate_bpb(ft.fwd, val_loader, eval_steps, token_bytes, compute.autocast)})
            ft.model.train()
            if run.step == 0:
                run.metrics["start_val_bpb"] = run.metrics["val_bpb"]
        if run.last:
            break
        lrm = lr_multiplier(run.progress(), 0.0, args.warmdown_ratio, args.final_lr_frac)
        with run.timing():
            train_loss = ft.step([next(loader) for _ in range(accum)], lrm)
        run.end_step(f"loss {train_loss:.4f} | lrm {lrm:.3f} | {args.total_batch_size / run.dt:,.0f} tok/s "
                     f"| epoch {loader.source.epoch():.3f}", {"train loss": train_loss, "train/lrm": lrm})

    return run.finish({
        "train_mixture": train_ds.name, "tokens": run.step * args.total_batch_size,
        "epochs": round(loader.source.epoch(), 3), "peak_memory_mib": round(compute.peak_memory() / 2**20),
    })


def main(argv=None):
    with cli("mid_train"):
        return train(parse_args(argv))


if __name__ == "__main__":
    main()
