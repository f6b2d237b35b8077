"""Run model-written Python away from the host: HumanEval solutions (`execute_code`) and the chat model's calculator
tool (`eval_calculator`). Each program gets a fresh `python -I` in its own session, a scratch directory, an empty
environment, rlimits and an in-process guard, all inside the jail of nanochat/jail.py (namespaces: no network, no
host files) where bubblewrap can start; without it only the guard remains, which code that undoes it (ctypes,
closure cells) gets past. A program passes only if it ran to its last line (docs/SANDBOX.md).
Deliberately not here: a pool of parallel runs (callers use threads), Windows, other languages.
"""

import ast
import contextlib
import json
import math
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass


@dataclass
class ExecutionResult:
    status: str          # "pass" | "fail" | "timeout" | "memory" (memory limit exceeded) | "output_limit"
    stdout: str
    stderr: str
    error: str | None    # "ValueError: boom", "timed out after 5.0 s", ...; None when status is "pass"

    @property
    def success(self) -> bool:
        return self.status == "pass"


_MIN_MEMORY_MB = 64                  # the child peaks at ~17 MB of address space before the script starts
_FILE_SIZE_LIMIT = 64 * 1024 * 1024  # RLIMIT_FSIZE: the largest file the child may write, in bytes
_WARNED = set()                      # the reasons for running unjailed already warned about: each once


def execute_code(code: str, timeout: float = 5.0, max_memory_mb: int = 512, max_output_bytes: int = 1_000_000,
                 jail: bool | None = None) -> ExecutionResult:
    """Run `code` as a script in a sandboxed process; "pass" only if it ran to its last line. `error` holds an
    uncaught exception, `stderr` its traceback; stdout+stderr together are cut at `max_output_bytes` (status
    "output_limit"). `jail`: True requires the jail, False runs guarded only, None follows NANOCHAT_JAIL."""
    assert isinstance(code, str) and timeout > 0 and math.isfinite(timeout), (type(code), timeout)
    assert max_memory_mb >= _MIN_MEMORY_MB and max_output_bytes >= 1, (max_memory_mb, max_output_bytes)
    jailed = _use_jail(jail)
    # The child proves it reached the end by echoing a secret it reads from stdin before the program starts: an
    # exit with status 0 (SystemExit(0), os._exit(0)) before the tests ran is then a fail, not a pass.
    nonce = os.urandom(16).hex()
    with tempfile.TemporaryDirectory(prefix="nanochat_sandbox_", ignore_cleanup_errors=True) as scratch:
        scratch = os.path.realpath(scratch)
        with open(os.path.join(scratch, "solution.py"), "w", encoding="utf-8") as f:
            f.write(code)
        # A private pipe on which the child reports the exception that ended it ("ValueError: boom"). Parsing
        # the last line of stderr instead would break on multi-line messages and on output the script prints.
        status_read, status_write = os.pipe()
        with open(status_read, "rb", buffering=0):  # closes status_read however we leave
            try:
                proc = _spawn_child("script", scratch, max_memory_mb, cpu_s=math.ceil(timeout) + 1, jailed=jailed,
                                    stdin=subprocess.PIPE, stderr=subprocess.PIPE, status_fd=status_write)
            finally:
                os.close(status_write)  # the child holds its own copy; ours must go or EOF would never come
            with proc:  # on leaving: closes the child's pipes and waits for it
                try:
                    with contextlib.suppress(OSError):  # the child may already be gone
                        proc.stdin.write(nonce.encode() + b"\n")
                    proc.stdin.close()
                    stdout, stderr, status, reason = _collect(proc, status_read, time.monotonic() + timeout,
                                                              max_output_bytes)
                finally:
                    _kill_group(proc.pid)
    stdout = stdout[:max_output_bytes]
    stderr = stderr[:max_output_bytes - len(stdout)]
    status_name, error = _classify(proc.returncode, reason, status.decode("utf-8", "replace"), nonce,
                                   timeout, max_memory_mb, max_output_bytes)
    return ExecutionResult(status_name, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"), error)


def _use_jail(jail):
    """`jail` if given, else NANOCHAT_JAIL: "off" (guard only), "require" (fail without the jail), or by default
    the jail where it starts and the guard, with a loud warning once, where it does not."""
    from nanochat import jail as _jail  # not at the top: the child loads this file without the nanochat package
    mode = {None: os.environ.get(_jail.MODE_ENV, "auto"), True: "require", False: "off"}[jail]
    if mode not in ("auto", "require", "off"):
        raise ValueError(f"{_jail.MODE_ENV}={mode!r}: use auto, require or off")
    problem = None if mode == "off" else _jail.jail_problem()
    if problem and mode == "require":
        raise RuntimeError(f"model-written code must run in the jail, which cannot start here: {problem} "
                           f"(or set {_jail.MODE_ENV}=off to accept the weaker guard)")
    if problem and problem not in _WARNED:
        _WARNED.add(problem)
        print(f"WARNING: model-written code runs WITHOUT the jail ({problem}): only the in-process guard protects "
              f"this machine. See docs/SANDBOX.md; set NANOCHAT_JAIL=require to refuse instead.", file=sys.stderr)
    return mode != "off" and problem is None


def _spawn_child(mode, scratch, memory_mb, cpu_s, stdin, stderr, status_fd=-1, jailed=False):
    """Start `python -I` running this file in `mode` ("script" or "calculator") in the host dir `scratch`, or,
    jailed, in the jail's tmpfs with a script's `scratch` mounted read-only at /input."""
    from nanochat import jail as _jail
    inside, module = (_jail.SCRATCH, "/nanochat_sandbox.py") if jailed else (scratch, os.path.abspath(__file__))
    source = "/input/solution.py" if jailed else os.path.join(scratch, "solution.py")
    config = json.dumps({"mode": mode, "scratch": inside, "source": source, "memory_bytes": memory_mb * 1024 * 1024,
                         "cpu_s": cpu_s, "status_fd": status_fd})
    # The child runs this very file as its script (not `import nanochat`: -I keeps the repository off sys.path).
    command = [_jail.PYTHON if jailed else sys.executable, "-I", module, config]
    if jailed:
        # The calculator's host scratch is gone once it has started: bwrap may come too late to mount it.
        ro_paths = [(os.path.abspath(__file__), module)] + ([(scratch, "/input")] if mode == "script" else [])
        command = _jail.jail_argv(command, _FILE_SIZE_LIMIT // (1024 * 1024), ro_paths)
    # The environment is built from nothing rather than filtered from ours: a filter has to know every secret's
    # name, an empty start does not. TMPDIR keeps the tempfile module inside the scratch directory.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": inside, "TMPDIR": inside}
    return subprocess.Popen(
        command, cwd=scratch, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr,
        pass_fds=() if status_fd < 0 else (status_fd,),
        start_new_session=True,  # own session and process group: one killpg reaches everything it forks
    )


def _kill_group(pgid):
    # Linux delivers a group signal atomically with respect to fork: one call also stops a fork bomb.
    with contextlib.suppress(ProcessLookupError, PermissionError):  # nobody left in the group
        os.killpg(pgid, signal.SIGKILL)


def _collect(proc, status_fd, deadline, max_output_bytes):
    """(stdout, stderr, status, reason): read the three pipes until they close; reason None, "timeout" or
    "output_limit"."""
    buffers = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray(), status_fd: bytearray()}
    reason = None
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map() and reason is None:
            if proc.poll() is not None:
                # The script is done, but anything it forked would hold our pipes open until the deadline.
                _kill_group(proc.pid)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = "timeout"
                break
            for key, _ in selector.select(min(remaining, 0.1)):  # 0.1 s: how often we check for the exit above
                chunk = os.read(key.fd, 64 * 1024)
                if not chunk:
                    selector.unregister(key.fd)
                buffers[key.fd] += chunk
            # The status pipe counts too: otherwise a script that finds it could fill our memory through it.
            if sum(len(b) for b in buffers.values()) > max_output_bytes:
                reason = "output_limit"
    return bytes(buffers[proc.stdout.fileno()]), bytes(buffers[proc.stderr.fileno()]), buffers[status_fd], reason


def _classify(returncode, reason, status, nonce, timeout, max_memory_mb, max_output_bytes):
    """(status, error) for an ExecutionResult from how the child ended."""
    if reason == "timeout":
        return "timeout", f"timed out after {timeout} s (wall clock)"
    if reason == "output_limit":
        return "output_limit", f"output exceeded {max_output_bytes} bytes"
    if returncode == 0:
        return ("pass", None) if status == f"end {nonce}" else ("fail", "exited (status 0) before its last line")
    if status.startswith("MemoryError"):
        return "memory", f"{status} (memory limit {max_memory_mb} MB)"
    if returncode == -signal.SIGXCPU:
        return "timeout", "CPU time limit exceeded"
    if returncode < 0:
        return "fail", f"killed by {signal.Signals(-returncode).name}"
    return "fail", status or f"exit code {returncode}"


# -----------------------------------------------------------------------------
# The calculator tool

_CALC_MAX_CHARS = 256     # a tool call is a short expression; anything longer is not one
_CALC_MAX_EXPONENT = 100  # ** only with a literal exponent of at most this size: 9**9**9 is refused unparsed
_CALC_MEMORY_MB = 256
_CALC_CPU_S = 600         # total for the worker's life: the per-call wall-clock timeout is the real limit,
                          # and a worker that does run out is just restarted on the next call
_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # the comma in "1,234" but not in "1,2" or "1,2345"


def eval_calculator(expr: str, timeout: float = 1.0) -> str | None:
    """The chat model's calculator: "2 + 3*4" -> "14", "1,234 / 2" -> "617", '"strawberry".count("r")' -> "3".
    Only numbers, + - * / // % ** (literal exponent up to 100), unary +/-, parentheses and "str".count("s") are
    allowed; anything else, errors (1/0), non-real results and timeouts give None."""
    assert isinstance(expr, str) and timeout > 0, (expr, timeout)
    expr = expr.strip()
    if not expr or len(expr) > _CALC_MAX_CHARS or "\n" in expr:
        return None
    if "'" not in expr and '"' not in expr:  # inside string literals a comma is data, e.g. "a,b".count(",")
        expr = _THOUSANDS_COMMA.sub("", expr)  # "1,234" -> "1234"
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError):  # ValueError: e.g. a null byte in the text
        return None
    return _calculator.evaluate(expr, timeout) if _is_number(tree.body) else None


def _is_number(node):
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float)  # not bool, str, bytes, complex, None, ...
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, (ast.UAdd, ast.USub)) and _is_number(node.operand)
    if isinstance(node, ast.BinOp):
        exponent = node.right.operand if isinstance(node.right, ast.UnaryOp) else node.right  # 2 in "3 ** -2"
        if isinstance(node.op, ast.Pow) and not (isinstance(exponent, ast.Constant) and _is_number(exponent)
                                                 and abs(exponent.value) <= _CALC_MAX_EXPONENT):
            return False
        return isinstance(node.op, _ARITHMETIC) and _is_number(node.left) and _is_number(node.right)
    match node:  # '"strawberry".count("r")': a string literal's .count with one string-literal argument
        case ast.Call(func=ast.Attribute(value=ast.Constant(value=str()), attr="count"),
                      args=[ast.Constant(value=str())], keywords=[]):
            return True
    return False


def _format_number(value):
    """The calculator's answer as text, or None when it is not a real, finite number."""
    if type(value) is int:
        return str(value)  # raises ValueError past 4300 digits (Python's int->str guard): fine, that is None
    if type(value) is not float or not math.isfinite(value):
        return None        # complex from (-8) ** 0.5, inf from 1e308 * 10
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}"  # 15 significant digits survive float rounding: 0.1 + 0.2 -> "0.3"


class _CalculatorWorker:
    """One persistent sandboxed process evaluating pre-validated expressions, one JSON line each way (a process per
    call costs ~50 ms, a warm round trip well under 1 ms). Restarted after a timeout or crash; threads share it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._proc = None
        self._owner_pid = None  # after a fork the child must not use (or kill) its parent's worker

    def evaluate(self, source, timeout):
        with self._lock:
            if self._owner_pid != os.getpid() or self._proc.poll() is not None:  # none yet, forked, or it died
                self._stop()
                # The worker never writes files, so its scratch directory may disappear once it has started in it.
                with tempfile.TemporaryDirectory(prefix="nanochat_calc_") as scratch:
                    self._proc = _spawn_child("calculator", os.path.realpath(scratch), _CALC_MEMORY_MB, _CALC_CPU_S,
                                              stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, jailed=_use_jail(None))
                self._owner_pid = os.getpid()
            try:
                self._proc.stdin.write(json.dumps(source).encode() + b"\n")
                self._proc.stdin.flush()
                with selectors.DefaultSelector() as selector:  # waits for the reply with a timeout
                    selector.register(self._proc.stdout, selectors.EVENT_READ)
                    # The worker writes each reply line with one flush: once it is readable, readline does not wait.
                    reply = self._proc.stdout.readline() if selector.select(timeout) else b""
            except OSError:  # BrokenPipeError: the worker died under us
                reply = b""
            if not reply:  # timed out, or crashed (EOF): a fresh worker next time
                self._stop()
                return None
            return json.loads(reply)

    def close(self):
        with self._lock:
            self._stop()

    def _stop(self):
        if self._proc is not None and self._owner_pid == os.getpid():
            _kill_group(self._proc.pid)
            self._proc.wait()
            self._proc.stdin.close()
            self._proc.stdout.close()
        self._proc = self._owner_pid = None


_calculator = _CalculatorWorker()  # holds no process until the first call
close_calculator = _calculator.close  # stops the worker; the next eval_calculator call starts a fresh one


# -----------------------------------------------------------------------------
# Everything below runs only in the sandboxed child (see _spawn_child). Calling it in the parent would cripple
# the parent: the guard is installed on the whole interpreter.

_REFUSED_OS = (
    # spawning and signalling processes
    "fork", "forkpty", "system", "popen", "posix_spawn", "posix_spawnp", "kill", "killpg",
    "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
    "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe",
    # leaving the process group the parent kills, or the scratch directory
    "setsid", "setpgid", "setpgrp", "chdir", "fchdir", "chroot",
    # exiting early (a HumanEval "pass" before the asserts run), changing the environment,
    # making device nodes, changing files through descriptors whose path we never saw
    "_exit", "putenv", "unsetenv", "mknod", "fchmod", "fchown",
)
_SCRATCH_ONLY_OS = ("remove", "unlink", "rmdir", "removedirs", "rename", "renames", "replace", "truncate",
                    "link", "symlink", "chmod", "chown", "lchown")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _child_set_limits(memory_bytes, cpu_s):
    import resource
    limits = [
        (resource.RLIMIT_AS, memory_bytes, memory_bytes),  # allocations past it raise MemoryError
        (resource.RLIMIT_DATA, memory_bytes, memory_bytes),
        (resource.RLIMIT_CPU, cpu_s, cpu_s + 1),           # SIGXCPU at the soft limit, SIGKILL at the hard one
        (resource.RLIMIT_FSIZE, _FILE_SIZE_LIMIT, _FILE_SIZE_LIMIT),  # Python ignores SIGXFSZ: writes fail
        (resource.RLIMIT_CORE, 0, 0),                      # no core files from the kills above
    ]
    for which, soft, hard in limits:
        _, current_hard = resource.getrlimit(which)
        if current_hard != resource.RLIM_INFINITY:  # without root a hard limit can only be lowered
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(which, (soft, hard))


def _child_install_guard(scratch):
    """Replace, in this process, the functions that kill or spawn processes, escape the limits, or change
    files outside `scratch`, with ones that raise PermissionError."""
    import _io
    import _posixsubprocess
    import builtins
    import io
    import posix
    import resource
    import shutil

    def refuse(name):
        def refused(*args, **kwargs):
            raise PermissionError(f"{name} is disabled in the nanochat sandbox")
        return refused

    def check_path(name, path, writing):
        real = os.path.realpath(os.fsdecode(path))
        parts = real.split("/")  # "/proc/123/environ" -> ["", "proc", "123", "environ"]
        if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and parts[2] != str(os.getpid()):
            raise PermissionError(f"{name}({path!r}): other processes' /proc entries are off limits in the sandbox")
        if writing and real != os.devnull and not (real + "/").startswith(scratch + "/"):
            raise PermissionError(f"{name}({path!r}): the sandbox may only change files in its scratch directory")

    def scratch_only(name, fn):
        def guarded(*args, **kwargs):
            if any(k.endswith("dir_fd") and v is not None for k, v in kwargs.items()):
                raise PermissionError(f"{name} with dir_fd is disabled in the nanochat sandbox")
            for value in (*args, *kwargs.values()):
                if isinstance(value, (str, bytes, os.PathLike)):
                    check_path(name, value, writing=True)
            return fn(*args, **kwargs)
        return guarded

    real_open, real_os_open = _io.open, os.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if not isinstance(file, int):  # an int is a descriptor, already checked when it was opened
            check_path("open", file, writing=any(c in mode for c in "wax+"))
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, dir_fd=None, **kwargs):
        if dir_fd is not None:
            raise PermissionError("os.open with dir_fd is disabled in the nanochat sandbox")
        check_path("os.open", path, writing=bool(flags & _WRITE_FLAGS))
        return real_os_open(path, flags, *args, **kwargs)

    for module in (os, posix):  # os re-exports posix's functions: patch both so `import posix` is no way around
        for name in _SCRATCH_ONLY_OS:
            if hasattr(module, name):
                setattr(module, name, scratch_only(f"os.{name}", getattr(module, name)))
        module.open = guarded_os_open
    for module in (builtins, io, _io):  # pathlib, shutil.copy, ... all open files through one of these
        module.open = guarded_open
    refused = [(module, name) for module in (os, posix) for name in _REFUSED_OS] + [
        (subprocess, "Popen"), (_posixsubprocess, "fork_exec"),  # multiprocessing and subprocess end here
        (shutil, "rmtree"), (shutil, "move"), (resource, "setrlimit"), (resource, "prlimit"),
        (signal, "pidfd_send_signal"), (builtins, "exit"), (builtins, "quit"), (sys, "exit")]
    for module, name in refused:
        if hasattr(module, name):
            setattr(module, name, refuse(f"{module.__name__}.{name}"))


def _child_run_script(source, status_fd, nonce):
    """Run `source` like `python solution.py`; write "end <nonce>" to `status_fd` if it ran to its end, else
    "Type: message" for the exception that stopped it."""
    import traceback
    namespace = {"__name__": "__main__", "__file__": "solution.py"}
    try:
        exec(compile(source, "solution.py", "exec"), namespace)
    except SystemExit:
        raise  # `raise SystemExit(n)` exits with n, as in any script (sys.exit itself is disabled)
    except BaseException as e:
        if isinstance(e, MemoryError):  # free what the script built, so there is room to report it
            namespace.clear()
            traceback.clear_frames(e.__traceback__)
        # Status first: it is what the parent needs, and printing a traceback can itself run out of memory.
        os.write(status_fd, traceback.format_exception_only(type(e), e)[-1].strip()[:1000].encode())
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)  # tb_next: hide this function's frame
        raise SystemExit(1) from None
    os.write(status_fd, f"end {nonce}".encode())


if __name__ == "__main__":  # the sandboxed child (see _spawn_child): limits, guard, then the script or the calculator
    config = json.loads(sys.argv[1])
    _child_set_limits(config["memory_bytes"], config["cpu_s"])
    _child_install_guard(config["scratch"])
    if config["mode"] == "script":
        with open(config["source"], encoding="utf-8") as f:
            source = f.read()
        _child_run_script(source, config["status_fd"], nonce=sys.stdin.readline().strip())
    else:  # the calculator: a JSON line out for each JSON-encoded expression in, until stdin closes
        for line in sys.stdin:
            try:
                # Only expressions that eval_calculator checked arrive here; no builtins, just in case.
                answer = _format_number(eval(json.loads(line), {"__builtins__": {}}))
            except Exception:  # ZeroDivisionError, OverflowError, MemoryError, a result too long for str(), ...
                answer = None
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
