"""
Throughput of the embedded-corpus generator, per document kind and for the real mix, on one core.

Run from the repository root: `python -m bench.synthetic [megabytes]` (default 20). Prints MB/s of
UTF-8 text measured in CPU time of this process (robust to other processes sharing the machine) and in
wall-clock time. A script that prints numbers, not a test: nothing here asserts on speed.
"""

import sys
import time

from nanochat import synthetic as S


def measure(make_text, megabytes):
    cpu, wall, n, docs = time.process_time(), time.perf_counter(), 0, 0
    while n < megabytes * 1e6:
        n += len(make_text().encode("utf-8"))
        docs += 1
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return n / cpu / 1e6, n / wall / 1e6, n / docs


def main():
    megabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    print(f"{'kind':16s} {'MB/s (cpu)':>10s} {'MB/s (wall)':>11s} {'bytes/doc':>10s}")
    for make in S._DOCS.items:
        g = S._Gen("bench")
        cpu, wall, size = measure(lambda make=make, g=g: make(g), megabytes / 10)
        print(f"{make.__name__:16s} {cpu:10.2f} {wall:11.2f} {size:10.0f}")
    stream = S.generate_documents(0)
    cpu, wall, size = measure(lambda: next(stream), megabytes)
    print(f"{'MIX (documents)':16s} {cpu:10.2f} {wall:11.2f} {size:10.0f}")


if __name__ == "__main__":
    main()
