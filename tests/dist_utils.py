"""
Helpers for tests that launch real multi-process runs with torchrun (gloo on CPU).

run_torchrun: one node, `--standalone --nproc_per_node=N`.
run_torchrun_two_nodes: `--nnodes=2` on 127.0.0.1, two torchrun launches meeting at a c10d rendezvous,
the way two machines would.
Both run from the repository root with the root on PYTHONPATH (so worker scripts can import nanochat),
OMP_NUM_THREADS=1 (the workers share a couple of cores), and a timeout. They return the
CompletedProcess and leave asserting to the caller; check_ok() turns a failure into a readable message.

Not a launcher for real runs: scripts are launched with torchrun itself, as DESIGN.md says.
"""

import os
import socket
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now (racy, but fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(extra_env):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra_env or {})
    return env


def _torchrun(launcher_args, script_or_module_args):
    # script_or_module_args: ["tests/worker.py", "--flag", ...] or ["-m", "scripts.base_train", "--flag", ...]
    return [sys.executable, "-m", "torch.distributed.run", *launcher_args, *script_or_module_args]


def run_torchrun(script_or_module_args, nproc=2, timeout=120, extra_env=None):
    """Launch `torchrun --standalone --nproc_per_node=nproc ARGS` and wait for it.
    --standalone starts its own rendezvous store on a free port, so parallel launches do not collide."""
    cmd = _torchrun(["--standalone", f"--nproc_per_node={nproc}"], script_or_module_args)
    return subprocess.run(cmd, cwd=REPO_ROOT, env=_env(extra_env), capture_output=True, text=True,
                          timeout=timeout)


def run_torchrun_two_nodes(script_or_module_args, nproc_per_node=1, timeout=120, extra_env=None):
    """Launch two torchrun agents with --nnodes=2 on 127.0.0.1, as two machines would be launched.
    Returns one CompletedProcess whose returncode is the first non-zero of the two (0 if both
    succeeded) and whose stdout/stderr hold both launches' output, node by node."""
    endpoint = f"127.0.0.1:{free_port()}"
    launcher = ["--nnodes=2", f"--nproc_per_node={nproc_per_node}", "--rdzv_backend=c10d",
                f"--rdzv_endpoint={endpoint}", f"--rdzv_id=test-{os.getpid()}-{endpoint}"]
    cmd = _torchrun(launcher, script_or_module_args)
    env = _env(extra_env)
    procs = [subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    deadline = time.monotonic() + timeout
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        for p in procs:
            p.communicate()
        raise
    codes = [p.returncode for p in procs]
    returncode = next((c for c in codes if c != 0), 0)
    stdout = "".join(f"--- node launch {i} ---\n{o}" for i, (o, _) in enumerate(outs))
    stderr = "".join(f"--- node launch {i} ---\n{e}" for i, (_, e) in enumerate(outs))
    return subprocess.CompletedProcess(cmd, returncode, stdout, stderr)


def check_ok(proc):
    """Assert a launch succeeded, showing the tail of its output when it did not."""
    assert proc.returncode == 0, (f"torchrun exited with {proc.returncode}\n"
                                  f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
