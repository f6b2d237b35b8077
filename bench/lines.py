"""Core line count as issue 15 defines it: the library (without the embedded corpus), tasks, scripts, the research
harness and the Rust sources without their `#[cfg(test)]` modules; `wc -l` per file, largest first.

Run from the repository root: `python -m bench.lines`. Prints numbers; asserts nothing.
"""

import glob


def rust_lines_without_tests(path):
    """Lines of a Rust file before its `#[cfg(test)]` module (each of ours ends with it, when it has one)."""
    lines = open(path).read().splitlines()
    return next((i for i, line in enumerate(lines) if line.strip() == "#[cfg(test)]"), len(lines))


def main():
    files = [f for pattern in ("nanochat/*.py", "tasks/*.py", "scripts/*.py", "research/*.py")
             for f in sorted(glob.glob(pattern))]
    counts = {f: len(open(f).read().splitlines()) for f in files}
    counts |= {f: rust_lines_without_tests(f) for f in sorted(glob.glob("rustbpe/src/*.rs"))}
    for f, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"{n:6d}  {f}{'   (over 500)' if n > 500 else ''}")
    rust_tests = sum(len(open(f).read().splitlines()) for f in glob.glob("rustbpe/src/*.rs")) - sum(
        n for f, n in counts.items() if f.endswith(".rs"))
    print(f"{sum(counts.values()):6d}  core total (target <= 8000); Rust test modules not counted: {rust_tests}")


if __name__ == "__main__":
    main()
