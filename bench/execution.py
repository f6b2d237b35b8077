"""Cost of running model-written code: per program in the jail and in the guarded fallback, HumanEval throughput with
as many threads as cores, and calculator calls cold, warm and after a timeout.

Run from the repository root: `python -m bench.execution [--programs 300]`. Prints numbers; asserts nothing.
"""

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from nanochat.execution import close_calculator, eval_calculator, execute_code
from nanochat.jail import jail_problem
from tasks.humaneval import HumanEval


def timed(fn, repeats):
    """Wall-clock seconds of each of `repeats` calls of fn()."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def report(name, times):
    print(f"{name:52s} median {statistics.median(times) * 1e3:8.3f} ms   min {min(times) * 1e3:8.3f} ms   "
          f"(n={len(times)})")


def humaneval_throughput(jail):
    """Canonical solutions of all 164 problems, os.cpu_count() at a time: (programs/s, how many passed)."""
    human = HumanEval()
    programs = [human.program(c, r["canonical_solution"]) for c, r in zip(human, human.rows)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        results = list(pool.map(lambda p: execute_code(p, timeout=10.0, jail=jail), programs))
    return len(programs) / (time.perf_counter() - t0), sum(r.success for r in results)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=300, help="trivial programs per mode for the median")
    args = parser.parse_args()
    problem = jail_problem()
    modes = [("guarded", False)] + ([("jail", True)] if problem is None else [])
    if problem:
        print(f"the jail cannot start here ({problem}): guarded mode only")
    program = "def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
    medians = {}
    for name, jail in modes:
        times = timed(lambda jail=jail: execute_code(program, jail=jail), args.programs)
        medians[name] = statistics.median(times)
        report(f"execute_code, trivial program ({name})", times)
    if len(medians) == 2:
        print(f"jail / guarded per program: {medians['jail'] / medians['guarded']:.2f}x")
    for name, jail in modes:
        rate, passed = humaneval_throughput(jail)
        print(f"HumanEval canonical solutions ({name}, {os.cpu_count()} threads): {rate:7.1f} programs/s, "
              f"{passed}/164 passed")

    for name, jail in modes:
        os.environ["NANOCHAT_JAIL"] = "require" if jail else "off"
        close_calculator()

        def cold():
            close_calculator()
            eval_calculator("1 + 1")
        report(f"eval_calculator, cold: starts the worker ({name})", timed(cold, 10))
        eval_calculator("1 + 1")
        report(f"eval_calculator, warm: 12*34 + 5 ({name})", timed(lambda: eval_calculator("12*34 + 5"), 2000))

        def after_timeout():
            eval_calculator("(((10**100)**100)**100)**100", timeout=0.05)  # killed: the next call restarts
            t0 = time.perf_counter()
            eval_calculator("1 + 1")
            return time.perf_counter() - t0
        report(f"eval_calculator, first call after a timeout ({name})", [after_timeout() for _ in range(5)])
        close_calculator()
    report("eval_calculator, refused before running", timed(lambda: eval_calculator("__import__('os')"), 2000))


if __name__ == "__main__":
    main()
