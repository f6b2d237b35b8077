"""
Benchmark one pretraining step: tokens/s, step time and peak memory for a fixed tiny config.

    python -m bench.train                      # depth 4, seq 256, device batch 16, total batch 4096
    python -m bench.train --compile 1 --steps 20

Measures exactly what base_train does per optimizer step (forward, backward, Muon+AdamW step, zero
grads) on random tokens, so the data pipeline is left out on purpose: it is not what limits a CPU.
Prints one line per configuration; the figures in the README come from here.
"""

import argparse
import resource
import time

import torch

from nanochat.common import compute_init
from nanochat.gpt import GPT, config_from_depth
from nanochat.training import build_optimizer, grad_accum_steps


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux reports KiB


def bench(args, use_compile, compute):
    torch.manual_seed(0)
    config = config_from_depth(args.depth, args.vocab_size, args.max_seq_len, aspect_ratio=args.aspect_ratio,
                               head_dim=args.head_dim)
    model = GPT(config).to(compute.device)
    model.init_weights()
    optimizer = build_optimizer(model)
    fwd = torch.compile(model, dynamic=False) if use_compile else model
    accum = grad_accum_steps(args.total_batch_size, args.device_batch_size, args.max_seq_len, 1)
    g = torch.Generator().manual_seed(0)
    shape = (args.device_batch_size, args.max_seq_len + 1)
    batches = [torch.randint(0, args.vocab_size, shape, generator=g).to(compute.device) for _ in range(accum)]

    def step():
        for b in batches:
            with compute.autocast():
                loss = fwd(b[:, :-1], b[:, 1:])
            (loss / accum).backward()
        optimizer.step()
        model.zero_grad(set_to_none=True)
        compute.synchronize()

    t0 = time.time()
    for _ in range(args.warmup):
        step()
    warm = time.time() - t0
    times = []
    for _ in range(args.steps):
        t0 = time.time()
        step()
        times.append(time.time() - t0)
    times.sort()
    median = times[len(times) // 2]
    tok_s = args.total_batch_size / median
    name = "compile" if use_compile else "eager"
    print(f"{name:8s} | params {model.num_params():,} | step {1000 * median:.0f} ms (median of {args.steps}, "
          f"min {1000 * times[0]:.0f}) | {tok_s:,.0f} tok/s | warm-up {warm:.1f}s | peak RSS {peak_rss_mib():.0f} MiB"
          + (f" | peak CUDA {compute.peak_memory() / 2**20:.0f} MiB" if compute.device_type == "cuda" else ""))
    return tok_s


def main(argv=None):
    p = argparse.ArgumentParser(description="Benchmark pretraining steps on a fixed tiny config")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--aspect-ratio", type=int, default=64)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--vocab-size", type=int, default=4096, help="the tiny profile's vocabulary")
    p.add_argument("--max-seq-len", type=int, default=256)
    p.add_argument("--device-batch-size", type=int, default=16)
    p.add_argument("--total-batch-size", type=int, default=4096)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation happens here)")
    p.add_argument("--compile", type=int, default=-1, help="1: compiled only, 0: eager only, -1: both")
    p.add_argument("--device-type", default="")
    args = p.parse_args(argv)
    compute = compute_init(args.device_type)
    print(f"device {compute.device_type} | threads {torch.get_num_threads()} | depth {args.depth} | seq "
          f"{args.max_seq_len} | device batch {args.device_batch_size} | total batch {args.total_batch_size}")
    modes = [False, True] if args.compile == -1 else [bool(args.compile)]
    results = {("compile" if m else "eager"): bench(args, m, compute) for m in modes}
    if len(results) == 2:
        print(f"compile / eager: {results['compile'] / results['eager']:.2f}x")
    return results


if __name__ == "__main__":
    main()
