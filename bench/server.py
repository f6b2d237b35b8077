"""
Benchmark: aggregate throughput of the web server with 1, 4 and 16 concurrent streaming clients on one replica.

    python -m bench.server [--depth 4] [--clients 1 4 16] [--max-tokens 128] [--cpu-threads 1]

Serves a randomly initialised model (depth 4 -> width 256) with scripts/chat_web.py's app in a background
uvicorn thread on 127.0.0.1, then lets N clients stream /v1/chat/completions at the same time and prints, per N:
completion tokens over all clients per second of wall time, tokens/s each client sees, and the mean time to first
token. Dynamic batching is what should make 16 clients much faster in aggregate than 1: their rows share each
decode step. The tokenizer is a BPE trained here on the embedded corpus; the replies are meaningless, only the
time matters. Clients run in the same process as the server (one more consumer of the same cores), so the
numbers are a floor. Prints numbers, asserts nothing.
"""

import argparse
import asyncio
import itertools
import json
import time

import httpx
import torch

from nanochat.common import autodetect_device_type
from nanochat.engine import Engine
from nanochat.gpt import GPT, config_from_depth
from nanochat.synthetic import generate_documents
from nanochat.tokenizer import Tokenizer
from scripts.chat_web import ServerConfig, create_app
from tests.web_utils import BackgroundServer


async def stream_one(ac, prompt, max_tokens, seed):
    """One streaming request; returns (completion tokens, seconds to the first text, seconds in all)."""
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "seed": seed,
            "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first, tokens = None, 0
    async with ac.stream("POST", "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[len("data: "):])
            if first is None and any(c["delta"].get("content") for c in chunk["choices"]):
                first = time.perf_counter() - t0
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return tokens, first, time.perf_counter() - t0


async def round_of(url, clients, prompts, max_tokens):
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as ac:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(stream_one(ac, prompts[i % len(prompts)], max_tokens, i)
                                         for i in range(clients)))
        return results, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description="Web server throughput with concurrent streaming clients")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary trained for the benchmark")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--max-tokens", type=int, default=128, help="completion tokens per request")
    p.add_argument("--device-type", default="cpu", help="cpu|cuda|mps ('' autodetects)")
    p.add_argument("--cpu-threads", type=int, default=1,
                   help="torch threads on CPU, as scripts/chat_web.py sets them (0: torch's default)")
    args = p.parse_args(argv)
    device = torch.device(args.device_type or autodetect_device_type())
    if device.type == "cpu" and args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)

    docs = list(itertools.islice(generate_documents(1), 3000))
    tokenizer = Tokenizer.train_from_iterator(docs, args.vocab_size)
    torch.manual_seed(0)
    config = config_from_depth(args.depth, tokenizer.get_vocab_size(), args.seq_len)
    model = GPT(config).to(device).eval()
    with torch.no_grad():
        # Zeroed special-token rows never make the top-k of the near-zero random logits, so no reply stops early
        # and every request generates exactly --max-tokens tokens.
        model.lm_head.weight[list(tokenizer.special_ids.values())] = 0.0
    batch = max(args.clients)
    engine = Engine(model, tokenizer, max_batch_size=batch)
    app = create_app([engine], tokenizer, ServerConfig(temperature=0.6, top_k=50))
    prompts = [" ".join(d.split()[:15]) for d in docs[:64]]  # ~20-token prompts, all different
    print(f"model: depth {config.n_layer}, width {config.n_embd}, {model.num_params():,} parameters, vocab "
          f"{config.vocab_size}, device {device}, torch threads {torch.get_num_threads()}; one replica, batch {batch}")

    with BackgroundServer(app) as server:
        asyncio.run(round_of(server.url, 2, prompts, 8))  # warm-up: first-call costs out of the timings
        print(f"{'clients':>7} {'tokens':>7} {'wall s':>7} {'agg tok/s':>10} {'tok/s/client':>13} "
              f"{'mean TTFT ms':>13} {'vs 1 client':>12}")
        base = None
        for n in args.clients:
            results, wall = asyncio.run(round_of(server.url, n, prompts, args.max_tokens))
            tokens = sum(r[0] for r in results)
            aggregate = tokens / wall
            base = base or aggregate
            per_client = sum(r[0] / r[2] for r in results) / n
            ttft = sum(r[1] for r in results) / n * 1e3
            print(f"{n:>7} {tokens:>7} {wall:>7.2f} {aggregate:>10,.0f} {per_client:>13,.0f} {ttft:>13.1f} "
                  f"{aggregate / base:>11.1f}x")


if __name__ == "__main__":
    main()
