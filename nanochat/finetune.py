"""What midtraining and SFT share: their common flags and `Finetune` (model from an earlier checkpoint, its
optimizer, one optimizer step). The loop is nanochat/run.py; the data is each script's own.
"""

import os

import torch
import torch.distributed as dist

from nanochat.checkpoint import add_checkpoint_args, load_model
from nanochat.common import BadInput, positive, print0
from nanochat.run import Run
from nanochat.training import add_training_args, build_optimizer, fit_batch, lr_multiplier, probe_step, set_schedule


def add_finetune_args(p, source_default, init_lr_frac):
    """The flags both stages take (and every training stage's: add_training_args); each script adds its own."""
    add_training_args(p, eval_every=150)
    add_checkpoint_args(p, source_default, use="to start from")
    p.add_argument("--output-tag", default="", help="tag of this stage's checkpoints (default: the source's tag)")
    p.add_argument("--mixture", default="full", choices=("full", "synthetic"),
                   help="full: the real datasets from the hub; synthetic: the embedded generator (offline)")
    p.add_argument("--identity-path", default="", help="identity conversations .jsonl (CustomJSON; default: "
                   "$NANOCHAT_BASE_DIR/identity_conversations.jsonl, written with the default persona if missing)")
    p.add_argument("--synthetic-size", type=positive(int), default=5000, help="examples per synthetic task")
    p.add_argument("--max-seq-len", type=int, default=-1, help="tokens per row (-1: the model's context length)")
    p.add_argument("--init-lr-frac", type=float, default=init_lr_frac, help="lrs as a fraction of pretraining's")


class Finetune:
    """The model loaded from an earlier stage's checkpoint, its optimizer, --device-batch-size fitted to the GPU
    (a divisor of the requested one: nanochat/training.py's fit_batch), and one optimizer step."""

    def __init__(self, args, compute, base_dir, stage, ckpt_subdir):
        self.args, self.compute, self.base_dir, self.stage = args, compute, base_dir, stage
        try:
            model, self.tokenizer, meta = load_model(args.source, compute.device, args.model_tag, args.step, base_dir)
        except (FileNotFoundError, ValueError) as e:
            raise BadInput(f"cannot load the {args.source} model to start {stage} from: {e}") from e
        self.model = self.fwd = model.train()   # fwd: the model, or its torch.compile'd wrapper
        self.source = {"source": args.source, "source_dir": meta["checkpoint_dir"], "source_step": meta["step"]}
        self.tag = args.output_tag or os.path.basename(meta["checkpoint_dir"])
        self.ckpt_dir = os.path.join(base_dir, ckpt_subdir, self.tag)
        frac = args.init_lr_frac
        self.optimizer = build_optimizer(model, args.matrix_lr * frac, args.embedding_lr * frac,
                                         args.unembedding_lr * frac, scalar_lr=args.scalar_lr * frac)
        print0(f"{stage}: starting from {args.source} checkpoint {meta['checkpoint_dir']} step {meta['step']} "
               f"({model.num_params():,} parameters); checkpoints go to {self.ckpt_dir}")
        context = model.config.sequence_len
        if args.max_seq_len > context:
            raise BadInput(f"--max-seq-len={args.max_seq_len} is longer than the model's context ({context})")
        self.seq_len = args.max_seq_len if args.max_seq_len > 0 else context
        args.device_batch_size = fit_batch(lambda b: probe_step(model, b, self.seq_len, compute),
                                           args.device_batch_size, compute)

    def run(self, loader, num_iterations, accum, **kwargs):
        """The Run (nanochat/run.py) of this finetune: resumed, checkpointed and logged like every stage."""
        config = {**vars(self.args), "max_seq_len": self.seq_len, "num_iterations": num_iterations,
                  "grad_accum_steps": accum, "world_size": self.compute.world_size, "output_tag": self.tag,
                  **self.source}
        return Run(self.stage, self.args, self.compute, self.base_dir, self.ckpt_dir, self.model, self.optimizer,
                   loader, num_iterations, config=config, meta=self.source, **kwargs)

    def step(self, run, loader, accum):
        """One optimizer step over `accum` micro-batches of `loader`, timed by `run`; returns (mean loss, lr
        multiplier). Each target token weighs the same wherever it is: the summed loss is divided by the number of
        target tokens on all ranks (times world size, because the optimizer averages gradients across ranks). A
        micro-batch with no targets (every assistant token cropped away) just adds nothing."""
        lrm = lr_multiplier(run.progress(), 0.0, self.args.warmdown_ratio, self.args.final_lr_frac)
        with run.timing():
            batches = [next(loader) for _ in range(accum)]
            set_schedule(self.optimizer, lrm)
            count = sum((y >= 0).sum() for _, y in batches).float()   # stays on the device: no sync per micro-batch
            if self.compute.ddp:
                dist.all_reduce(count)
            scale = self.compute.world_size / max(count.item(), 1.0)
            loss_sum = torch.zeros((), device=self.compute.device)
            for x, y in batches:
                with self.compute.autocast():
                    loss = self.fwd(x, y, loss_reduction="sum")
                (loss * scale).backward()
                loss_sum += loss.detach()
            self.optimizer.step()
            self.model.zero_grad(set_to_none=True)
            if self.compute.ddp:
                dist.all_reduce(loss_sum)
            return loss_sum.item() / max(count.item(), 1.0), lrm
