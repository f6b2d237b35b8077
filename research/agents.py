"""
The agents of research/autoresearch.py (a shell command, an OpenAI-compatible endpoint, replayed patches),
each proposing one edit per experiment, and the process and git helpers they share with the loop.
Deliberately not here: running, judging or keeping a candidate (autoresearch.py), and any sandboxing.
"""

import contextlib
import glob
import json
import os
import re
import shlex
import signal
import subprocess
import time
import urllib.request

KILL_GRACE = 5.0      # seconds between SIGTERM and SIGKILL for a run past its time
# Process groups of runs in flight, killed if the harness is interrupted. Held here, not in autoresearch.py:
# under `python -m research.autoresearch` an import of that file would load a second copy with its own set.
ACTIVE_GROUPS = set()


class Reject(Exception):
    """The agent produced no usable candidate; logged as `reject`, nothing runs."""


# -----------------------------------------------------------------------------
# processes and git

def signal_group(pgid, sig):
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pgid, sig)


def run_group(cmd, cwd, env, timeout, log_path):
    """Run a shell line in its own process group, output to log_path. Returns (exit code, seconds, peak RSS
    in MiB of its largest process, timed out). Past the timeout the whole group gets SIGTERM, then SIGKILL;
    whatever of the group is still alive when the command ends is killed too."""
    t0 = time.time()
    with open(log_path, "ab") as log:   # appended: a run is its command, then its evaluation
        proc = subprocess.Popen(cmd, shell=True, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    ACTIVE_GROUPS.add(proc.pid)
    timed_out, deadline = False, t0 + timeout
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                signal_group(proc.pid, signal.SIGKILL if timed_out else signal.SIGTERM)
                timed_out, deadline = True, time.time() + KILL_GRACE
            time.sleep(0.05)
    finally:
        signal_group(proc.pid, signal.SIGKILL)
        ACTIVE_GROUPS.discard(proc.pid)
    # reaped by wait4 (which also gives the group's RSS), so the exit code comes from its status
    return os.waitstatus_to_exitcode(status), time.time() - t0, usage.ru_maxrss / 1024, timed_out


def detect_gpus(env):
    """One entry per GPU for --parallel: CUDA_VISIBLE_DEVICES when set, else every GPU torch sees; [None] on CPU."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        import torch  # only here: the harness itself never needs it
        visible = ",".join(str(i) for i in range(torch.cuda.device_count()))
    return [g.strip() for g in visible.split(",") if g.strip()] or [None]


def git(cwd, *args, strip=True):
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {r.stderr.strip()}")
    return r.stdout.strip() if strip else r.stdout


def git_ok(cwd, *args, stdin=None):
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, input=stdin)
    return r.returncode == 0, (r.stderr or r.stdout).strip()


def tail(path, n=3, width=300):
    lines = [ln.strip() for ln in open(path, errors="replace").read().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[-width:]


# -----------------------------------------------------------------------------
# agents

class Agent:
    """propose(worktree, prompt path, exp, env, log path) leaves its edits in the worktree and returns a
    one-line description, or raises Reject."""

    def has(self, exp):
        return True  # whether there is an experiment number `exp` to propose (replay runs out)


class CommandAgent(Agent):
    """Any non-interactive coding agent: the prompt path is in $AUTORESEARCH_PROMPT and replaces {prompt};
    it may write a one-line description to $AUTORESEARCH_DESCRIPTION (else its last output line is used)."""

    def __init__(self, command, timeout):
        self.command, self.timeout = command, timeout

    def propose(self, wt, prompt, exp, env, log):
        desc_path = prompt.removesuffix(".md") + ".description"
        env = dict(env, AUTORESEARCH_PROMPT=prompt, AUTORESEARCH_DESCRIPTION=desc_path)
        rc, _, _, timed_out = run_group(self.command.replace("{prompt}", shlex.quote(prompt)), wt, env,
                                        self.timeout, log)
        if timed_out:
            raise Reject(f"agent ran past --agent-timeout {self.timeout:g}s")
        if rc != 0:
            raise Reject(f"agent exited with {rc}: {tail(log)}")
        described = open(desc_path).read().strip() if os.path.exists(desc_path) else ""
        return described.splitlines()[0] if described else tail(log, n=1, width=120)


class OpenAIAgent(Agent):
    """Posts the prompt plus the editable files to an OpenAI-compatible /chat/completions and applies the
    unified diff in the reply with `git apply`."""

    FORMAT = ("\n\n## Reply format\nFirst line: `DESCRIPTION: <one line saying what you changed>`. Then ONE unified "
              "diff against the files below, paths relative to the repo root (a/path b/path), in a ```diff block.\n")

    def __init__(self, model, api_base, api_key, timeout, editable):
        base = api_base.rstrip("/")
        self.url = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        self.model, self.api_key, self.timeout, self.editable = model, api_key, timeout, editable

    def propose(self, wt, prompt, exp, env, log):
        files = sorted({p for g in self.editable for p in glob.glob(g, root_dir=wt)
                        if os.path.isfile(os.path.join(wt, p))})
        text = open(prompt).read() + self.FORMAT + "\n## Files you may edit\n" + "".join(
            f"\n### {p}\n```\n{open(os.path.join(wt, p), errors='replace').read()}```\n" for p in files)
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": text}]}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            req = urllib.request.Request(self.url, data=body, headers=headers)
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                reply = json.loads(r.read())["choices"][0]["message"]["content"]
        except Exception as e:  # a dead server or a malformed answer: one rejected attempt, not the end of the run
            raise Reject(f"request to {self.url} failed: {type(e).__name__}: {e}") from None
        with open(log, "a") as f:
            f.write(reply)
        diff = extract_diff(reply)
        if not diff:
            raise Reject("the reply holds no unified diff")
        ok, err = git_ok(wt, "apply", "--recount", "-", stdin=diff)
        if not ok and not git_ok(wt, "apply", "--recount", "-p0", "-", stdin=diff)[0]:  # paths without a/ b/
            raise Reject(f"git apply failed: {err[:200]}")
        m = re.search(r"^\W*DESCRIPTION:\s*(.+)$", reply, re.M)
        return m.group(1).strip() if m else "openai edit"


def extract_diff(reply):
    """The unified diff in a model's reply: a fenced block holding one, else everything from its first header."""
    for block in re.findall(r"```[\w-]*\n(.*?)```", reply, re.S):
        if re.search(r"^(diff --git|--- )", block, re.M):
            return block if block.endswith("\n") else block + "\n"
    m = re.search(r"^(diff --git|--- )", reply, re.M)
    return reply[m.start():].rstrip() + "\n" if m else ""


class ReplayAgent(Agent):
    """Applies DIR/*.patch and *.diff in sorted order, one per experiment (tests, reproducing a run)."""

    def __init__(self, folder):
        self.patches = sorted(glob.glob(os.path.join(folder, "*.patch")) + glob.glob(os.path.join(folder, "*.diff")))
        if not self.patches:
            raise ValueError(f"replay: no *.patch or *.diff files in {folder}")

    def has(self, exp):
        return exp <= len(self.patches)

    def propose(self, wt, prompt, exp, env, log):
        path = self.patches[exp - 1]
        ok, err = git_ok(wt, "apply", "--recount", os.path.abspath(path))
        if not ok:
            raise Reject(f"{os.path.basename(path)} does not apply: {err[:200]}")
        return patch_description(path)


def patch_description(path):
    """A patch's Subject: line (git format-patch), else its first line when that is not part of the diff."""
    lines = open(path, errors="replace").read().splitlines()
    for ln in lines:
        if ln.startswith("Subject:"):
            return re.sub(r"^Subject:\s*(\[[^]]*\]\s*)?", "", ln)
    if lines and lines[0].strip() and not re.match(r"(diff --git|--- |From )", lines[0]):
        return lines[0].strip()
    return os.path.splitext(os.path.basename(path))[0]


def make_agent(spec, api_base, timeout, stage):
    if spec.startswith("replay:"):
        return ReplayAgent(spec.removeprefix("replay:"))
    if spec.startswith("openai:"):
        return OpenAIAgent(spec.removeprefix("openai:"), api_base, os.environ.get("OPENAI_API_KEY", ""), timeout,
                           stage.editable)
    return CommandAgent(spec, timeout)
