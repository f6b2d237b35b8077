"""Latency of the sandbox: one execute_code run, and calculator calls cold, warm and after a timeout.

Run from the repository root: `python -m bench.execution`. Prints numbers; asserts nothing.
"""

import statistics
import time

from nanochat.execution import close_calculator, eval_calculator, execute_code


def timed(fn, repeats):
    """Wall-clock seconds of each of `repeats` calls of fn()."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def report(name, times):
    print(f"{name:46s} median {statistics.median(times) * 1e3:8.3f} ms   min {min(times) * 1e3:8.3f} ms   "
          f"(n={len(times)})")


def main():
    program = "def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
    report("execute_code (HumanEval-sized program)", timed(lambda: execute_code(program), 20))

    def cold():
        close_calculator()
        eval_calculator("1 + 1")
    report("eval_calculator, cold (starts the worker)", timed(cold, 10))
    eval_calculator("1 + 1")
    report("eval_calculator, warm: 12*34 + 5", timed(lambda: eval_calculator("12*34 + 5"), 2000))
    report('eval_calculator, warm: "strawberry".count("r")',
           timed(lambda: eval_calculator('"strawberry".count("r")'), 2000))
    report("eval_calculator, refused before running", timed(lambda: eval_calculator("__import__('os')"), 2000))

    def after_timeout():
        eval_calculator("(((10**100)**100)**100)**100", timeout=0.05)  # killed: the next call restarts
        t0 = time.perf_counter()
        eval_calculator("1 + 1")
        return time.perf_counter() - t0
    report("eval_calculator, first call after a timeout", [after_timeout() for _ in range(5)])
    close_calculator()


if __name__ == "__main__":
    main()
