"""Supervised finetuning (SFT): train the model on whole conversations, loss on the assistant's tokens only.
Unlike midtraining, every conversation gets a row of its own, as at chat time, padded to the micro-batch's
longest; the loss is averaged over target tokens, not rows, so a long answer counts for more than a short one.
Mixtures: tasks/mixtures.py. Resumable like base_train.
"""

import argparse
import math

import torch

from nanochat.chat_data import PaddedLoader
from nanochat.chat_eval import run_chat_eval
from nanochat.common import BadInput, all_ranks_sum, cli, compute_init, get_base_dir, positive, print0
from nanochat.finetune import Finetune, add_finetune_args
from nanochat.training import evaluating
from tasks.mixtures import sft_mixtures
from tasks.registry import build_tasks

# The quick ChatCORE during SFT: multiple-choice tasks only, one forward pass per batch of
# questions; generative tasks (GSM8K, SpellingBee) sample replies and take much longer.
CHATCORE_TASKS = {"full": ["ARC-Easy", "ARC-Challenge", "MMLU"], "synthetic": ["SyntheticMathChoice"]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Supervised finetuning on conversations")
    add_finetune_args(p, source_default="mid", init_lr_frac=0.02)
    p.set_defaults(device_batch_size=4, warmdown_ratio=1.0, eval_every=100)
    p.add_argument("--examples-per-step", type=positive(int), default=32, help="conversations per step, all ranks")
    p.add_argument("--num-epochs", type=positive(float), default=1.0, help="passes over the mixture")
    p.add_argument("--eval-examples", type=positive(int), default=1024, help="validation conversations per evaluation")
    p.add_argument("--eval-every-chatcore", type=int, default=200, help="quick ChatCORE every N steps (-1: never)")
    p.add_argument("--chatcore-max-problems", type=int, default=100, help="problems per task in the quick ChatCORE")
    return p.parse_args(argv)


@torch.no_grad()
def evaluate_loss(model, batches, steps, autocast):
    """Mean loss in nats per target token over `steps` batches, all ranks together."""
    total = torch.zeros(2, dtype=torch.float64, device=next(model.parameters()).device)   # (nats, tokens)
    for _ in range(steps):
        x, y = next(batches)
        with autocast():
            total[0] += model(x, y, loss_reduction="sum").double()
        total[1] += (y >= 0).sum()
    nats, tokens = all_ranks_sum(total.tolist(), total.device)
    if tokens == 0:
        raise ValueError("the validation batches hold no assistant tokens to score")
    return nats / tokens


def train(args):
    compute = compute_init(args.device_type, seed=args.seed)
    base_dir = get_base_dir()
    if args.examples_per_step % (args.device_batch_size * compute.world_size):
        raise BadInput(f"--examples-per-step={args.examples_per_step} is not a multiple of --device-batch-size="
                       f"{args.device_batch_size} x {compute.world_size} processes")
    ft = Finetune(args, compute, base_dir, "SFT", "chatsft_checkpoints")   # may fit a smaller divisor batch
    tokenizer, render = ft.tokenizer, ft.tokenizer.render_conversation
    seq_len = ft.seq_len
    per_micro = args.device_batch_size * compute.world_size
    accum = args.examples_per_step // per_micro
    train_ds, val_ds = sft_mixtures(args.mixture, args.synthetic_size, args.identity_path, base_dir, args.seed)
    chatcore_tasks = {}
    if args.eval_every_chatcore > 0:
        try:
            chatcore_tasks = build_tasks(CHATCORE_TASKS[args.mixture])
        except Exception as e:   # offline hub, bad file: name the tasks and the way out
            raise BadInput(f"the quick ChatCORE cannot load its tasks ({', '.join(CHATCORE_TASKS[args.mixture])}): "
                           f"{e}\n(pass --eval-every-chatcore=-1 to skip it)") from e
    num_iterations = args.num_iterations if args.num_iterations > 0 else \
        max(1, math.ceil(args.num_epochs * len(train_ds) / args.examples_per_step))
    print0(f"train: {train_ds.name} ({len(train_ds):,} examples); validation: {val_ds.name} ({len(val_ds):,})")
    print0(f"batch: {args.examples_per_step} conversations = {args.device_batch_size} rows x {compute.world_size} "
           f"processes x {accum} accumulation steps, each row <= {seq_len} tokens; horizon {num_iterations:,} steps")

    pad_id = tokenizer.get_bos_token_id()   # any id would do: padded positions are never targets
    loader = PaddedLoader(train_ds, render, args.device_batch_size, seq_len, pad_id, compute.rank,
                          compute.world_size, compute.device)
    run = ft.run(loader, num_iterations, accum, report_section="Chat SFT", wandb_project="nanochat-sft",
                 metrics={"val_loss": float("nan"), "start_val_loss": float("nan"), "chatcore": None},
                 metric="val_loss")
    if run.finished:
        return run.finished
    eval_steps = math.ceil(args.eval_examples / per_micro)
    noted_crops = False
    while True:
        if run.due(args.eval_every):
            val_loader = PaddedLoader(val_ds, render, args.device_batch_size, seq_len, pad_id, compute.rank,
                                      compute.world_size, compute.device)
            with evaluating(ft.model):
                run.evaluated({"val loss": evaluate_loss(ft.model, val_loader, eval_steps, compute.autocast)})
        if args.eval_every_chatcore > 0 and run.step > 0 and run.due(args.eval_every_chatcore):
            with evaluating(ft.model):
                results = run_chat_eval(ft.model, tokenizer, chatcore_tasks, device=compute.device,
                                        max_problems=args.chatcore_max_problems, max_new_tokens=256,
                                        rank=compute.rank, world_size=compute.world_size, autocast=compute.autocast)
            run.metrics["chatcore"] = {"ChatCORE": results["chatcore"], **results["accuracy"]}
            run.evaluated(run.metrics["chatcore"])
        if run.last:
            break
        train_loss, lrm = ft.step(run, loader, accum)
        run.end_step(f"loss {train_loss:.4f} | lrm {lrm:.3f} | epoch {loader.source.epoch():.3f}",
                     {"train loss": train_loss, "train/lrm": lrm})
        if loader.cropped and not noted_crops:
            print0(f"note: conversations longer than {seq_len + 1} tokens are cropped, their tails not trained on "
                   "(the report counts them); a longer --max-seq-len keeps them whole if the model allows")
            noted_crops = True

    return run.finish({"train_mixture": train_ds.name, "conversations": run.step * args.examples_per_step,
                       "epochs": round(loader.source.epoch(), 3), "cropped_conversations_rank0": loader.cropped,
                       **(run.metrics["chatcore"] or {})})


def main(argv=None):
    with cli("chat_sft"):
        return train(parse_args(argv))


if __name__ == "__main__":
    main()
