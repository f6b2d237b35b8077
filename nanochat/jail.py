"""The jail that execution.py runs model-written programs in: bubblewrap (`bwrap`, Debian `bubblewrap`) puts each one in
fresh user, pid, net, mount, ipc and uts namespaces, with a read-only view of only the interpreter and a size-limited
tmpfs as its scratch. Not here: cgroups (limits stay per-process rlimits), seccomp filters, other sandboxes.
"""

import functools
import os
import shutil
import subprocess
import sys

SCRATCH = "/tmp"  # the jail's private tmpfs, its cwd, HOME and TMPDIR
PYTHON = os.path.realpath(sys._base_executable)  # not a venv's python: the jailed program needs only the stdlib
MODE_ENV = "NANOCHAT_JAIL"  # auto (default) | require | off: see execution._use_jail


def jail_argv(command, scratch_mb, ro_paths=()):
    """bwrap's argv to run `command` jailed, seeing read-only the system's libraries, the interpreter and `ro_paths`
    (each a (host_path, jail_path) pair)."""
    mounts = []
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64"):  # merged-/usr systems have symlinks here
        if os.path.islink(top):
            mounts += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            mounts += ["--ro-bind", top, top]
    if not sys.base_prefix.startswith("/usr/"):  # pyenv, conda, uv: the interpreter lives elsewhere
        mounts += ["--ro-bind", sys.base_prefix, sys.base_prefix]
    for host, inside in ro_paths:
        mounts += ["--ro-bind", host, inside]
    return [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all", "--unshare-user", "--disable-userns",  # no network at all: a new netns has only its own lo
        "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL", "--hostname", "sandbox",
        "--die-with-parent",  # when we kill bwrap, its pid 1 dies and the kernel kills the whole pid namespace,
        "--new-session",      # daemons that forked and called setsid included; new-session stops TIOCSTI on our tty
        *mounts, "--proc", "/proc", "--dev", "/dev",
        "--size", str(scratch_mb * 1024 * 1024), "--tmpfs", SCRATCH, "--chdir", SCRATCH,
        "--remount-ro", "/",  # bwrap's own root is a writable tmpfs of no fixed size: only SCRATCH stays writable
        "--", *command,
    ]


@functools.cache
def jail_problem():
    """None when the jail starts here, else why not (no bwrap, user namespaces disabled, ...). Probed once."""
    if sys.platform != "linux":
        return f"namespaces are Linux-only (this is {sys.platform})"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    try:
        probe = subprocess.run(jail_argv([PYTHON, "-I", "-c", "pass"], scratch_mb=1), capture_output=True,
                               text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap could not run: {e}"
    if probe.returncode != 0:
        return f"bwrap failed: {probe.stderr.strip() or f'exit status {probe.returncode}'}"
    return None
