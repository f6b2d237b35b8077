"""The jail (nanochat/jail.py) against hostile programs, and HumanEval scoring that an early exit cannot fool.

Every case checks the host afterwards (a planted file unchanged, a listener that saw nobody, a secret absent, no
process left), not only the status string. The programs use the routes the in-process guard cannot stop (ctypes,
io.FileIO, raw forks), so what holds here is the kernel's isolation. Where bubblewrap cannot start, everything
here skips with the reason.
"""

import hashlib
import os
import socket
import subprocess
import sys
import time

import psutil
import pytest

from nanochat.execution import execute_code
from nanochat.jail import PYTHON, jail_argv, jail_problem
from tasks.humaneval import HumanEval

pytestmark = pytest.mark.skipif(jail_problem() is not None, reason=f"the jail cannot start here: {jail_problem()}")

LIBC = "import ctypes, ctypes.util\nlibc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)\n"


def jailed(code, timeout=10.0, **kwargs):
    return execute_code(code, timeout=timeout, jail=True, **kwargs)


def sandbox_processes():
    """Live host processes running a sandboxed script (the calculator's worker is another mode), except those of
    another test run on the same machine. One that escaped its namespace has no pytest above it: it counts."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if '"mode": "script"' not in " ".join(p.info["cmdline"] or []) or p.status() == psutil.STATUS_ZOMBIE:
                continue
            if not any(a.pid != os.getpid() and "pytest" in " ".join(a.cmdline()) for a in p.parents()):
                found.append(p.pid)
        except psutil.Error:  # exited while we looked
            pass
    return found


@pytest.fixture(autouse=True)
def nothing_survives():
    yield
    deadline = time.monotonic() + 3
    while sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_processes() == []


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_host_files_survive_every_route(tmp_path):
    """A host directory mounted read-only (as the interpreter is) cannot be changed by any route; one not mounted
    cannot even be seen. The program runs without the Python guard, so only the kernel stops it."""
    shown, hidden = tmp_path / "shown", tmp_path / "hidden"
    shown.mkdir()
    hidden.mkdir()
    for d in (shown, hidden):
        (d / "victim.txt").write_text("precious\n")
    before = {p: digest(p) for p in (shown / "victim.txt", hidden / "victim.txt")}
    attack = LIBC + f"""
import io, os, shutil
targets = ['/shown/victim.txt', {str(hidden / 'victim.txt')!r}]
routes = {{
    'os.remove': os.remove, 'os.unlink': os.unlink, 'shutil.rmtree': lambda p: shutil.rmtree(os.path.dirname(p)),
    'os.rename': lambda p: os.rename(p, p + '.x'), 'open-w': lambda p: open(p, 'w').write('gone'),
    'io.FileIO': lambda p: io.FileIO(p, 'w').write(b'gone'), 'os.truncate': lambda p: os.truncate(p, 0),
    'os.chmod': lambda p: os.chmod(p, 0),
    'libc.unlink': lambda p: libc.unlink(p.encode()) == 0 or 1 / 0,
    'libc.open': lambda p: libc.open(p.encode(), os.O_WRONLY | os.O_TRUNC) >= 0 or 1 / 0,
}}
for target in targets:
    for name, route in routes.items():
        try:
            route(target)
            print('CHANGED', name, target)
        except Exception:
            pass
for path in ['/usr/evil', '/evil', '/shown/new', '/proc/evil', {str(tmp_path / 'new')!r}]:
    try:
        open(path, 'w').write('x')
        print('WROTE', path)
    except Exception:
        pass
print('sees hidden:', os.path.exists({str(hidden)!r}))
"""
    argv = jail_argv([PYTHON, "-I", "-c", attack], scratch_mb=4, ro_paths=[(str(shown), "/shown")])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "CHANGED" not in out.stdout and "WROTE" not in out.stdout
    assert "sees hidden: False" in out.stdout
    assert {p: digest(p) for p in before} == before
    assert sorted(os.listdir(tmp_path)) == ["hidden", "shown"] and os.listdir(shown) == ["victim.txt"]


def test_scratch_is_private_writable_and_size_limited():
    r = jailed("import os\nopen('a.txt', 'w').write('hi')\nprint(os.getcwd(), open('a.txt').read())\ntry:\n"
               "    open('big', 'wb').write(b'x' * (200 << 20))\nexcept OSError as e:\n    print('full', e.errno)")
    assert r.status == "pass", r.error
    assert r.stdout.split()[:2] == ["/tmp", "hi"]
    assert "full" in r.stdout  # the tmpfs is smaller than 200 MB (or the file-size rlimit stops it first)


def test_secrets_stay_outside(tmp_path, monkeypatch):
    secret = "nanochat-secret-" + os.urandom(8).hex()
    monkeypatch.setenv("NANOCHAT_TEST_SECRET", secret)
    (tmp_path / "key.txt").write_text(secret)
    code = LIBC + f"""
import glob, os
seen = [repr(dict(os.environ))]
for path in glob.glob('/proc/*/environ') + glob.glob('/proc/*/cmdline') + [{str(tmp_path / 'key.txt')!r},
             '/proc/1/root/' + {str(tmp_path / 'key.txt')!r}, '/etc/environment']:
    try:
        seen.append(open(path, 'rb').read().decode('latin-1'))
    except Exception as e:
        seen.append(type(e).__name__)
print('\\n'.join(seen))
"""
    r = jailed(code)
    assert r.status == "pass", r.error
    assert secret not in r.stdout + r.stderr
    assert "NANOCHAT_TEST_SECRET" not in r.stdout


def test_no_network_not_even_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        port = server.getsockname()[1]
        code = f"""
import socket
for address in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('8.8.8.8', 443)]:
    try:
        socket.create_connection(address, timeout=1).close()
        print('CONNECTED', address)
    except OSError as e:
        print('refused', address, e.errno)
"""
        r = jailed(code)
        with pytest.raises(TimeoutError):
            server.accept()  # nobody came
    assert r.status == "pass", r.error
    assert "CONNECTED" not in r.stdout and r.stdout.count("refused") == 3


def test_cannot_kill_host_processes():
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        code = LIBC + f"""
import os, signal
for pid in [{os.getpid()}, {bystander.pid}, os.getppid(), 1, -1]:
    print(pid, libc.kill(pid, signal.SIGKILL), ctypes.get_errno())
    try:
        os.kill(pid, signal.SIGKILL)  # the guard refuses this one; libc's above reaches the kernel
    except Exception as e:
        print(type(e).__name__)
"""
        r = jailed(code)
        time.sleep(0.2)
        assert bystander.poll() is None  # still alive, and so are we
    finally:
        bystander.kill()
        bystander.wait()
    assert r.status in ("pass", "fail")


def test_setsid_daemon_dies_with_the_run():
    code = LIBC + """
import time
if libc.fork() == 0:          # os.fork is refused by the guard; libc's is not
    libc.setsid()
    if libc.fork() == 0:
        while True:
            time.sleep(0.1)
    libc._exit(0)
time.sleep(0.5)
print('parent done')
"""
    r = jailed(code)
    assert r.status == "pass" and "parent done" in r.stdout  # the fixture checks that the daemon is gone


@pytest.mark.parametrize("hog, status", [
    ("while True:\n    pass", "timeout"),
    ("x = bytearray(1 << 34)", "memory"),
    ("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass", "timeout"),
    ("print('x' * 1000, end='', flush=True)\nwhile True:\n    print('y' * 65536, end='')", "output_limit"),
    ("import ctypes\nctypes.string_at(0)", "fail"),  # a segfault
])
def test_exhaustion_is_contained(hog, status):
    r = jailed(hog, timeout=2.0)
    assert r.status == status, (r.error, r.stderr[-500:])


def test_thread_and_process_floods_are_cleaned_up():
    threads = "import threading, time\nn = 0\ntry:\n    while True:\n" \
              "        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n        n += 1\n" \
              "except Exception as e:\n    print('stopped after', n)"
    r = jailed(threads, timeout=5.0)
    assert r.status in ("pass", "fail", "timeout", "memory")
    forks = LIBC + "import time\nfor _ in range(200):\n    if libc.fork() == 0:\n        time.sleep(60)\n" \
                   "        libc._exit(0)\ntime.sleep(60)"
    r = jailed(forks, timeout=2.0)
    assert r.status == "timeout"  # and the fixture checks that none of the 200 is left


# -----------------------------------------------------------------------------
# Scoring: a pass means the program ran to its last line

@pytest.mark.parametrize("exit_code", ["raise SystemExit(0)", "import os\n    os._exit(0)",
                                       "import sys\n    sys.exit()", "import ctypes\n    ctypes.CDLL(None)._exit(0)"])
@pytest.mark.parametrize("jail", [True, False])
def test_early_exit_scores_zero(exit_code, jail, monkeypatch):
    monkeypatch.setenv("NANOCHAT_JAIL", "require" if jail else "off")  # HumanEval.evaluate follows it
    human = HumanEval(stop=1)
    conversation = human[0]
    cheat = f"    {exit_code}\n"  # the body of the first problem's function, run when the tests call it
    assert human.evaluate(conversation, cheat) == 0.0
    top_level = f"def {conversation['entry_point']}(*args):\n    return None\n{exit_code.replace('    ', '')}\n"
    assert execute_code(top_level, jail=jail).status != "pass"


def test_all_humaneval_canonical_solutions_pass_and_empty_bodies_fail():
    human = HumanEval()
    assert len(human) == 164
    rows = {r["task_id"]: r for r in human.rows}
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        right = list(pool.map(lambda c: human.evaluate(c, rows[c["task_id"]]["canonical_solution"]), human))
        wrong = list(pool.map(lambda c: human.evaluate(c, "    pass\n"), human))
    assert sum(right) == 164
    assert sum(wrong) == 0


def test_calculator_worker_runs_in_the_jail(monkeypatch):
    from nanochat.execution import close_calculator, eval_calculator
    monkeypatch.setenv("NANOCHAT_JAIL", "require")
    close_calculator()
    try:
        assert eval_calculator("12*34 + 5") == "413"
        workers = psutil.Process().children()
        assert len(workers) == 1 and os.path.basename(workers[0].cmdline()[0]) == "bwrap"
    finally:
        close_calculator()


@pytest.fixture
def no_bwrap_on_path(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # as on a machine without bubblewrap
    jail_problem.cache_clear()
    yield
    monkeypatch.undo()
    jail_problem.cache_clear()


def test_require_refuses_to_run_unjailed(monkeypatch, no_bwrap_on_path):
    with pytest.raises(RuntimeError, match="cannot start here: bubblewrap is not installed"):
        execute_code("print(1)", jail=True)
    monkeypatch.setenv("NANOCHAT_JAIL", "require")
    with pytest.raises(RuntimeError, match="NANOCHAT_JAIL=off"):
        execute_code("print(1)")
    monkeypatch.setenv("NANOCHAT_JAIL", "auto")
    r = execute_code("print(1)")  # falls back to the guard, with a warning
    assert r.status == "pass" and r.stdout.startswith("1")
