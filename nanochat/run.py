"""The skeleton every training stage (base, mid, SFT, RL) shares: resume, the step clock (training time only),
eval cadence, checkpoints (every --save-every steps, at the end, on SIGTERM/SIGINT), curves, wandb, the report
section and metrics.json. Each script keeps only its batches, its optimizer step and its evaluation; the loop
(`finished`, `due`/`evaluated`, `last`, `with timing()`, `end_step`, `finish`) reads best in scripts/mid_train.py.
"""

import gc
import math
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict

import torch

from nanochat.checkpoint import complete_steps, load_checkpoint, save_checkpoint
from nanochat.common import all_ranks_max, atomic_write_json, print0
from nanochat.report import format_duration, get_report

# The values a stage logs that also become curves on the report card (everything logged goes to wandb).
CURVES = ("train loss", "val bpb", "val loss", "CORE", "train reward", "pass@1")


class Run:
    """One run of a training stage, from its first (or resumed) step to its final checkpoint. `metrics` names
    the stage's own numbers with their starting values (e.g. {"val_bpb": nan}): they go into every checkpoint's
    meta, come back on resume, and end in metrics.json; `metric` is the one the last line prints. `meta` adds
    fixed entries to every checkpoint (e.g. the source checkpoint)."""

    def __init__(self, stage, args, compute, base_dir, ckpt_dir, model, optimizer, loader, num_iterations, *,
                 config, report_section, wandb_project, metrics, metric, meta=None, compiled=False):
        self.stage, self.args, self.compute, self.ckpt_dir = stage, args, compute, ckpt_dir
        self.model, self.optimizer, self.loader = model, optimizer, loader
        self.num_iterations, self.time_budget = num_iterations, args.time_budget
        self.config, self.report_section, self.metric = config, report_section, metric
        self.meta = {"model_config": asdict(model.config), **(meta or {})}
        self.metrics = dict(metrics)
        self.step, self.train_time, self.dt = 0, 0.0, 0.0   # step: optimizer steps taken so far
        self.compiling = compiled   # the first step of a compiled model is mostly compilation
        self.frozen = False         # gc.freeze() after this process's first step, fresh or resumed
        self.finished = self._resume()
        if self.finished:
            return
        self.report = get_report(base_dir)
        self.curves, self.start_step = {}, self.step   # name -> {step: value} seen since this (re)start
        self.wandb = None   # wandb when a run name is given (it honours WANDB_MODE=offline)
        if args.run and args.run != "dummy" and compute.master:
            import wandb
            self.wandb = wandb.init(project=wandb_project, name=args.run, config=config)
        # SIGTERM/SIGINT (spot preemption, Ctrl-C) set a flag the loop checks at a step boundary (end_step)
        self.signal = None
        self.previous_handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _on_signal(self, signum, frame):
        self.signal = signal.Signals(signum).name

    def _resume(self):
        """Restore everything an exact resume needs; returns the final checkpoint's meta when it is there."""
        if not self.args.resume:
            return None
        if not complete_steps(self.ckpt_dir):
            print0(f"--resume: no checkpoint in {self.ckpt_dir} yet, starting from the beginning")
            return None
        model_state, rank_state, meta = load_checkpoint(self.ckpt_dir, rank=self.compute.rank,
                                                        device=self.compute.device, log=print0)
        if meta.get("final"):
            print0(f"{self.ckpt_dir} already holds the final checkpoint (step {meta['step']}); nothing to do")
            print0(f"{self.metric}: {meta[self.metric]:.6f}")
            return meta
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(rank_state["optimizer"])
        if self.loader is not None:
            self.loader.load_state_dict(rank_state["loader"])
        torch.set_rng_state(rank_state["rng"]["torch"])
        if "cuda" in rank_state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rank_state["rng"]["cuda"])
        self.step, self.train_time = meta["step"], meta["train_time"]
        self.metrics.update({k: meta[k] for k in self.metrics})
        print0(f"resumed from step {self.step} of {self.ckpt_dir}")

    # ---- where the loop is
    def progress(self):
        """Fraction of the run done: by steps, or by training time under a time budget, whichever is further."""
        p = self.step / self.num_iterations
        return max(p, self.train_time / self.time_budget) if self.time_budget > 0 else p

    @property
    def last(self):
        return self.progress() >= 1.0

    def due(self, every):
        """True at step 0, every `every` steps, and at the end."""
        return every > 0 and self.step % every == 0 or self.last

    # ---- logging
    def log(self, values):
        for name, value in values.items():
            if name in CURVES:
                self.curves.setdefault(name, {})[self.step] = float(value)
        if self.wandb is not None:
            self.wandb.log(values, step=self.step)

    def evaluated(self, values):
        """Print and record evaluation results; a name that is also a metric ("val bpb" -> val_bpb) updates it,
        and at step 0 its start_ twin (start_val_bpb) too, when the stage keeps one."""
        print0(f"step {self.step:05d} | " + " | ".join(f"{k} {v:.4f}" for k, v in values.items()))
        for name, value in values.items():
            key = name.replace(" ", "_")
            for k in (key, "start_" + key) if self.step == 0 else (key,):
                if k in self.metrics:
                    self.metrics[k] = value
        self.log(values)

    # ---- one optimizer step
    @contextmanager
    def timing(self):
        """Times the optimizer step inside it (the device synchronised at both ends) and counts it."""
        self.compute.synchronize()
        t0 = time.time()
        yield
        self.compute.synchronize()
        self.dt = time.time() - t0
        self.step += 1
        if self.compiling:   # mostly compilation: counts against neither the time budget nor the ETA
            self.compiling = False
        else:
            self.train_time += self.dt
        if not self.frozen:
            # Python's cycle collector scans every live object now and then, tens of ms each time with a
            # model's worth of them (nanochat measured pauses of ~500 ms); nothing made after setup is
            # cyclic garbage worth it. Freeze what exists, collect by hand every 1000 steps.
            gc.collect()
            gc.freeze()
            gc.disable()
            self.frozen = True
        elif self.step % 1000 == 0:
            gc.collect()

    def end_step(self, text, values):
        """After a step: print `step i/N | text | ms | eta`, log `values`, then checkpoint if due or asked to stop."""
        if not math.isfinite(values.get("train loss", 0.0)):
            raise FloatingPointError(f"{self.stage}: the training loss became {values['train loss']} at step "
                                     f"{self.step}; lower the learning rates")
        done = self.progress()
        remaining = (1 - done) * self.train_time / max(done, 1e-9)
        print0(f"step {self.step:05d}/{self.num_iterations} | {text} | {1000 * self.dt:.0f} ms "
               f"| eta {format_duration(remaining)}")
        self.log({**values, "train/dt": self.dt})
        if all_ranks_max(1.0 if self.signal else 0.0, self.compute.device) > 0:   # all ranks stop at the same step
            self.save()
            print0(f"stopped by {self.signal or 'a signal on another rank'} at step {self.step}; "
                   "rerun with --resume to continue")
            if self.wandb is not None:
                self.wandb.finish()
            sys.exit(143)   # the script's `with cli(...)` tears the process group down
        if self.step % self.args.save_every == 0 and not self.last:
            self.save()

    # ---- checkpoints and the end
    def save(self, final=False):
        meta = {**self.meta, "train_config": self.config, **self.metrics, "step": self.step,
                "train_time": self.train_time, "final": final}
        rank_state = {"optimizer": self.optimizer.state_dict(), "rng": {"torch": torch.get_rng_state()}}
        if torch.cuda.is_available():
            rank_state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        if self.loader is not None:
            rank_state["loader"] = self.loader.state_dict()
        for name, points in self.curves.items():   # before the checkpoint, so resuming from it never leaves a gap
            self.report.log_curve(self.report_section, name, list(points), list(points.values()), self.start_step)
        save_checkpoint(self.ckpt_dir, self.step, self.model.state_dict(), rank_state, meta,
                        self.compute.rank, self.args.keep_last)
        print0(f"saved checkpoint step {self.step} to {self.ckpt_dir}")

    def finish(self, report):
        """The final checkpoint, the report section (config, then `report`, peak_memory_mib and the metrics),
        metrics.json (the same numbers), and the last line: `<metric>: <value>`. Returns the metrics."""
        report = {**report, "peak_memory_mib": round(self.compute.peak_memory() / 2**20)}   # GPU, else peak RSS
        self.save(final=True)
        for sig, handler in self.previous_handlers.items():
            signal.signal(sig, handler)
        gc.unfreeze()   # frozen objects are never freed: at exit, extensions (triton's) would report them as leaks
        gc.enable()
        numbers = {k: v for k, v in self.metrics.items() if not isinstance(v, dict)}   # tables are the stage's
        metrics = {"stage": self.stage, **report, **self.metrics, "step": self.step,
                   "train_time": round(self.train_time, 1)}
        self.report.log(self.report_section, [self.config, {"steps": self.step, **report, **numbers,
                                                             "train_time_min": round(self.train_time / 60, 2)}])
        if self.compute.master:
            atomic_write_json(os.path.join(self.ckpt_dir, "metrics.json"), metrics)
        if self.wandb is not None:
            self.wandb.finish()
        print0(f"{self.metric}: {self.metrics[self.metric]:.6f}")
        return metrics

