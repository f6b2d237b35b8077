"""The report card under $NANOCHAT_BASE_DIR/report/: `reset()` writes run_info.json at the start of a run, each stage
`log`s its section (<slug>.md for people, <slug>.json for tools) and its curves (curves/<slug>--<name>.json), and
`generate()` assembles report.md and <slug>-curves.png. Only rank 0 writes, every file atomically. `log_plan` keeps the
run's plan (nanochat/plan.py) as run_plan.json, so the card shows its estimate beside the measured time and cost.
Deliberately left out: anything that needs a running server, and prices: the cost line is an estimate,
wall-clock x GPUs x a $/GPU-hour rate, not a bill.
"""

import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
import time
from collections import Counter

from nanochat.common import atomic_path, atomic_write_json, atomic_write_text, dist_info, get_base_dir

# Sections in the order the pipeline writes them; sections not listed follow, oldest first.
PIPELINE = ["Tokenizer training", "Tokenizer evaluation", "Base model training", "Base model evaluation",
            "Chat evaluation base", "Midtraining", "Chat evaluation mid", "Chat SFT", "Chat evaluation sft",
            "Chat RL", "Chat evaluation rl"]
# Summary table: one column per stage, one row per metric. CORE comes from base_eval, the rest from chat_eval.
STAGES = ("base", "mid", "sft", "rl")
METRICS = ["CORE", "ARC-Easy", "ARC-Challenge", "MMLU", "GSM8K", "HumanEval", "SpellingBee", "ChatCORE"]
SUMMARY_ROWS = ["CORE", "val bpb", *METRICS[1:]]   # the summary table's fixed rows; other tasks follow them
DEFAULT_GPU_HOUR_RATE = 3.0  # $ per GPU-hour, roughly an on-demand H100 in 2025
RUN_INFO, PLAN = "run_info.json", "run_plan.json"   # "_" never occurs in a slug: no section collides with them
GPT2_CORE = 0.2565   # GPT-2 (1.5B)'s CORE: the leaderboard's bar (nanochat's dev/LEADERBOARD.md)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def slugify(title):
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def _now():
    return datetime.datetime.now().strftime(TIME_FORMAT)


def format_duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


# -----------------------------------------------------------------------------
# System information, recorded at the start of a run

def system_info():
    """What the run ran on: git state (of the checkout holding this file), GPUs, CPUs, memory, software versions."""
    import psutil
    import torch

    def git(*args):
        try:
            proc = subprocess.run(["git", *args], cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                  capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    # commit None: not a checkout, no git, or no commit yet
    git_state = {"commit": git("rev-parse", "--short", "HEAD"), "dirty": None if status is None else bool(status)}
    props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]  # none without CUDA
    gpus = [{"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1)} for p in props]
    return {"git": git_state, "gpus": gpus, "cpu_count": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform(), "hostname": platform.node()}


def _environment_lines(info):
    git = info["git"]
    commit = git["commit"] or "unknown (no git checkout, or no commit yet)"
    dirty = {True: " (with uncommitted changes)", False: " (clean)", None: ""}[git["dirty"] if git["commit"] else None]
    names = Counter(f"{gpu['name']} ({gpu['memory_gib']} GiB)" for gpu in info["gpus"])
    gpus = ", ".join(f"{n} x {name}" for name, n in names.items()) or "none (CPU run)"
    return [f"- git commit: {commit}{dirty}", f"- GPUs: {gpus}",
            f"- CPUs: {info['cpu_count']}, memory: {info['memory_gib']} GiB",
            f"- Python {info['python']}, torch {info['torch']}, {info['platform']}"]


# -----------------------------------------------------------------------------

class Report:
    def __init__(self, report_dir):
        self.dir = report_dir

    # ---- what stages call

    def log(self, section, data):
        """Write one stage's section. `data` is a list of dicts (key/value lines) and strings (paragraphs)."""
        if dist_info()[0] != 0:   # only rank 0 writes
            return None
        os.makedirs(self.dir, exist_ok=True)
        stamp = _now()
        lines = [f"## {section}", f"timestamp: {stamp}", ""]
        for item in data:
            if isinstance(item, dict):
                lines += [f"- {k}: {_fmt(v)}" for k, v in item.items()]
            elif item:
                lines.append(str(item))
        flat = {k: v for item in data if isinstance(item, dict) for k, v in item.items()}
        slug = slugify(section)
        path = os.path.join(self.dir, f"{slug}.md")
        atomic_write_text(path, "\n".join(lines) + "\n\n")
        atomic_write_json(os.path.join(self.dir, f"{slug}.json"),
                          {"section": section, "timestamp": stamp, "data": json.loads(json.dumps(flat, default=str))})
        return path

    def log_curve(self, section, name, steps, values, resume_step=None):
        """Record a training curve of `section` (e.g. "Base model training", "train loss"): values[i] at steps[i].
        Merges with what is on file, new values winning at equal steps. A run resumed from a checkpoint passes
        its step as resume_step: old points after it belong to the interrupted run's lost part and are dropped."""
        if dist_info()[0] != 0:   # only rank 0 writes
            return None
        steps, values = [int(s) for s in steps], [float(v) for v in values]
        assert len(steps) == len(values), f"curve {name!r} of {section!r}: {len(steps)} steps but {len(values)} values"
        rel = os.path.join("curves", f"{slugify(section)}--{slugify(name)}.json")
        old = self._load(rel) or {"steps": [], "values": []}
        points = {s: v for s, v in zip(old["steps"], old["values"]) if resume_step is None or s <= resume_step}
        points.update(zip(steps, values))
        order = sorted(points)
        path = os.path.join(self.dir, rel)
        atomic_write_json(path, {"section": section, "name": name, "steps": order,
                                 "values": [points[s] for s in order]})
        return path

    # ---- reading back

    def _load(self, name):
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    def read(self, section):
        """The key/values a stage logged, or None if that section does not exist."""
        entry = self._load(f"{slugify(section)}.json")
        return None if entry is None else entry["data"]

    def _entries(self, subdir=""):
        """The JSON files in the report directory (or a subdirectory of it), sorted by name; not RUN_INFO or PLAN."""
        d = os.path.join(self.dir, subdir)
        for fname in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if fname.endswith(".json") and fname not in (RUN_INFO, PLAN):
                yield self._load(os.path.join(subdir, fname))

    def sections(self):
        """Titles of the logged sections: pipeline order first, then any others, oldest first."""
        # skip anything else left in the folder
        found = {e["section"]: e["timestamp"] for e in self._entries() if isinstance(e, dict) and "section" in e}
        known = [s for s in PIPELINE if s in found]
        return known + sorted((s for s in found if s not in PIPELINE), key=lambda s: (found[s], s))

    def curves(self, section=None):
        """Recorded curves ({"section", "name", "steps", "values"}), of one section or all, sorted by file name."""
        return [c for c in self._entries("curves") if section is None or c["section"] == section]

    def run_info(self):
        return self._load(RUN_INFO)

    def log_plan(self, plan):
        """Keep this run's plan (nanochat.plan.make_plan) for the summary; after reset(), which empties the folder."""
        if dist_info()[0] != 0:   # only rank 0 writes
            return None
        atomic_write_json(os.path.join(self.dir, PLAN), plan)
        return os.path.join(self.dir, PLAN)

    # ---- the start and the end of a run

    def reset(self):
        """Start of a run: forget the previous run's report and record the start time and system info."""
        if dist_info()[0] != 0:   # only rank 0 writes
            return None
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
        path = os.path.join(self.dir, RUN_INFO)
        atomic_write_json(path, {"start_time": _now(), "start_epoch": time.time(), "system": system_info()})
        return path

    def summary(self):
        """{metric: {stage: value}} for the summary table; a stage that did not report a metric is absent."""
        base_eval = self.read("Base model evaluation") or {}
        # val bpb: bits per byte on the pretraining validation shard (offline runs have no CORE)
        table = {metric: {"base": base_eval[key]} for metric, key in (("CORE", "core"), ("val bpb", "val_bpb"))
                 if key in base_eval}
        for stage in STAGES:
            data = self.read(f"Chat evaluation {stage}") or {}
            names = [n for n in str(data.get("tasks", "")).split(",") if n]  # tasks beyond METRICS, e.g. synthetic
            if "ChatCORE" in data and set(names) != set(METRICS[1:-1]):   # not the full set: say what it averaged
                table.setdefault(f"ChatCORE over {'+'.join(names) or '?'}", {})[stage] = data.pop("ChatCORE")
            for metric in METRICS[1:] + [n for n in names if n not in METRICS]:
                if metric in data:
                    table.setdefault(metric, {})[stage] = data[metric]
        return table

    def generate(self, gpu_hour_rate=DEFAULT_GPU_HOUR_RATE):
        """Assemble report.md (and a PNG of each stage's curves) in the report directory; returns its path."""
        if dist_info()[0] != 0:   # only rank 0 writes
            return None
        os.makedirs(self.dir, exist_ok=True)
        info = self.run_info()
        system = info["system"] if info else system_info()
        out = ["# nanochat report card", "", f"generated: {_now()}"]
        if info:
            out.append(f"run started: {info['start_time']}")
        out += ["", "## Environment", *_environment_lines(system), ""]

        # ---- summary table, time and cost
        table = self.summary()
        out += ["## Summary", "", "| metric | " + " | ".join(s.upper() for s in STAGES) + " |",
                "|---|" + "---|" * len(STAGES)]
        for metric in SUMMARY_ROWS + [m for m in table if m not in SUMMARY_ROWS]:
            cells = [table.get(metric, {}).get(stage, "-") for stage in STAGES]
            cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in cells]
            out.append(f"| {metric} | " + " | ".join(cells) + " |")
        out.append("")
        out += self._leaderboard() + self._time_and_cost(info, system, gpu_hour_rate) + [""]

        # ---- every section, with its curves
        sections = self.sections()
        sections += sorted({c["section"] for c in self.curves()} - set(sections))  # curves of an unfinished stage
        for section in sections:
            md_path = os.path.join(self.dir, f"{slugify(section)}.md")
            if os.path.exists(md_path):
                with open(md_path) as f:
                    out.append(f.read().rstrip("\n"))
            else:
                out.append(f"## {section}\n\n(no summary logged: the stage did not finish)")
            png = self._plot(section)
            if png:
                out += ["", f"![{section} curves]({png})"]
            out.append("")
        path = os.path.join(self.dir, "report.md")
        atomic_write_text(path, "\n".join(out).rstrip("\n") + "\n")
        return path

    # ---- helpers of generate

    def _leaderboard(self):
        """base_train's total_training_time (its step clock: evaluation excluded) and base_eval's CORE vs GPT-2's."""
        seconds = (self.read("Base model training") or {}).get("total_training_time")
        if seconds is None:
            return []
        core = (self.read("Base model evaluation") or {}).get("core")
        verdict = "no CORE measured" if core is None else \
            f"CORE {core:.4f}, {'beats' if core > GPT2_CORE else 'does not beat'} GPT-2's {GPT2_CORE}"
        return [f"Leaderboard: base training {format_duration(seconds)} (training steps only), {verdict}"]

    def _time_and_cost(self, info, system, gpu_hour_rate):
        if info:
            seconds, since = time.time() - info["start_epoch"], "since the run started (`scripts.report reset`)"
        else:
            stamps = [self._load(f"{slugify(s)}.json")["timestamp"] for s in self.sections()]
            if not stamps:
                return ["Total wall-clock time: unknown (no run start recorded and no sections)"]
            first = min(stamps)
            seconds = time.time() - time.mktime(time.strptime(first, TIME_FORMAT))
            since = f"since the first section ({first}); no run start was recorded with `scripts.report reset`"
        gpus = len(system["gpus"])
        lines = [f"Total wall-clock time: {format_duration(seconds)} {since}"]
        if gpus:
            lines.append(f"Estimated cost: {gpus} GPU{'s' if gpus > 1 else ''} x {seconds / 3600:.2f} h x "
                         f"${gpu_hour_rate:.2f}/GPU-hour = ${gpus * seconds / 3600 * gpu_hour_rate:,.2f} "
                         "(an estimate from wall-clock time, not a bill)")
        else:
            lines.append("Estimated cost: $0.00 (a CPU run: no GPU-hours; an estimate, not a bill)")
        plan = self._load(PLAN)
        if plan:
            hours, cost, hw = plan["total"]["hours"], plan["total"]["cost"], plan["hardware"]
            lines.append(f"The plan's estimate: {'?' if hours is None else f'{hours:.2f} h'} of training and eval "
                         f"compute, {'?' if cost is None else f'${cost:,.2f}'}, on {hw['count']} x {hw['name']} at "
                         f"{plan['mfu']:.0%} MFU (FLOPs / peak: no setup, data or tokenizer time)")
        return lines

    def _plot(self, section):
        """Write <slug>-curves.png with one panel per curve of the section; returns its file name or None."""
        curves = self.curves(section)
        if not curves:
            return None
        from matplotlib.figure import Figure  # no pyplot: no global figure state, renders with Agg
        fig = Figure(figsize=(5 * len(curves), 3.6), layout="constrained")
        for ax, curve in zip(fig.subplots(1, len(curves), squeeze=False)[0], curves):
            ax.plot(curve["steps"], curve["values"], marker="." if len(curve["steps"]) < 50 else None)
            ax.set_title(curve["name"])
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        fig.suptitle(section)
        name = f"{slugify(section)}-curves.png"
        with atomic_path(os.path.join(self.dir, name)) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        return name


def get_report(base_dir=None):
    return Report(os.path.join(base_dir or get_base_dir(), "report"))
