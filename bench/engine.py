"""
Benchmark: inference engine speed on a small randomly initialised model, or on a trained checkpoint.

    python -m bench.engine [--depth 4] [--prompt-tokens 200] [--decode-steps 64] [--batch-sizes 1 8]
    python -m bench.engine --source sft [--step N] --device-type cuda --batch-sizes 1 8 32

Prints prefill tokens/s for one prompt, time to first token (prefill + the first decode step), and decode
tokens/s at each batch size (one batched T=1 forward plus per-row sampling per step), next to decoding by
re-running the full sequence (no KV cache) as the baseline the cache exists to beat. The tokenizer is a BPE
trained here on the embedded corpus; the model's answers are meaningless, only the time matters. Prints
numbers, asserts nothing. With --json PATH it also writes what research/autoresearch.py's engine stage judges:
`outputs_sha256`, a digest of seeded samples that a faster engine must leave unchanged, and
`decode_tokens_per_s` at the last of --batch-sizes. With --source the model and tokenizer come from
$NANOCHAT_BASE_DIR (or --base-dir); its rows may stop early, so decode counts the tokens really produced. On CUDA
it also prints the memory-bandwidth utilisation: bytes of weights and KV cache read per step over the GPU's peak.
"""

import argparse
import contextlib
import hashlib
import itertools
import statistics
import time

import torch

from nanochat.checkpoint import load_model
from nanochat.common import atomic_write_json, autodetect_device_type
from nanochat.engine import Engine, SamplingParams
from nanochat.gpt import GPT, config_from_depth
from nanochat.synthetic import generate_documents
from nanochat.tokenizer import Tokenizer


def timed(fn, device, repeats):
    """Median wall time of fn() over `repeats` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# Peak memory bandwidth, GB/s, by a substring of torch.cuda.get_device_name() (vendor datasheets; first match wins).
PEAK_GBPS = {"H200": 4800, "H100 PCIe": 2000, "H100": 3350, "A100-SXM4-80GB": 2039, "A100": 1555, "L40S": 864,
             "A10": 600, "L4": 300, "4090": 1008, "3090": 936, "T4": 320}


def main(argv=None):
    p = argparse.ArgumentParser(description="Inference engine throughput of a random model")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary trained for the benchmark")
    p.add_argument("--prompt-tokens", type=int, default=200)
    p.add_argument("--decode-steps", type=int, default=64, help="decode steps timed per batch size")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device-type", default="cpu", help="cpu|cuda|mps ('' autodetects)")
    p.add_argument("--json", default="", help="also write the digest and decode tokens/s to this JSON file")
    p.add_argument("--source", default="", help="base|mid|sft|rl: time this trained checkpoint instead")
    p.add_argument("--step", type=int, default=None, help="--source checkpoint step (default: the newest)")
    p.add_argument("--model-tag", default=None, help="--source checkpoint tag (default: the largest model)")
    p.add_argument("--base-dir", default=None, help="--source artifacts root (default: $NANOCHAT_BASE_DIR)")
    p.add_argument("--peak-gbps", type=float, default=0, help="GPU memory bandwidth (0: from the device name)")
    args = p.parse_args(argv)
    device = torch.device(args.device_type or autodetect_device_type())

    docs = list(itertools.islice(generate_documents(1), 3000))
    if args.source:
        model, tokenizer, meta = load_model(args.source, device, args.model_tag, args.step, args.base_dir,
                                             dtype=torch.bfloat16 if device.type == "cuda" else None)  # as chat_web
        print(f"checkpoint: {meta['checkpoint_dir']} step {meta['step']}")
    else:
        t0 = time.perf_counter()
        tokenizer = Tokenizer.train_from_iterator(docs, args.vocab_size)
        print(f"tokenizer: vocab {tokenizer.get_vocab_size()} trained in {time.perf_counter() - t0:.1f}s")
        torch.manual_seed(0)
        model = GPT(config_from_depth(args.depth, tokenizer.get_vocab_size(), args.seq_len)).to(device).eval()
    with torch.no_grad():
        # At init all logits are ~0.01; zeroed special-token rows then never make the top-k, so no row stops
        # early or calls the calculator and every timed step decodes the full batch. A trained model's top-50
        # logits are almost always above 0, so its rows rarely stop either (decode counts the tokens produced).
        model.lm_head.weight[list(tokenizer.special_ids.values())] = 0.0
    config = model.config
    print(f"model: depth {config.n_layer}, width {config.n_embd}, {model.num_params():,} parameters, "
          f"context {config.sequence_len}, device {device}, torch threads {torch.get_num_threads()}")
    engine = Engine(model, tokenizer, max_batch_size=max(args.batch_sizes))
    prompt_tokens = min(args.prompt_tokens, config.sequence_len - 2 * args.decode_steps - 1)  # + warm-up + timed
    prompt = [tokenizer.get_bos_token_id()] + tokenizer.encode("\n".join(docs[:50]))[:prompt_tokens - 1]
    params = SamplingParams(temperature=0.6, top_k=50, max_tokens=config.sequence_len)
    # On CUDA the forward runs as in training (bf16 autocast) and the KV cache is bf16.
    autocast = torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    autocast.__enter__()  # for the rest of main
    peak = args.peak_gbps or next((v for k, v in PEAK_GBPS.items() if k in torch.cuda.get_device_name(device)), 0) \
        if device.type == "cuda" else 0
    weight_bytes = sum(t.numel() * t.element_size() for t in model.parameters())
    session = engine.session(1)
    kv_bytes_per_token = 2 * config.n_layer * config.n_kv_head * config.head_dim * session.cache.k.element_size()

    def prefill():
        row = session.add(prompt, params)  # one forward over all prompt tokens but the last
        session.remove(row)

    def first_token():
        row = session.add(prompt, params)
        session.step()  # feeds the last prompt token, samples the first reply token
        session.remove(row)

    t = timed(prefill, device, args.repeats)
    print(f"prefill: {len(prompt) - 1} tokens in {t * 1e3:.1f} ms -> {(len(prompt) - 1) / t:,.0f} tokens/s")
    t = timed(first_token, device, args.repeats)
    print(f"time to first token ({len(prompt)}-token prompt, batch 1): {t * 1e3:.1f} ms")

    for bs in args.batch_sizes:
        session = engine.session(bs)
        for i in range(bs):
            session.add(prompt, SamplingParams(temperature=0.6, top_k=50, max_tokens=config.sequence_len, seed=i))
        produced = []
        t = timed(lambda: produced.append(sum(len(session.step()) for _ in range(args.decode_steps))), device, 1)  # noqa: B023
        assert args.source or len(session) == bs, "a row finished early; the timing would mix batch sizes"
        decode_tps = produced[-1] / t
        # Each step reads every weight once and each row's KV cache (about the prompt plus half the reply).
        step_bytes = weight_bytes + bs * kv_bytes_per_token * (len(prompt) + args.decode_steps // 2)
        mbu = f", memory bandwidth {step_bytes / (t / args.decode_steps) / 1e9 / peak:.1%} of {peak:,.0f} GB/s" \
            if peak else ""
        print(f"decode batch {bs:3d}: {t / args.decode_steps * 1e3:6.2f} ms/step -> {decode_tps:8,.0f} tokens/s{mbu}")

    # Without a cache every new token re-runs the whole sequence; time one such step at the mid-point of a reply.
    ids = torch.tensor([prompt + [0] * (args.decode_steps // 2)], device=device)
    with torch.inference_mode():
        t = timed(lambda: model(ids), device, args.repeats)
    print(f"baseline, no KV cache (a full forward of {ids.size(1)} tokens per new token, batch 1): "
          f"{1 / t:,.0f} tokens/s")

    result = {"decode_tokens_per_s": round(decode_tps, 1)}
    if not args.source:
        with torch.no_grad():
            # At init every residual branch is exactly zero (zero output projections), so samples would not
            # depend on attention or the MLP at all: give each zero weight seeded noise, then make the logits of
            # order 1, not ~0.01. The samples then depend on every part of the decode step.
            g = torch.Generator().manual_seed(1)
            for w in model.parameters():
                if not w.any():
                    w.copy_(0.02 * torch.randn(w.shape, generator=g))
            model.lm_head.weight.mul_(100)
        # Four rows at different positions (the masked path), 96 tokens each: at the default 200-token prompt and
        # 1,024 context the longest row passes the 256-key short window, so the windows are checked too.
        rows = [SamplingParams(temperature=0.6, top_k=50, max_tokens=96, seed=i) for i in range(4)]
        samples, _ = engine.generate_batch([prompt[:len(prompt) * (4 - i) // 4] for i in range(4)], rows)
        result["outputs_sha256"] = hashlib.sha256(repr(samples).encode()).hexdigest()[:16]
    print("\n".join(f"{k}: {v}" for k, v in result.items()))
    if args.json:
        atomic_write_json(args.json, result)


if __name__ == "__main__":
    main()
