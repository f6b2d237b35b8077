"""
The outer research loop: an agent proposes an edit to one stage (research/stages.py), the harness runs it
under a fixed budget in its own git worktree and keeps it (one commit fast-forwarding `autoresearch/<tag>`)
only if the metric, read from what the protected evaluation writes, beats the best by more than the noise.
    python -m research.autoresearch --stage base --budget 300 --agent 'my-agent --prompt-file {prompt}'
Deliberately not here: sandboxing the agent (it runs with your permissions), several GPUs per experiment
(pass a torchrun --command without --parallel), stopping a bad-looking run early.
"""

import argparse
import contextlib
import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nanochat.common import positive
from nanochat.dataset import list_shards
from research.agents import ACTIVE_GROUPS, Reject, detect_gpus, git, git_ok, make_agent, run_group, signal_group, tail
from research.stages import STAGES, Stage, lookup, matches, read_memory

COLUMNS = ["exp", "commit", "metric", "memory_mib", "seconds", "status", "description"]
MAX_REJECT_STREAK = 10


@dataclass
class Outcome:
    status: str                 # ok | crash | timeout
    metric: float = math.nan
    memory: float = math.nan
    seconds: float = 0.0
    guard: str | None = None
    note: str = ""


class Research:
    def __init__(self, stage, agent, opts):
        """opts: parse_args()'s namespace (tests override its fields); opts.gpus has one worker per entry."""
        self.stage, self.agent, self.opts = stage, agent, opts
        self.repo = git(opts.repo, "rev-parse", "--show-toplevel")
        tag = opts.tag or stage.name
        self.branch = f"autoresearch/{tag}"
        self.run_dir = os.path.abspath(opts.run_dir or os.path.join(self.repo, ".autoresearch", tag))
        self.program = opts.program or os.path.join(self.repo, "research", "program.md")
        self.lock, self.git_lock = threading.RLock(), threading.Lock()
        self.stopping, self.errors, self.claimed, self.reject_streak = False, [], set(), 0
        self.best, self.margin, self.guard, self.best_of = None, 0.0, None, {}
        self.ident = ["-c", "commit.gpgsign=false"]
        if not git_ok(self.repo, "config", "user.email")[0]:
            self.ident += ["-c", "user.name=autoresearch", "-c", "user.email=autoresearch@localhost"]
        if not os.path.isfile(self.program):
            raise FileNotFoundError(f"no agent instructions at {self.program}: write a program.md (see the repo's)")
        for name, cmd in stage.needs.items():
            if not os.path.exists(os.path.join(opts.inputs, name)):
                raise FileNotFoundError(f"stage '{stage.name}' needs {os.path.join(opts.inputs, name)}; make it "
                                        f"with: {cmd} (or point --inputs at a base dir that has it)")
        for d in ("logs", "prompts", "patches", "base"):
            os.makedirs(os.path.join(self.run_dir, d), exist_ok=True)
        Path(self.run_dir, ".gitignore").write_text("*\n")  # so `git status` of a repo holding it stays clean
        config = {"stage": asdict(stage), "budget": opts.budget}
        config_path = os.path.join(self.run_dir, "config.json")
        if not os.path.exists(config_path):
            Path(config_path).write_text(json.dumps(config, indent=2))
        if json.load(open(config_path)) != config:
            raise ValueError(f"{self.run_dir} was started with a different stage or budget "
                             f"(see {config_path}); use a new --tag for a new run")
        # The generated eval problems' seed ({eval_seed} in a command), drawn once per run and never shown to the
        # agent, unlike the public default: a candidate cannot train on the problems it is judged on.
        seed_path = Path(self.run_dir, "eval_seed")
        if not seed_path.exists():
            seed_path.write_text(str(random.SystemRandom().randrange(10**6, 10**9)))
        self.eval_seed = int(seed_path.read_text())
        if not git_ok(self.repo, "rev-parse", "--verify", "-q", f"refs/heads/{self.branch}")[0]:
            if not git_ok(self.repo, "rev-parse", "--verify", "-q", "HEAD^{commit}")[0]:
                raise ValueError(f"{self.repo} has no commit yet; experiments start from HEAD, so commit first")
            git(self.repo, "branch", self.branch, "HEAD")
            print(f"created branch {self.branch} at HEAD; uncommitted changes in your checkout are not part of it")
        self.tip = git(self.repo, "rev-parse", f"refs/heads/{self.branch}")
        shutil.rmtree(os.path.join(self.run_dir, "worktrees"), ignore_errors=True)  # a killed run's leftovers
        git(self.repo, "worktree", "prune")
        self.tsv = os.path.join(self.run_dir, "results.tsv")
        if not os.path.exists(self.tsv):
            Path(self.tsv).write_text("\t".join(COLUMNS) + "\n")
        self.rows = [dict(zip(COLUMNS, ln.rstrip("\n").split("\t"))) for ln in open(self.tsv).readlines()[1:]]
        self.done = {int(r["exp"]) for r in self.rows if r["exp"].isdigit()}

    def better(self, a, b):
        """a beats b by more than the noise margin."""
        return a > b + self.margin if self.stage.higher_is_better else a < b - self.margin

    def log_row(self, exp, commit, out, status, description):
        with self.lock:
            if self.stopping:
                return  # interrupted: not logged, so a resumed run does it again
            description = " ".join(description.split()) + (f" -- {out.note}" if out.note else "")
            row = {"exp": exp, "commit": commit[:9], "metric": f"{out.metric:.6g}", "memory_mib": f"{out.memory:.0f}",
                   "seconds": f"{out.seconds:.1f}", "status": status, "description": description}
            with open(self.tsv, "a") as f:
                f.write("\t".join(row[c] for c in COLUMNS) + "\n")
            self.rows.append(row)
            self.reject_streak = self.reject_streak + 1 if status == "reject" else 0
            best = "" if self.best is None else f"best {self.best:.6g}"
            print(f"[{exp}] {status:8s} {self.stage.name} {out.metric:.6g} {best} {out.seconds:.0f}s {description}",
                  flush=True)
            plot_progress(self.rows, os.path.join(self.run_dir, "progress.png"), self.stage)

    def write_prompt(self, name):
        s, unit = self.stage, "higher" if self.stage.higher_is_better else "lower"
        text = (open(self.program).read() + "\n\n## This run\n"
                f"- stage: {s.name}; metric: {s.metric}, {unit} is better, as `{s.evaluate}` writes it to "
                f"{s.metrics}\n- each experiment runs `{s.command or '(nothing)'}` with budget {self.opts.budget:g} s, "
                f"then the evaluation (killed at {self.opts.budget + s.grace:g} s in all)\n- files you may edit (any "
                f"other edit is rejected unrun): {', '.join(s.editable)}\n- the evaluation, never to be edited: "
                f"{', '.join(s.protected) or '(none)'}\n- best so far: {self.best:.6g} (commit {self.tip[:9]}); "
                f"noise margin {self.margin:.4g}: a change is kept only if it beats the best by more than that\n\n"
                "## Results so far (results.tsv)\n\n" + open(self.tsv).read())
        path = os.path.join(self.run_dir, "prompts", f"{name}.md")
        Path(path).write_text(text)
        return path

    @contextlib.contextmanager
    def worktree(self, name, commit):
        """A detached checkout of `commit` at worktrees/<name>; on exit it and the run's base/<name> are removed."""
        path = os.path.join(self.run_dir, "worktrees", name)
        with self.git_lock:  # git's worktree bookkeeping is not safe against itself in parallel
            git(self.repo, "worktree", "add", "--detach", "-q", path, commit)
        try:
            yield path
        finally:
            with self.git_lock:
                shutil.rmtree(path, ignore_errors=True)
                git_ok(self.repo, "worktree", "prune")  # forgets the worktrees whose folder is gone
            shutil.rmtree(os.path.join(self.run_dir, "base", name), ignore_errors=True)

    def link_held_out(self, base, evaluating):
        """The held-out folder, remade as one link per shard: the stage's own run sees the first shard under the
        validation shard's name (it cannot train on what it is judged on), the evaluation sees the real one.
        Remade for the evaluation, so nothing the run put in the folder reaches it."""
        if not self.stage.held_out:
            return
        folder = os.path.join(base, self.stage.held_out)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        shards = list_shards(os.path.abspath(os.path.join(self.opts.inputs, self.stage.held_out)))
        for shard in shards:
            shown = shard if evaluating or shard != shards[-1] else shards[0]
            os.symlink(shown, os.path.join(folder, os.path.basename(shard)))

    def env(self, name, gpu):
        base = os.path.join(self.run_dir, "base", name)
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(base)
        for need in self.stage.needs:  # the user's inputs, seen through symlinks; outputs stay in this run's dir
            if need != self.stage.held_out:
                os.symlink(os.path.abspath(os.path.join(self.opts.inputs, need)), os.path.join(base, need))
        self.link_held_out(base, evaluating=False)
        # Compile caches per run too: a warm cache hands later runs free budget (on an H200, base_train's first,
        # compiling step took 19 s of a 20 s budget cold; the next run, cache warm, trained many more steps).
        env = dict(os.environ, NANOCHAT_BASE_DIR=base, TORCHINDUCTOR_CACHE_DIR=os.path.join(base, ".inductor"),
                   TRITON_CACHE_DIR=os.path.join(base, ".triton"))
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        return env

    def measure(self, wt, name, slot, gpu):
        """Run the stage's command, then its evaluation, in worktree `wt`; the Outcome holds what the evaluation
        wrote. Before the evaluation the worktree is reset to its commit, so a run that rewrote the evaluation's
        files (or left compiled copies of them) on disk is judged by the committed code all the same."""
        s, budget = self.stage, self.opts.budget
        log = os.path.join(self.run_dir, "logs", f"{name}.log")
        open(log, "w").close()
        env = self.env(name, gpu)
        base = env["NANOCHAT_BASE_DIR"]
        metrics = os.path.join(base, s.metrics)
        fill = dict(python=shlex.quote(sys.executable), budget=f"{budget:g}", run_dir=shlex.quote(self.run_dir),
                    slot=slot, metrics=shlex.quote(metrics), eval_seed=self.eval_seed)
        out, rc, timed_out = Outcome("ok", memory=0.0), 0, False
        try:
            for cmd in filter(None, (s.command, s.evaluate)):
                if cmd is s.evaluate:
                    git(wt, "checkout", "-f", "-q", "HEAD", "--", ".")
                    git(wt, "clean", "-ffdxq")
                    self.link_held_out(base, evaluating=True)
                    if os.path.exists(metrics):
                        os.remove(metrics)   # only the evaluation may write the number it is judged by
                rc, seconds, rss, timed_out = run_group(cmd.format(**fill), wt, env, budget + s.grace - out.seconds,
                                                        log)
                out.seconds, out.memory = out.seconds + seconds, max(out.memory, rss)
                if rc != 0 or timed_out:
                    break
            data = json.load(open(metrics)) if os.path.exists(metrics) and rc == 0 and not timed_out else {}
            mem = read_memory(base, s.memory) if s.memory else None
        finally:
            shutil.rmtree(base, ignore_errors=True)
        Path(self.run_dir, "logs", f"{name}.metrics.json").write_text(json.dumps(data, indent=1))
        text = open(log, errors="replace").read()
        value, out.guard = lookup(data, s.metric), lookup(data, s.guard)  # no guard: key "" is never there
        out.memory = mem if mem is not None else out.memory
        out.metric = float(value) if isinstance(value, (int, float)) else math.nan
        if timed_out:
            out.status, out.note = "timeout", f"killed after {budget + s.grace:g}s: {tail(log)}"
        elif rc != 0:
            oom = rc in (-9, 137) or re.search(r"out of memory|OutOfMemoryError|MemoryError", text[-5000:])
            out.status, out.note = "crash", f"{'out of memory? ' if oom else ''}exit {rc}: {tail(log)}"
        elif not math.isfinite(out.metric):
            out.status, out.note = "crash", f"no number under {s.metric!r} in the evaluation's {s.metrics}: {tail(log)}"
        if out.status != "ok":
            print(f"[{name}] {out.status}; last lines of {log}:\n" + "\n".join(text.splitlines()[-15:]), flush=True)
        return out

    def baseline(self, name, slot, gpu):
        with self.worktree(name, self.tip) as wt:
            out = self.measure(wt, name, slot, gpu)
        self.log_row(name, self.tip, out, "baseline" if out.status == "ok" else out.status, "baseline")

    def experiment(self, exp, slot, gpu):
        name, base, cand = f"{exp:04d}", self.tip, "-"
        with self.worktree(name, base) as wt:
            try:
                description = self.agent.propose(wt, self.write_prompt(name), exp, self.env(name, gpu),
                                                 os.path.join(self.run_dir, "logs", f"{name}.agent.log"))
                description = " ".join(description.split())[:200] or "agent edit"
                git(wt, "checkout", "-q", "--detach")  # an agent that checked out a branch must not move it
                git(wt, "reset", "-q", "--soft", base)  # one commit per experiment, whatever the agent committed
                git(wt, "add", "-A")
                files = git(wt, "diff", "--cached", "--name-only", "--no-renames", base).splitlines()
                if not files:
                    raise Reject("no change")
                git(wt, *self.ident, "commit", "-q", "--no-verify", "-m", description)
                git(wt, "clean", "-ffdxq")  # what runs is exactly the commit: no ignored files left by the agent
                cand = git(wt, "rev-parse", "HEAD")
                patch = git(wt, "diff", "--binary", base, cand, strip=False)
                Path(self.run_dir, "patches", f"{name}.patch").write_text(f"{description}\n\n{patch}")
                if evaluation := [f for f in files if matches(f, self.stage.protected)]:
                    raise Reject(f"{description} -- edits the evaluation: {', '.join(evaluation)}")
                if outside := [f for f in files if not matches(f, self.stage.editable)]:
                    raise Reject(f"{description} -- edits outside the stage's files: {', '.join(outside)}")
            except Reject as e:
                return self.log_row(name, cand, Outcome("reject"), "reject", str(e))
            out = self.measure(wt, name, slot, gpu)
            with self.lock:
                self.decide(name, base, cand, out, description, slot, gpu)

    def decide(self, name, base, cand, out, description, slot, gpu):
        """Keep or discard a measured candidate (called under the lock, so decisions never interleave)."""
        if out.status != "ok":
            return self.log_row(name, cand, out, out.status, description)
        if self.stage.guard and str(out.guard) != self.guard:
            out.note = f"guard changed: {out.guard} != baseline {self.guard}"
            return self.log_row(name, cand, out, "discard", description)
        if not self.better(out.metric, self.best_of.get(base, self.best)):  # judged against its own starting point
            return self.log_row(name, cand, out, "discard", description)
        stale = base != self.tip
        if self.opts.confirm or stale:
            # Re-run on the current tip: once more to confirm, or because another change was kept meanwhile
            # (--parallel), in which case the candidate is cherry-picked and only the new run counts.
            with self.worktree(name + "c", self.tip if stale else cand) as wt:
                if stale and not git_ok(wt, *self.ident, "cherry-pick", cand)[0]:
                    out.note = "conflicts with a change kept meanwhile"
                    return self.log_row(name, cand, out, "discard", description)
                cand = git(wt, "rev-parse", "HEAD")  # the cherry-pick, when stale
                again = self.measure(wt, name + "c", slot, gpu)
            first = out.metric
            out.seconds += again.seconds
            if again.status != "ok" or (self.stage.guard and str(again.guard) != self.guard):
                out.note = f"confirmation run failed ({again.status} {again.note})"
                return self.log_row(name, cand, out, "discard", description)
            worse = (min if self.stage.higher_is_better else max)(first, again.metric)
            out.metric = again.metric if stale else worse  # stale: only the run with the kept change in counts
            out.note = f"runs {first:.6g} and {again.metric:.6g}"
            if not self.better(out.metric, self.best):
                return self.log_row(name, cand, out, "discard", description)
        git(self.repo, "update-ref", f"refs/heads/{self.branch}", cand, self.tip)  # fast-forward, if still at tip
        self.tip, self.best = cand, out.metric
        self.best_of[cand] = out.metric
        self.log_row(name, cand, out, "keep", description)

    def claim(self):
        with self.lock:
            if self.stopping or self.reject_streak >= MAX_REJECT_STREAK or (
                    self.opts.max_experiments is not None and len(self.claimed) >= self.opts.max_experiments):
                return None
            exp = 1
            while exp in self.done or exp in self.claimed:
                exp += 1
            if not self.agent.has(exp):
                return None
            self.claimed.add(exp)
            return exp

    def _pool(self, next_item, work):
        """One worker thread per GPU slot, each calling work(item, slot, gpu) for next_item() until it is None."""
        def worker(slot, gpu):
            try:
                while not self.stopping and (item := next_item()) is not None:
                    work(item, slot, gpu)
            except BaseException as e:  # stop everybody; re-raised in the main thread
                self.errors.append(e)
                self.stopping = True

        threads = [threading.Thread(target=worker, args=(slot, gpu), daemon=True)
                   for slot, gpu in enumerate(self.opts.gpus)]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                time.sleep(0.1)
        except BaseException:
            self.stopping = True  # nothing more is logged, so a resumed run redoes what was in flight
            for pgid in list(ACTIVE_GROUPS):
                signal_group(pgid, signal.SIGKILL)
            for t in threads:
                t.join(timeout=5)
            raise
        if self.errors:
            raise self.errors[0]

    def run(self):
        done = sum(r["status"] == "baseline" for r in self.rows)
        n = sum(r["exp"].startswith("b") for r in self.rows)
        pending = iter([f"b{k}" for k in range(n, n + self.opts.baseline_runs - done)])  # (threads may share it)
        self._pool(lambda: next(pending, None), self.baseline)
        runs = [r for r in self.rows if r["status"] == "baseline"]
        if len(runs) < self.opts.baseline_runs:
            raise RuntimeError(f"the baseline itself does not run cleanly: see {self.tsv} and the logs beside it")
        values = [float(r["metric"]) for r in runs]
        self.margin = max(max(values) - min(values), self.opts.min_delta)
        kept = [float(r["metric"]) for r in self.rows if r["status"] == "keep"]
        self.best = kept[-1] if kept else statistics.mean(values)
        self.best_of = {self.tip: self.best}
        if self.stage.guard:
            guards = {str(lookup(json.load(open(os.path.join(self.run_dir, "logs", f"{r['exp']}.metrics.json"))),
                                 self.stage.guard)) for r in runs}
            if len(guards) != 1:
                raise RuntimeError(f"the guard {self.stage.guard!r} differs between baseline runs: {guards}")
            self.guard = guards.pop()
        print(f"baseline {self.stage.name}: {statistics.mean(values):.6g} over {len(values)} runs, noise margin "
              f"{self.margin:.4g}; best {self.best:.6g} at {self.tip[:9]}", flush=True)
        self._pool(self.claim, self.experiment)
        if self.reject_streak >= MAX_REJECT_STREAK:
            raise RuntimeError(f"{MAX_REJECT_STREAK} rejects in a row: the agent is not producing candidates "
                               f"(see {self.run_dir}/logs/*.agent.log)")
        return self.rows


def plot_progress(rows, path, stage):
    """The metric of every measured attempt, kept ones highlighted, and the best so far as a step line."""
    from matplotlib.figure import Figure  # no pyplot: no global state, safe from worker threads
    fig = Figure(figsize=(10, 5))
    ax = fig.subplots()
    points = {status: [(i, float(r["metric"])) for i, r in enumerate(rows) if r["status"] == status]
              for status in ("baseline", "keep", "discard")}
    for (status, xy), color, size in zip(points.items(), ("tab:blue", "tab:green", "silver"), (40, 80, 20)):
        if xy:
            ax.scatter(*zip(*xy), c=color, s=size, zorder=3, label=status)
    for i, r in enumerate(rows):
        if r["status"] in ("crash", "timeout", "reject"):
            ax.axvline(i, color="tab:red", alpha=0.15, lw=1)
    if points["baseline"]:  # the best so far: the baselines' mean, then each kept metric
        steps = [(0, statistics.mean(y for _, y in points["baseline"])), *points["keep"]]
        ax.step(*zip(*steps, (len(rows) - 1, steps[-1][1])), where="post", color="tab:green", lw=1, label="best")
        ax.legend()
    ax.set(xlabel="attempt (red lines: crash / timeout / reject)", title=f"autoresearch: {stage.name}",
           ylabel=f"{stage.metric} ({'higher' if stage.higher_is_better else 'lower'} is better)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    fig.savefig(path + ".tmp.png", dpi=100)
    os.replace(path + ".tmp.png", path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Let an agent improve one stage, keeping only measured gains")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--stage", choices=sorted(STAGES), help="what to improve")
    which.add_argument("--stage-file", default="", help="JSON with a custom Stage's fields (instead of --stage)")
    p.add_argument("--agent", required=True, help="a shell command (gets {prompt}), openai:MODEL or replay:DIR")
    p.add_argument("--budget", type=positive(float), default=300, help="seconds each experiment gets")
    p.add_argument("--tag", default="", help="run name: branch autoresearch/<tag> (default: the stage's name)")
    p.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p.add_argument("--run-dir", default="", help="default <repo>/.autoresearch/<tag>")
    p.add_argument("--inputs", default=os.environ.get("NANOCHAT_BASE_DIR") or os.path.expanduser("~/.cache/nanochat"),
                   help="base dir holding the stage's prerequisites (default $NANOCHAT_BASE_DIR)")
    p.add_argument("--command", default=None, help="override the stage's command line ('' for none)")
    p.add_argument("--evaluate", default=None, help="override the stage's evaluation command line")
    p.add_argument("--grace", type=float, default=None, help="seconds past the budget before a kill (default: the "
                   "stage's)")
    p.add_argument("--baseline-runs", type=positive(int), default=2, help="baseline repeats, to measure the noise")
    p.add_argument("--min-delta", type=float, default=0.0, help="smallest margin a gain must beat")
    p.add_argument("--confirm", action="store_true", help="re-run a winner once and judge the worse of the two")
    p.add_argument("--max-experiments", type=int, default=None, help="stop after N experiments (this invocation)")
    p.add_argument("--parallel", action="store_true", help="one experiment per visible GPU at a time")
    p.add_argument("--api-base", default=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"))
    p.add_argument("--agent-timeout", type=float, default=3600, help="seconds an agent may take per proposal")
    p.add_argument("--program", default="", help="agent instructions (default <repo>/research/program.md)")
    args = p.parse_args(argv)
    args.gpus = detect_gpus(os.environ) if args.parallel else [None]  # None leaves CUDA_VISIBLE_DEVICES alone
    return args


def main(argv=None):
    args = parse_args(argv)
    stage = Stage(**json.load(open(args.stage_file))) if args.stage_file else STAGES[args.stage]
    overrides = {k: getattr(args, k) for k in ("command", "evaluate", "grace") if getattr(args, k) is not None}
    stage = replace(stage, **overrides)  # a copy: STAGES stays as written
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill stops the runs in flight too
    try:
        research = Research(stage, make_agent(args.agent, args.api_base, args.agent_timeout, stage), args)
        rows = research.run()
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit(f"autoresearch: {e}")
    except KeyboardInterrupt:
        sys.exit("autoresearch: interrupted; run the same command again to continue")
    finally:
        signal.signal(signal.SIGTERM, previous)
    kept = sum(r["status"] == "keep" for r in rows)
    print(f"done: {len(rows)} attempts logged, {kept} kept; best {research.best:.6g} on branch {research.branch}\n"
          f"results: {research.tsv}\ntake it: git merge --ff-only {research.branch}")


if __name__ == "__main__":
    main()
