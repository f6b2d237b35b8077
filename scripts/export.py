"""
Export a checkpoint as a directory transformers loads offline (AutoModelForCausalLM and AutoTokenizer, whose chat
template renders a conversation to exactly our ids). A model with the optional pieces off maps onto transformers' own
NanoChat class; any other (the RECIPE) is written as remote code: gpt.py and nanochat/hf_modeling.py copied in.
The directory is built beside --out and renamed into place last: a failure never leaves a half-written one.
"""

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from nanochat.checkpoint import add_checkpoint_args, load_model
from nanochat.common import BadInput, cli, get_base_dir
from nanochat.gpt import GPTConfig

# GPTConfig fields transformers' NanoChat class takes at any value (windows are checked through GPTConfig.windows)
STOCK_FIELDS = {"sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "softcap", "rope_base",
                "window_pattern", "short_window"}
STOCK_NAMES = {"attn.c_q": "self_attn.q_proj", "attn.c_k": "self_attn.k_proj", "attn.c_v": "self_attn.v_proj",
               "attn.c_proj": "self_attn.o_proj", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}

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
    """What transformers' NanoChat class lacks of this model: optional pieces on, a short window ([] if none)."""
    off = asdict(GPTConfig())
    why = [f"{k}={v!r}" for k, v in asdict(cfg).items() if k not in STOCK_FIELDS and v != off[k]]
    return why + ([f"window_pattern={cfg.window_pattern!r}"] if any(cfg.windows) else [])


def stock_weights(model):
    """Our state dict under transformers' NanoChat names."""
    cfg, sd = model.config, model.state_dict()
    # transformers turns each rotary pair the other way round (its rotate_half is (x2, -x1)). Negating the second
    # half of every query and key head turns our rotation into theirs; dot products and RMS norms do not change.
    flip = torch.ones(cfg.head_dim, 1).index_fill_(0, torch.arange(cfg.head_dim // 2, cfg.head_dim), -1)
    out = {"model.embed_tokens.weight": sd["wte.weight"], "lm_head.weight": sd["lm_head.weight"]}
    for i in range(cfg.n_layer):
        for ours, theirs in STOCK_NAMES.items():
            w = sd[f"blocks.{i}.{ours}.weight"]
            if ours in ("attn.c_q", "attn.c_k"):
                w = (w.view(-1, cfg.head_dim, w.size(1)) * flip).view_as(w)
            out[f"model.layers.{i}.{theirs}.weight"] = w
    return out


def hf_tokenizer(tok):
    """Our tiktoken BPE (mergeable ranks + split pattern + specials) as a tokenizers.Tokenizer."""
    from transformers.convert_slow_tokenizer import TikTokenConverter
    # tiktoken merges the adjacent pair whose union has the lowest rank; the converter lists every split of every
    # token into two tokens, ordered by the union's rank, so transformers' BPE (lowest list position first) does too.
    specials = sorted(tok.special_ids, key=tok.special_ids.get)   # ids n, n+1, ... as ours
    converter = TikTokenConverter(pattern=tok.pattern, extra_special_tokens=specials)
    converter.load_tiktoken_bpe = lambda _: tok.mergeable_ranks   # it reads a file; our ranks are in memory
    return converter.converted()


def write_model(model, tok, dtype, fmt, out):
    """Weights and config.json into out; returns how the model was written, and why, in words."""
    from safetensors.torch import save_file
    cfg, why = model.config, stock_blockers(model.config)
    if fmt == "stock" and why:
        raise BadInput(f"transformers' NanoChat class cannot express {', '.join(why)}: drop --format stock (the "
                       "export is then remote code, loaded with trust_remote_code=True)")
    config = dict(bos_token_id=tok.bos_id, pad_token_id=tok.bos_id, dtype=dtype,
                  max_position_embeddings=cfg.sequence_len,
                  eos_token_id=[tok.special_ids["<|assistant_end|>"], tok.bos_id])   # the engine's stop tokens
    if fmt == "remote" or why:
        weights = {f"gpt.{k}": v for k, v in model.state_dict().items()}
        for name in ("gpt.py", "hf_modeling.py"):   # hf_modeling imports .gpt: transformers loads both
            shutil.copy(os.path.join(os.path.dirname(__file__), "..", "nanochat", name), out)
        config |= dict(model_type="nanochat_gpt", architectures=["NanoChatGPT"], gpt=asdict(cfg), auto_map={
            "AutoConfig": "hf_modeling.NanoChatGPTConfig", "AutoModelForCausalLM": "hf_modeling.NanoChatGPT"})
        how = "remote code (load with trust_remote_code=True): " + (
            f"transformers' NanoChat class lacks {', '.join(why)}" if why else "--format remote")
    else:
        weights = stock_weights(model)
        config |= dict(model_type="nanochat", architectures=["NanoChatForCausalLM"], vocab_size=cfg.vocab_size,
                       hidden_size=cfg.n_embd, intermediate_size=4 * cfg.n_embd, num_hidden_layers=cfg.n_layer,
                       num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_kv_head, hidden_act="relu2",
                       rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_base},
                       final_logit_softcapping=cfg.softcap or None, tie_word_embeddings=False,
                       rms_norm_eps=torch.finfo(torch.float32).eps)   # F.rms_norm's default eps
        how = "transformers' own NanoChat class (the model has none of the optional pieces it lacks)"
    Path(out, "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.to(getattr(torch, dtype)).contiguous() for k, v in weights.items()},
              os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    return how


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Export a checkpoint as a directory transformers loads")
    add_checkpoint_args(p, use="to export")
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
        model, tok, meta = load_model(args.source, "cpu", args.model_tag, args.step, base_dir)
        how = write_model(model, tok, {"bf16": "bfloat16", "fp32": "float32"}[args.dtype], args.format, tmp)
        hf_tokenizer(tok).save(os.path.join(tmp, "tokenizer.json"))
        Path(tmp, "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|bos|>", "pad_token": "<|bos|>",
            "eos_token": "<|assistant_end|>", "model_max_length": model.config.sequence_len,
            "chat_template": CHAT_TEMPLATE}))
        card = (f"# nanochat {os.path.basename(meta['checkpoint_dir'])}, step {meta['step']}\n\n"
                f"Exported by nanochat's scripts/export.py from {meta['checkpoint_dir']} as {how}.\n")
        report = Path(base_dir, "report", "report.md")
        text = report.read_text() if report.exists() else ""
        if "\n## Summary" in text:   # the training report's summary section (its table), if it has one
            card += "\n## Training report summary" + text.split("\n## Summary")[1].split("\n## ")[0]
        Path(tmp, "README.md").write_text(card)
        os.chmod(tmp, 0o755)   # mkdtemp made it private
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {out}: {how}")
    return how


def main(argv=None):
    with cli("export"):
        return export(parse_args(argv))


if __name__ == "__main__":
    main()
