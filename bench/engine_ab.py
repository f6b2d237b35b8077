"""
Decode speed side by side with nanochat's Engine: one process, random-init models of the same shape.

    python -m bench.engine_ab --nanochat /path/to/nanochat-checkout [--depths 4] [--batch-sizes 1 8]
    python -m bench.engine_ab --nanochat ... --device-type cuda --depths 12 20 --batch-sizes 1 32

nanochat's `nanochat` package is copied into a temporary folder as `refchat`, its imports renamed, so that both
load in one process (the checkout itself is never copied into this repo). Both models get our config_from_depth
shape (depth, width, heads, sequence, the SSSL window pattern) and special-token rows of zero in the lm_head, so
that no row stops early and every step decodes the full batch. The tokenizer is the 256 bytes plus byte pairs up
to the vocab: the models are random and only the time matters. Each repeat runs every variant once, in turn;
the table holds medians of tokens/s over the timed decode steps (the prefill is not timed).

Variants: `ours` serves as chat_web does (fp32 weights, bf16 autocast on CUDA); `ours-bf16w` stores the matmul
weights in bf16, as an inference-only load could; `nanochat` is its Engine as it ships (fp32 matmul weights cast
per op to its compute dtype). On CUDA the memory-bandwidth utilisation is the bytes each step must read (the
matmul weights as stored, plus the KV cache) over the GPU's peak bandwidth. Prints numbers, asserts nothing.
"""

import argparse
import itertools
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

import torch

from bench.engine import PEAK_GBPS
from nanochat.engine import Engine, SamplingParams
from nanochat.gpt import GPT, config_from_depth
from nanochat.synthetic import generate_documents
from nanochat.tokenizer import Tokenizer


def import_nanochat(checkout):
    """nanochat's package from `checkout`, copied to a temporary folder as `refchat` with its imports renamed."""
    folder = tempfile.mkdtemp(prefix="refchat_")
    shutil.copytree(os.path.join(checkout, "nanochat"), os.path.join(folder, "refchat"))
    for name in os.listdir(os.path.join(folder, "refchat")):
        path = os.path.join(folder, "refchat", name)
        if name.endswith(".py"):
            text = open(path).read()
            with open(path, "w") as f:
                f.write(re.sub(r"\b(from|import) nanochat\b", r"\1 refchat", text))
    sys.path.insert(0, folder)
    import refchat.engine
    import refchat.gpt
    return refchat.gpt, refchat.engine


def byte_pair_tokenizer(vocab_size):
    """A BPE of vocab_size ids: the 256 bytes, then byte pairs in order, then our special tokens."""
    ranks = {bytes([i]): i for i in range(256)}
    for a, b in itertools.product(range(256), repeat=2):
        if len(ranks) == vocab_size - 9:  # the 9 special tokens follow
            break
        ranks[bytes([a, b])] = len(ranks)
    tokenizer = Tokenizer(ranks)
    assert tokenizer.get_vocab_size() == vocab_size, tokenizer.get_vocab_size()
    return tokenizer


def main(argv=None):
    p = argparse.ArgumentParser(description="Decode tokens/s: our Engine vs nanochat's, same model shape")
    p.add_argument("--nanochat", required=True, help="path of a nanochat checkout (github.com/karpathy/nanochat)")
    p.add_argument("--depths", type=int, nargs="+", default=[4])
    p.add_argument("--vocab-size", type=int, default=8192)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is least noisy on shared cores)")
    p.add_argument("--device-type", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--peak-gbps", type=float, default=0, help="GPU memory bandwidth (0: from the device name)")
    args = p.parse_args(argv)
    if not os.path.isfile(os.path.join(args.nanochat, "nanochat", "engine.py")):
        p.error(f"--nanochat {args.nanochat!r} is not a nanochat checkout (no nanochat/engine.py)")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device_type)
    ref_gpt, ref_engine = import_nanochat(args.nanochat)
    tokenizer = byte_pair_tokenizer(args.vocab_size)
    specials = list(tokenizer.special_ids.values())
    text = "\n".join(itertools.islice(generate_documents(2), 50))
    prompt = [tokenizer.get_bos_token_id()] + tokenizer.encode(text)[:args.prompt_tokens - 1]
    cuda = device.type == "cuda"
    peak = args.peak_gbps or (next((v for k, v in PEAK_GBPS.items() if k in torch.cuda.get_device_name()), 0)
                              if cuda else 0)
    print(f"device {torch.cuda.get_device_name() if cuda else 'cpu'}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}; prompt {len(prompt)} tokens, {args.new_tokens} new, top-k 50, temperature 0.6")

    rows = []
    for depth in args.depths:
        config = config_from_depth(depth, args.vocab_size, args.seq_len)
        torch.manual_seed(0)
        ours = GPT(config).to(device).eval()
        with torch.no_grad():
            ours.lm_head.weight[specials] = 0.0
        ours_bf16 = GPT(config).to(device).eval()
        ours_bf16.load_state_dict(ours.state_dict())
        if cuda:
            ours_bf16.to(torch.bfloat16)
        with torch.device("meta"):
            theirs = ref_gpt.GPT(ref_gpt.GPTConfig(
                sequence_len=args.seq_len, vocab_size=args.vocab_size, n_layer=depth, n_head=config.n_head,
                n_kv_head=config.n_kv_head, n_embd=config.n_embd, window_pattern="SSSL"))
        theirs.to_empty(device=device)
        theirs.init_weights()
        theirs.eval()
        with torch.no_grad():
            theirs.lm_head.weight[specials] = 0.0
        engines = {"ours": Engine(ours, tokenizer, max_batch_size=max(args.batch_sizes)),
                   "ours-bf16w": Engine(ours_bf16, tokenizer, max_batch_size=max(args.batch_sizes)),
                   "nanochat": ref_engine.Engine(theirs, tokenizer)}
        if not cuda:
            del engines["ours-bf16w"]  # bf16 weights on a CPU are a different question (slow matmuls)
        # Bytes one decode step must read: every matmul weight as stored, and each row's cached keys and values
        # (about the prompt plus half the reply). Lookups (token and value embeddings) read only their rows.
        matmul = ours.num_scaling_params()
        kv_per_token = 2 * config.n_layer * config.n_kv_head * config.head_dim * 2  # bf16 caches on CUDA
        weight_bytes = {"ours": 4 * matmul, "ours-bf16w": 2 * matmul, "nanochat": 4 * matmul}
        print(f"depth {depth}: width {config.n_embd}, {matmul / 1e6:.1f}M matmul parameters, "
              f"{ours.num_params() / 1e6:.1f}M in all")

        def decode_rate(engines, name, bs):
            """Tokens/s of the timed decode steps (after the prefill) of one batch of bs rows."""
            if cuda:
                torch.cuda.synchronize()
            if name == "nanochat":
                gen = engines[name].generate(prompt, num_samples=bs, max_tokens=args.new_tokens,
                                             temperature=0.6, top_k=50, seed=0)
                next(gen)  # prefill, then the first token sampled from its logits
                t0 = time.perf_counter()
                n = sum(len(column) for column, _ in gen) + bs  # its last forward's logits go unused: count it
            else:
                session = engines[name].session(bs)
                for i in range(bs):
                    session.add(prompt, SamplingParams(temperature=0.6, top_k=50, max_tokens=args.new_tokens, seed=i))
                t0 = time.perf_counter()
                n = 0
                while len(session):
                    n += len(session.step())
            if cuda:
                torch.cuda.synchronize()
            return n / (time.perf_counter() - t0)

        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=cuda):
            for bs in args.batch_sizes:
                for name in engines:
                    decode_rate(engines, name, bs)  # warm-up
                rates = {name: [] for name in engines}
                for _ in range(args.repeats):
                    for name in engines:
                        rates[name].append(decode_rate(engines, name, bs))
                for name, values in rates.items():
                    tps = statistics.median(values)
                    step_bytes = weight_bytes[name] + bs * kv_per_token * (len(prompt) + args.new_tokens // 2)
                    mbu = step_bytes * tps / bs / 1e9 / peak if peak else None
                    rows.append((depth, bs, name, tps, mbu))
        del ours, ours_bf16, theirs, engines
        if cuda:
            torch.cuda.empty_cache()

    print(f"\n{'depth':>5} {'batch':>5} {'engine':>11} {'tok/s':>10} {'vs nanochat':>11} {'bandwidth':>10}")
    for depth, bs, name, tps, mbu in rows:
        ref = next(t for d, b, n, t, _ in rows if (d, b, n) == (depth, bs, "nanochat"))
        print(f"{depth:5d} {bs:5d} {name:>11} {tps:10,.0f} {tps / ref:10.2f}x "
              f"{f'{mbu:.1%}' if mbu is not None else '-':>10}")
    if peak:
        print(f"bandwidth: bytes read per decode step over {peak:,.0f} GB/s")


if __name__ == "__main__":
    main()
