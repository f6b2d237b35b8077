"""nanochat/execution.py: the sandbox against hostile code, and the calculator tool.

Every test checks an effect on the host (a file still there, a process gone, a secret not printed), not just the
status string. An autouse fixture checks after every test that this process was left alone: same cwd, same
environment, no child processes.
"""

import math
import operator
import os
import random
import threading
import time
from fractions import Fraction

import psutil
import pytest

from nanochat.execution import ExecutionResult, close_calculator, eval_calculator, execute_code


@pytest.fixture
def guarded_mode():
    """These tests are about the in-process guard: without the jail, so they hold where it cannot start too
    (tests/test_jail.py covers the jail). Not monkeypatch: host_unharmed must see the same value before and after."""
    previous = os.environ.get("NANOCHAT_JAIL")
    os.environ["NANOCHAT_JAIL"] = "off"
    yield
    if previous is None:
        del os.environ["NANOCHAT_JAIL"]
    else:
        os.environ["NANOCHAT_JAIL"] = previous


@pytest.fixture(autouse=True)
def host_unharmed(guarded_mode):
    def environment():  # pytest itself rewrites PYTEST_CURRENT_TEST around every phase
        return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}

    cwd, env = os.getcwd(), environment()
    yield
    close_calculator()  # the calculator's worker is the one child we keep on purpose
    assert os.getcwd() == cwd
    assert environment() == env
    assert psutil.Process().children(recursive=True) == []


def alive_in_group(pgid, wait_s=3.0):
    """Pids of live (non-zombie) processes in process group `pgid`, after giving SIGKILLed ones time to die."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = []
        for p in psutil.process_iter(["status"]):
            try:
                if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                    alive.append(p.pid)
            except (ProcessLookupError, PermissionError):
                pass  # exited while we looked
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


# -----------------------------------------------------------------------------
# Ordinary programs

def test_passing_program_runs_in_a_scratch_dir_that_is_removed():
    r = execute_code("import os\nprint('hello')\nprint(os.getcwd())")
    assert isinstance(r, ExecutionResult)
    assert r.status == "pass" and r.success and r.error is None
    hello, scratch = r.stdout.splitlines()
    assert hello == "hello"
    assert scratch != os.getcwd() and "nanochat_sandbox_" in scratch
    assert not os.path.exists(scratch)


def test_failing_program_reports_the_exception():
    r = execute_code("x = 1\nraise ValueError('boom\\non two lines')")
    assert r.status == "fail" and not r.success
    assert r.error == "ValueError: boom\non two lines"
    assert 'File "solution.py", line 2' in r.stderr and "raise ValueError" in r.stderr
    r = execute_code("def f(:\n    pass")
    assert r.status == "fail" and r.error.startswith("SyntaxError")
    r = execute_code("input()")  # stdin is closed
    assert r.status == "fail" and r.error.startswith("EOFError")
    r = execute_code("raise SystemExit(3)")
    assert r.status == "fail" and r.error == "exit code 3"


HUMANEVAL_PROMPT = '''
def incr_list(l: list):
    """Return list with elements incremented by 1."""
'''
HUMANEVAL_TEST = '''
def check(candidate):
    assert candidate([]) == []
    assert candidate([3, 2, 1]) == [4, 3, 2]
    assert candidate([5, 2, 5, 2, 3, 3, 9, 0, 123]) == [6, 3, 6, 3, 4, 4, 10, 1, 124]
'''


@pytest.mark.parametrize("completion, status", [
    ("    return [x + 1 for x in l]\n", "pass"),
    ("    return [x + 2 for x in l]\n", "fail"),
    ("    return l\nexit(0)\n", "fail"),              # leaving before the asserts run is not a pass
    ("    return l\nimport sys\nsys.exit(0)\n", "fail"),
    ("    return l\nimport os\nos._exit(0)\n", "fail"),
])
def test_humaneval_style_program(completion, status):
    program = HUMANEVAL_PROMPT + completion + "\n" + HUMANEVAL_TEST + "\ncheck(incr_list)\n"
    r = execute_code(program)
    assert r.status == status, r
    if completion.startswith("    return [x + 2"):
        assert r.error.startswith("AssertionError")


def test_bad_arguments_are_rejected():
    # callers are library code (no user types these): a bad value is a bug, caught by an assert
    bad = [dict(code=b"print(1)"), dict(max_memory_mb=8), dict(max_output_bytes=0)]
    bad += [dict(timeout=t) for t in [0, -1, float("inf"), float("nan")]]
    for kwargs in bad:
        with pytest.raises(AssertionError):
            execute_code(**{"code": "pass", **kwargs})


# -----------------------------------------------------------------------------
# Hostile programs. Each is bounded (6 forks make at most 64 processes; a few GB of memory at most), so that a
# broken sandbox fails its test instead of taking down the machine the tests run on.

@pytest.mark.parametrize("loop", ["while True:\n    pass", "import time\ntime.sleep(1000)"])
def test_timeout_kills_the_process(loop):
    r = execute_code("import os\nprint(os.getpid(), flush=True)\n" + loop, timeout=2.0)
    assert r.status == "timeout" and "timed out" in r.error
    pid = int(r.stdout)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert alive_in_group(pid) == []


@pytest.mark.parametrize("bomb", [
    "import os\nfor _ in range(6):\n    os.fork()",
    "import posix\nfor _ in range(6):\n    posix.fork()",
    "import multiprocessing\nwith multiprocessing.Pool(4) as p:\n    p.map(abs, range(10))",
    "import multiprocessing\nmultiprocessing.set_start_method('spawn')\nmultiprocessing.Process(target=abs).start()",
])
def test_fork_bomb_is_refused(bomb):
    r = execute_code(bomb, timeout=5.0)
    assert r.status == "fail" and r.error.startswith("PermissionError"), r


# A bomb that goes around the guard with a raw libc fork: the process-group kill must still get every process.
RAW_FORKS = """
import ctypes, os, time
libc = ctypes.CDLL(None)
print(os.getpid(), flush=True)
for _ in range(20):
    if libc.fork() == 0:
        while True:
            time.sleep(0.05)
"""


@pytest.mark.parametrize("main_then", ["time.sleep(1000)", "pass"])
def test_processes_forked_around_the_guard_die_with_the_group(main_then):
    r = execute_code(RAW_FORKS + main_then, timeout=3.0)
    # "pass": the script exited at once; its sleepers held our pipes open, yet we did not wait for the timeout.
    assert r.status == ("timeout" if "sleep" in main_then else "pass"), r
    assert alive_in_group(int(r.stdout)) == []


@pytest.mark.parametrize("hog", [
    "x = bytearray(10**10)",
    "x = 'x' * 3 * 10**9",
    "x = []\nfor _ in range(1000):\n    x.append(bytearray(10**7))",
    "def grow():\n    x = [0]\n    while len(x) < 2**28:\n        x = x + x\ngrow()",
])
def test_memory_hog_is_stopped(hog):
    r = execute_code(hog, timeout=20.0, max_memory_mb=256)
    assert r.status == "memory" and r.error.startswith("MemoryError"), r


def test_limits_are_set_and_cannot_be_raised():
    r = execute_code("""
import resource
for name in ["RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_CORE"]:
    print(name, *resource.getrlimit(getattr(resource, name)))
resource.setrlimit(resource.RLIMIT_AS, (-1, -1))
""", timeout=3.0, max_memory_mb=300)
    assert r.stdout.splitlines() == [f"RLIMIT_AS {300 * 2**20} {300 * 2**20}", "RLIMIT_CPU 4 5",
                                     f"RLIMIT_FSIZE {64 * 2**20} {64 * 2**20}", "RLIMIT_CORE 0 0"]
    assert r.status == "fail" and "resource.setrlimit is disabled" in r.error


def test_files_outside_scratch_survive(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "inner.txt").write_text("also precious")
    attacks = {
        "os.remove": f"os.remove({str(victim)!r})",
        "os.unlink": f"os.unlink({str(victim)!r})",
        "pathlib.unlink": f"pathlib.Path({str(victim)!r}).unlink()",
        "shutil.rmtree": f"shutil.rmtree({str(folder)!r})",
        "shutil.move": f"shutil.move({str(victim)!r}, 'stolen.txt')",
        "os.rename in": f"os.rename({str(victim)!r}, 'stolen.txt')",
        "os.rename out": f"open('x', 'w').close(); os.rename('x', {str(victim)!r})",
        "os.rmdir": f"os.rmdir({str(folder)!r})",
        "truncate": f"os.truncate({str(victim)!r}, 0)",
        "open w": f"open({str(victim)!r}, 'w')",
        "open a": f"open({str(victim)!r}, 'a').write('!')",
        "os.open": f"os.open({str(victim)!r}, os.O_WRONLY | os.O_TRUNC)",
        "write_text": f"pathlib.Path({str(victim)!r}).write_text('gone')",
        "via symlink": f"os.symlink({str(victim)!r}, 'link'); open('link', 'w')",
        "via hard link": f"os.link({str(victim)!r}, 'hard'); open('hard', 'w')",
        "chmod": f"os.chmod({str(victim)!r}, 0)",
    }
    lines = ["import os, pathlib, shutil"]
    for name, attack in attacks.items():
        lines += ["try:", f"    {attack}", f"    print('done', {name!r})", "except PermissionError:",
                  f"    print('blocked', {name!r})"]
    r = execute_code("\n".join(lines), timeout=5.0)
    assert r.status == "pass", r
    assert r.stdout.splitlines() == [f"blocked {name}" for name in attacks]
    assert victim.read_text() == "precious" and (folder / "inner.txt").read_text() == "also precious"
    assert os.stat(victim).st_mode & 0o777 != 0


def test_files_inside_scratch_are_fine():
    # The guard must not block the ordinary file work a solution may do in its own directory.
    r = execute_code("""
import os, pathlib, shutil, tempfile
pathlib.Path('a.txt').write_text('hi')
os.rename('a.txt', 'b.txt')
with open('b.txt', 'a') as f:
    f.write('!')
os.makedirs('d/e')
shutil.copy('b.txt', 'd/e/c.txt')
print(open('d/e/c.txt').read())
os.remove('b.txt'); os.remove('d/e/c.txt'); os.rmdir('d/e')
with tempfile.NamedTemporaryFile() as t:
    t.write(b'x')
with open(os.devnull, 'w') as f:
    f.write('discarded')
print(sorted(os.listdir('.')))
""")
    assert r.status == "pass", r
    assert r.stdout.splitlines() == ["hi!", "['d', 'solution.py']"]


def test_parent_secrets_are_not_visible(monkeypatch):
    secret = f"hunter{random.randrange(10**9)}"
    monkeypatch.setenv("NANOCHAT_TEST_SECRET", secret)
    r = execute_code("""
import os
print(sorted(os.environ))
for path in [f'/proc/{os.getppid()}/environ', '/proc/1/environ', f'/proc/{os.getppid()}/mem']:
    try:
        open(path, 'rb').read(100)
        print('read', path)
    except PermissionError:
        print('blocked')
print(open('/proc/self/status').read().splitlines()[0])  # its own /proc is fine
""")
    assert r.status == "pass", r
    assert secret not in r.stdout and secret not in r.stderr
    assert r.stdout.splitlines()[:4] == ["['HOME', 'LANG', 'PATH', 'TMPDIR']", "blocked", "blocked", "blocked"]
    assert r.stdout.splitlines()[4].startswith("Name:")


@pytest.mark.parametrize("spawn", [
    "import subprocess\nsubprocess.run(['touch', MARKER])",
    "import subprocess\nsubprocess.check_output('touch ' + MARKER, shell=True)",
    "import os\nos.system('touch ' + MARKER)",
    "import os\nos.popen('touch ' + MARKER).read()",
    "import os\nos.execv('/usr/bin/touch', ['touch', MARKER])",
    "import os\nos.posix_spawn('/usr/bin/touch', ['touch', MARKER], {})",
    "import pty\npty.spawn(['touch', MARKER])",
    "import asyncio\nasyncio.run(asyncio.create_subprocess_exec('touch', MARKER))",
])
def test_subprocesses_are_blocked(spawn, tmp_path):
    marker = tmp_path / "marker"
    r = execute_code(f"MARKER = {str(marker)!r}\n" + spawn, timeout=5.0)
    assert r.status == "fail" and r.error.startswith("PermissionError"), r
    assert not marker.exists()


@pytest.mark.parametrize("escape", [
    "import os\nos.kill(os.getppid(), 9)",
    "import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)",
    "import os\nos.setsid()",
    "import os\nos.chdir('/')",
    "import os\nos.environ['PATH'] = '/evil'",
])
def test_escapes_are_blocked(escape):
    r = execute_code(escape)
    assert r.status == "fail" and r.error.startswith("PermissionError"), r


@pytest.mark.parametrize("flood", [
    "while True:\n    print('x' * 1000)",
    "import sys\nwhile True:\n    sys.stderr.write('y' * 10**5)",
    "import sys\nsys.stdout.write('z' * 10**8)",   # 100 MB in one call
])
def test_output_flood_is_cut(flood):
    r = execute_code(flood, timeout=20.0, max_output_bytes=100_000)
    assert r.status == "output_limit" and "100000" in r.error, r
    assert 0 < len(r.stdout) + len(r.stderr) <= 100_000


# -----------------------------------------------------------------------------
# The calculator

@pytest.mark.parametrize("expr, expected", [
    ("2 + 3*4", "14"),
    ("(2 + 3) * 4", "20"),
    ("12 / 24", "0.5"),
    ("6 / 2", "3"),
    ("7 // 2", "3"),
    ("-7 // 2", "-4"),
    ("7 % 3", "1"),
    ("2 ** 10", "1024"),
    ("2 ** -1", "0.5"),
    ("-(3 - 5)", "2"),
    ("0.1 + 0.2", "0.3"),
    ("1 / 3", "0.333333333333333"),
    ("1,234,567 + 1", "1234568"),
    ("$", None),
    ("1,2", None),                              # a tuple, not a number
    ("2 ** 100", "1267650600228229401496703205376"),
    ('"strawberry".count("r")', "3"),
    ("'Mississippi'.count('ss') * 2", "4"),
    ('"a,b,c".count(",")', "2"),                # commas inside strings are left alone
    ("1 / 0", None),
    ("(-8) ** 0.5", None),                      # complex
    ("10.0 ** 100 * 1e300", None),              # inf
])
def test_calculator_values(expr, expected):
    assert eval_calculator(expr) == expected


OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
             "//": operator.floordiv, "%": operator.mod}


def _random_expression(rng, depth, ops):
    """(text, exact value or None on division by zero) for a random expression tree over small integers."""
    if depth == 0 or rng.random() < 0.3:
        n = rng.randrange(-50, 1000)
        return f"({n})" if n < 0 else str(n), Fraction(n)
    op = rng.choice(ops)
    left, lval = _random_expression(rng, depth - 1, ops)
    if op == "/":  # a literal, non-zero divisor: float rounding then cannot turn a zero into a tiny number
        n = rng.randrange(1, 100)
        right, rval = str(n), Fraction(n)
    else:
        right, rval = _random_expression(rng, depth - 1, ops)
    if lval is None or rval is None:
        return f"({left} {op} {right})", None
    if op in ("//", "%", "/") and rval == 0:
        return f"({left} {op} {right})", None
    return f"({left} {op} {right})", OPERATORS[op](lval, rval)


def test_calculator_matches_exact_arithmetic():
    rng = random.Random(0)
    for _ in range(150):  # integer operations: the answer must be exact
        text, value = _random_expression(rng, 4, ["+", "-", "*", "//", "%"])
        assert eval_calculator(text) == (None if value is None else str(value)), text
    for _ in range(150):  # true division: equal to exact rational arithmetic up to float rounding
        text, value = _random_expression(rng, 4, ["+", "-", "*", "/"])
        got = eval_calculator(text)
        assert math.isclose(float(got), float(value), rel_tol=1e-9, abs_tol=1e-9), (text, got, value)


@pytest.mark.parametrize("expr", [
    "__import__('os').system('touch /tmp/nanochat_pwned')",
    "open('/etc/passwd').read()",
    "lambda: 1",
    "(lambda: 1)()",
    "9**9**9",
    "2 ** (10 ** 10)",
    "x + 1",
    "abs(-1)",
    "().__class__.__bases__[0].__subclasses__()",
    "'abc'.__class__",
    "'abc'.upper()",
    "'abc'.count('a', 0)",
    "'x' * 10**9",
    "[1, 2]",
    "1 if 1 else 2",
    "f'{1}'.count('1')",
    "True + 1",
    "1 +",
    "",
    "1 + 1\n__import__('os')",
    "1" + " + 1" * 300,                          # over the length cap
])
def test_calculator_refuses_hostile_input(expr):
    assert eval_calculator(expr) is None
    assert not os.path.exists("/tmp/nanochat_pwned")


def test_calculator_survives_a_timeout_and_a_crash():
    assert eval_calculator("1 + 1") == "2"
    (worker,) = psutil.Process().children()
    # Passes validation (every exponent is a small literal) but is 10**(10**8): far longer than the timeout.
    assert eval_calculator("(((10**100)**100)**100)**100", timeout=0.3) is None
    assert not psutil.pid_exists(worker.pid) or worker.status() == psutil.STATUS_ZOMBIE
    assert eval_calculator("2 * 21") == "42"
    (worker,) = psutil.Process().children()
    worker.kill()  # dies between calls: the next call notices and starts a new worker
    worker.wait()
    assert eval_calculator("'banana'.count('a')") == "3"


def test_calculator_is_thread_safe():
    results = {}

    def work(k):
        results[k] = [eval_calculator(f"{k} * 1000 + {i}") for i in range(40)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {k: [str(k * 1000 + i) for i in range(40)] for k in range(4)}


def test_calculator_rejects_bad_arguments():
    with pytest.raises(AssertionError):
        eval_calculator(12)
    with pytest.raises(AssertionError):
        eval_calculator("1 + 1", timeout=0)
