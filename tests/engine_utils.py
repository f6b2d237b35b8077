"""Tiny models and a bytes-only tokenizer for the engine and chat tests.

random_model: every weight random (output projections too), so attention really mixes positions and a KV cache
bug changes the tokens. bigram_model: weights set by hand so the next token depends only on the current one,
which scripts exact replies (e.g. a calculator call) without training anything.
"""

import torch

from nanochat.gpt import GPT, GPTConfig
from nanochat.tokenizer import Tokenizer


def byte_tokenizer():
    """256 byte tokens, then the 9 special tokens (ids 256..264): every string encodes byte by byte."""
    return Tokenizer({bytes([i]): i for i in range(256)})


# Every optional piece of the architecture on, with short windows of 6 keys, so a cache bug in any shows.
ALL_FEATURES = dict(qk_scale=1.2, window_pattern="SL", short_window=6, value_embeds=True, layer_scalars=True,
                    smear=True, backout=True)


def random_model(seed=0, vocab_size=265, sequence_len=128, n_layer=2, n_embd=64, n_head=4, n_kv_head=2, **features):
    """A GPT (grouped-query attention by default) with all weights random; `features`: GPTConfig switches.

    Logits have a spread of about 1, so sampling at temperature 1 is far from uniform and far from greedy.
    Special-token logits are scaled down to near 0: they still get sampled now and then, but greedy decoding
    (whose winner is near the top of ~256 unit normals) never picks them.
    """
    torch.manual_seed(seed)
    config = GPTConfig(sequence_len=sequence_len, vocab_size=vocab_size, n_layer=n_layer, n_head=n_head,
                       n_kv_head=n_kv_head, n_embd=n_embd, **features)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=p.size(-1) ** -0.5 if p.dim() else 0.5)  # unit-RMS in -> unit-RMS out
        model.lm_head.weight[256:] *= 0.01
    return model.eval()


def bigram_model(transitions, vocab_size=265, sequence_len=64, n_embd=64, strength=10.0):
    """A GPT whose next token is transitions[current token] (for the tokens listed), with probability ~1.

    The zero-initialised output projections of attention and MLP make every block the identity, so the
    final hidden state is norm(wte[current]). Each listed token gets its own basis vector as embedding and
    lm_head maps that basis vector to its successor: logit sqrt(n_embd) * strength, softcapped to ~15,
    against 0 for every other token.
    """
    current = sorted(transitions)
    if len(current) > n_embd:
        raise ValueError(f"{len(current)} scripted tokens need n_embd >= {len(current)}, got {n_embd}")
    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=sequence_len, vocab_size=vocab_size, n_layer=2, n_head=2, n_kv_head=2,
                          n_embd=n_embd))
    with torch.no_grad():
        model.lm_head.weight.zero_()
        for k, token in enumerate(current):
            model.wte.weight[token] = 0.0
            model.wte.weight[token, k] = 1.0
            model.lm_head.weight[transitions[token], k] = strength
    return model.eval()


def chain(*steps):
    """transitions for a model that walks through `steps` in order: {steps[0]: steps[1], ...}.
    Each step is a token id or a string (its UTF-8 bytes, one token each). Current tokens must be unique."""
    ids = []
    for s in steps:
        ids.extend(s.encode("utf-8") if isinstance(s, str) else [s])
    transitions = {}
    for a, b in zip(ids, ids[1:]):
        if a in transitions:
            raise ValueError(f"token {a} appears twice as a current token; a bigram model cannot script that")
        transitions[a] = b
    return transitions
