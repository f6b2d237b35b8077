"""
Export a checkpoint to a directory transformers loads offline: `AutoModelForCausalLM.from_pretrained(DIR)` and
`AutoTokenizer.from_pretrained(DIR)`, whose chat template renders a conversation to exactly our ids.
A model without the recipe's optional pieces (value embeddings, smear, backout, layer scalars, short windows,
qk_scale != 1) maps exactly onto transformers' own NanoChat class; any other is written as remote code (gpt.py and
nanochat/hf_modeling.py copied in; load with trust_remote_code=True). Refuses: a missing checkpoint, an --out that
exists or cannot be written, and --format stock for a model the stock class cannot run. The directory is built
beside --out and renamed into place last, so a failure never leaves a half-written one.
"""

import argparse
import json
import os
import shutil
import tempfile

import torch

from nanochat.checkpoint import SOURCES, load_model
from nanochat.common import BadInput, cli, get_base_dir

# Our chat template in Jinja (nanochat/tokenizer.py's render_conversation): a system message is folded into the
# first user turn, an assistant's content may be a list of text / python / python_output parts.
CHAT_TEMPLATE = (
    "<|bos|>{% set ns = namespace(system='') %}{% for m in messages %}"
    "{% if m.role == 'system' %}{% set ns.system = m.content + '\n\n' %}"
    "{% elif m.role == 'user' %}<|user_start|>{{ ns.system + m.content }}<|user_end|>{% set ns.system = '' %}"
    "{% else %}<|assistant_start|>{% if m.content is string %}{{ m.content }}{% else %}{% for p in m.content %}"
    "{% if p.type == 'python' %}<|python_start|>{{ p.text }}<|python_end|>"
    "{% elif p.type == 'python_output' %}<|output_start|>{{ p.text }}<|output_end|>"
    "{% else %}{{ p.text }}{% endif %}{% endfor %}{% endif %}<|assistant_end|>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant_start|>{% endif %}")


def stock_blockers(cfg):
    """The settings of a GPTConfig that transformers' NanoChat class cannot express ([] when it runs it exactly)."""
    why = [name for name in ("value_embeds", "layer_scalars", "smear", "backout") if getattr(cfg, name)]
    why += [f"qk_scale={cfg.qk_scale}"] if cfg.qk_scale != 1.0 else []   # it scales by 1/sqrt(head_dim) only
    why += [f"window_pattern={cfg.window_pattern!r}"] if any(cfg.windows) else []   # no sliding windows
    return why


def stock_weights(model):
    """Our state dict under transformers' NanoChat names."""
    cfg, sd = model.config, model.state_dict()
    # transformers turns each rotary pair the other way round (its rotate_half is (x2, -x1)). Negating the second
    # half of every query and key head turns our rotation into theirs; dot products and RMS norms do not change.
    flip = torch.ones(cfg.head_dim, 1)
    flip[cfg.head_dim // 2:] = -1
    out = {"model.embed_tokens.weight": sd["wte.weight"], "lm_head.weight": sd["lm_head.weight"]}
    names = {"attn.c_q": "self_attn.q_proj", "attn.c_k": "self_attn.k_proj", "attn.c_v": "self_attn.v_proj",
             "attn.c_proj": "self_attn.o_proj", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    for i in range(cfg.n_layer):
        for ours, theirs in names.items():
            w = sd[f"blocks.{i}.{ours}.weight"]
            if ours in ("attn.c_q", "attn.c_k"):
                w = (w.view(-1, cfg.head_dim, w.size(1)) * flip).view_as(w)
            out[f"model.layers.{i}.{theirs}.weight"] = w
    return out


def byte_chars():
    """GPT-2's printable stand-in for each byte, which byte-level BPE files store tokens as: printable Latin-1
    bytes stand for themselves, the others (controls, space, ...) take the characters from 256 on, in order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in keep]
    return {**{b: chr(b) for b in keep}, **{b: chr(256 + i) for i, b in enumerate(rest)}}


def hf_tokenizer(tok):
    """Our tiktoken BPE (mergeable ranks + split pattern + specials) as a tokenizers.Tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    chars, ranks = byte_chars(), tok.mergeable_ranks
    text = lambda b: "".join(chars[x] for x in b)   # noqa: E731
    # tiktoken merges the adjacent pair whose union has the lowest rank. Listing every split of every token into
    # two tokens, ordered by the union's rank, makes transformers' BPE (lowest list position first) do the same;
    # ignore_merges takes a whole piece that is a token at once, as tiktoken does.
    merges = sorted((r, ranks[b[:i]], ranks[b[i:]], b[:i], b[i:]) for b, r in ranks.items()
                    for i in range(1, len(b)) if b[:i] in ranks and b[i:] in ranks)
    bpe = models.BPE({text(b): r for b, r in ranks.items()}, [(text(a), text(b)) for *_, a, b in merges],
                     ignore_merges=True)
    hf = Tokenizer(bpe)
    hf.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(tok.pattern), "isolated"),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens(sorted(tok.special_ids, key=tok.special_ids.get))   # ids n, n+1, ... as ours
    return hf


def write_model(model, tok, dtype, fmt, out):
    """Weights and config.json into out; returns how the model was written (and why) in words."""
    from safetensors.torch import save_file
    cfg = model.config
    why = stock_blockers(cfg)
    if fmt == "stock" and why:
        raise BadInput(f"transformers' NanoChat class cannot express {', '.join(why)}: drop --format stock (the "
                       "export is then remote code, loaded with trust_remote_code=True)")
    ids = dict(bos_token_id=tok.bos_id, pad_token_id=tok.bos_id, dtype=dtype,
               eos_token_id=[tok.special_ids["<|assistant_end|>"], tok.bos_id])   # the engine's stop tokens
    if fmt == "remote" or why:
        from dataclasses import asdict

        from nanochat.hf_modeling import NanoChatGPTConfig
        weights = {f"gpt.{k}": v for k, v in model.state_dict().items()}
        for name in ("gpt.py", "hf_modeling.py"):   # hf_modeling imports .gpt: transformers copies both along
            shutil.copy(os.path.join(os.path.dirname(__file__), "..", "nanochat", name), out)
        config = NanoChatGPTConfig(gpt=asdict(cfg), architectures=["NanoChatGPT"], **ids,
                                   auto_map={"AutoConfig": "hf_modeling.NanoChatGPTConfig",
                                             "AutoModelForCausalLM": "hf_modeling.NanoChatGPT"},
                                   max_position_embeddings=cfg.sequence_len)
        how = ("remote code (load with trust_remote_code=True): "
               + (f"transformers' NanoChat class lacks {', '.join(why)}" if why else "asked for by --format remote"))
    else:
        from transformers import NanoChatConfig
        weights = stock_weights(model)
        config = NanoChatConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.n_embd, intermediate_size=4 * cfg.n_embd,
            num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_kv_head,
            max_position_embeddings=cfg.sequence_len, rope_parameters={"rope_type": "default",
                                                                       "rope_theta": cfg.rope_base},
            final_logit_softcapping=cfg.softcap or None, rms_norm_eps=torch.finfo(torch.float32).eps, **ids,
            architectures=["NanoChatForCausalLM"])   # eps: F.rms_norm's default, the float32 machine epsilon
        how = "transformers' own NanoChat class: the model has none of the optional pieces it lacks"
    torch_dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
    save_file({k: v.to(torch_dtype).contiguous() for k, v in weights.items()}, os.path.join(out, "model.safetensors"),
              metadata={"format": "pt"})
    config.save_pretrained(out)
    return how


def write_tokenizer(tok, seq_len, out):
    hf_tokenizer(tok).save(os.path.join(out, "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|bos|>", "eos_token": "<|assistant_end|>",
              "pad_token": "<|bos|>", "model_max_length": seq_len, "clean_up_tokenization_spaces": False,
              "chat_template": CHAT_TEMPLATE}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)


def model_card(meta, how, base_dir):
    """README.md: where the model came from, how to load it, and the training report's summary if there is one."""
    remote = ", trust_remote_code=True" if how.startswith("remote") else ""
    lines = [f"# nanochat model ({os.path.basename(meta['checkpoint_dir'])}, step {meta['step']})", "",
             f"Exported by nanochat's `scripts/export.py` from `{meta['checkpoint_dir']}` as {how}.", "", "```python",
             "from transformers import AutoModelForCausalLM, AutoTokenizer",
             f"model = AutoModelForCausalLM.from_pretrained(path{remote})",
             "tokenizer = AutoTokenizer.from_pretrained(path)",
             'ids = tokenizer.apply_chat_template([{"role": "user", "content": "Hi!"}], add_generation_prompt=True,'
             ' return_tensors="pt", return_dict=True)', "```", ""]
    report = os.path.join(base_dir, "report", "report.md")
    if os.path.exists(report):   # its "## Summary" section, up to the next heading
        with open(report) as f:
            text = f.read()
        start = text.find("## Summary")
        if start >= 0:
            end = text.find("\n## ", start + 1)
            summary = text[start + len("## Summary"):end if end > 0 else None].strip()
            lines += ["## Training report summary", "", summary, ""]
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Export a checkpoint to a transformers directory (weights, config, "
                                "tokenizer with chat template, model card)")
    p.add_argument("--source", default="sft", choices=list(SOURCES), help="which stage's checkpoint")
    p.add_argument("--model-tag", default="", help="checkpoint subdirectory (default: the newest)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the newest complete one)")
    p.add_argument("--out", required=True, help="the directory to write; must not exist yet")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"], help="dtype of the saved weights")
    p.add_argument("--format", default="auto", choices=["auto", "stock", "remote"],
                   help="auto: transformers' NanoChat class when the model maps onto it exactly, else remote code")
    return p.parse_args(argv)


def export(args):
    out = os.path.abspath(args.out)
    if os.path.exists(out):
        raise BadInput(f"--out {out} already exists: pick a new directory or remove it")
    try:   # built beside --out, then renamed: a failure never leaves a half-written --out
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", dir=os.path.dirname(out))
    except OSError as e:
        raise BadInput(f"cannot write --out {out} ({e}): pick one whose parent exists and is writable") from None
    try:
        base_dir = get_base_dir()
        model, tok, meta = load_model(args.source, "cpu", args.model_tag or None, args.step, base_dir)
        dtype = {"bf16": "bfloat16", "fp32": "float32"}[args.dtype]
        how = write_model(model, tok, dtype, args.format, tmp)
        write_tokenizer(tok, model.config.sequence_len, tmp)
        with open(os.path.join(tmp, "README.md"), "w") as f:
            f.write(model_card(meta, how, base_dir))
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {out}: {how}")
    return out, how


def main(argv=None):
    with cli("export"):
        return export(parse_args(argv))


if __name__ == "__main__":
    main()
