"""scripts/export.py (a checkpoint as a transformers directory) and scripts/base_eval.py --hf-path.

Two tiny trained models in one temp base dir: "stock", with every optional piece off (GQA and a non-default rotary
base on, which transformers' NanoChat class has), and "recipe", the current RECIPE with a short window that bites.
Each is exported and loaded back with transformers offline; its logits, greedy generations, tokenizer and chat
template must equal ours.
"""

import os
import random
from dataclasses import asdict

import pytest
import torch

from nanochat.checkpoint import save_checkpoint
from nanochat.core_eval import evaluate_core
from nanochat.engine import Engine, SamplingParams
from nanochat.gpt import GPT, GPTConfig, config_from_depth
from nanochat.tokenizer import SPECIAL_TOKENS, Tokenizer
from scripts.base_eval import load_hf as base_eval_load_hf
from scripts.base_eval import main as base_eval_main
from scripts.export import main as export_main
from tests.test_core_eval import _varied_bundle_tasks, write_bundle

transformers = pytest.importorskip("transformers")

SEQ_LEN = 64
TEXTS = ["The capital of France is Paris. 12345 + 678 = 13023!", "Once upon a time,   there were three bears.\n\n",
         "def f(x):\n    return x ** 2  # squares\n", "Ünïcödé: naïve café, 東京, Привет мир, 🙂🚀, tabs\tand\r\n",
         "What's 2+2? It's 4. They'll say we're done; I've seen it.", "numbers 3.14159 and 2718281828 and 1,000,000"]
PROMPTS = ["The capital of France is", "Once upon a time, there", "def f(x):\n    return", "What's 2+2? It's"]
CONVERSATIONS = [
    [{"role": "user", "content": "Hi there!"}, {"role": "assistant", "content": "Hello, how can I help?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": [{"type": "text", "text": "Let me compute. "},
                                       {"type": "python", "text": "2+2"}, {"type": "python_output", "text": "4"},
                                       {"type": "text", "text": "It is 4."}]},
     {"role": "user", "content": "Thanks  \n café 🙂"}, {"role": "assistant", "content": "You're welcome."}],
    [{"role": "user", "content": "Only a question, no answer yet"}],
]


def trained_gpt(config, tok, steps=15):
    """A GPT after a few sign-descent steps on TEXTS: every weight (the zero-initialised ones too) moves off its
    init. (Not torch.optim: building its first optimizer imports torch's compiler, ~9 s.)"""
    torch.manual_seed(0)
    model = GPT(config)
    ids = [t for text in TEXTS * 4 for t in tok.encode(text, prepend=tok.bos_id)]
    data = torch.tensor(ids[:4 * (SEQ_LEN + 1)]).view(4, SEQ_LEN + 1)
    for _ in range(steps):
        model.zero_grad()
        model(data[:, :-1], targets=data[:, 1:]).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.01 * p.grad.sign()
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{tag: (our model, export dir)} for "stock" and "recipe", and the tokenizer, all under one temp base dir."""
    root = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NANOCHAT_BASE_DIR", str(root / "base"))
        tok = Tokenizer.train_from_iterator(TEXTS * 20, vocab_size=400)
        tok.save(str(root / "base" / "tokenizer"))
        os.makedirs(root / "base" / "report")
        (root / "base" / "report" / "report.md").write_text(
            "# report card\n\n## Summary\n\n| metric | BASE |\n|---|---|\n| CORE | 0.1234 |\n\n## Other\nstuff\n")
        V = tok.get_vocab_size()
        configs = {"stock": GPTConfig(sequence_len=SEQ_LEN, vocab_size=V, n_layer=2, n_head=4, n_kv_head=2,
                                      n_embd=64, rope_base=5000.0),
                   "recipe": config_from_depth(3, V, SEQ_LEN, aspect_ratio=32, head_dim=16, short_window=8)}
        models = {}
        for tag, config in configs.items():
            model = trained_gpt(config, tok)
            save_checkpoint(str(root / "base" / "chatsft_checkpoints" / tag), 5, model.state_dict(), {},
                            {"model_config": asdict(config)})
            out = root / f"hf_{tag}"
            export_main(["--source=sft", f"--model-tag={tag}", f"--out={out}", "--dtype=fp32"])
            models[tag] = (model, str(out))
        yield models, tok


def load_hf(path):
    return transformers.AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()


@pytest.mark.parametrize("tag", ["stock", "recipe"])
def test_logits_and_greedy_generation_match(exported, tag):
    models, tok = exported
    model, path = models[tag]
    hf = load_hf(path)
    files = set(os.listdir(path))
    assert ("gpt.py" in files) == (tag == "recipe")   # the stock class needs no code of ours
    assert type(hf).__name__ == ("NanoChatForCausalLM" if tag == "stock" else "NanoChatGPT")
    rows = [tok.encode(p, prepend=tok.bos_id) for p in PROMPTS]
    n = min(map(len, rows))
    x = torch.tensor([r[:n] for r in rows])
    with torch.no_grad():
        diff = (hf(input_ids=x).logits - model(x)).abs().max().item()
    assert diff < 1e-4, diff
    engine = Engine(model, tok)
    ours, _ = engine.generate_batch(rows, SamplingParams(temperature=0, max_tokens=32))
    stops = {tok.special_ids["<|assistant_end|>"], tok.bos_id}
    for ids, want in zip(rows, ours):
        with torch.no_grad():
            got = hf.generate(torch.tensor([ids]), max_new_tokens=32, do_sample=False)[0, len(ids):].tolist()
        cut = next((i for i, t in enumerate(got) if t in stops), len(got))   # the engine drops the stop token
        assert got[:cut] == want


def varied_strings(n=3000, seed=0):
    """Random mixes of words, digit runs, whitespace runs, punctuation, unicode and special-token text."""
    rng = random.Random(seed)
    pieces = ["hello", " world", "The", " cat's", "they'll", "I'M", "12", "3456789", " 0.5", "\n", "\n\n", "\r\n",
              "   ", "\t", " ", "  \n ", "!?", "...", " ---", "()", "é", "naïve", "東京", "Привет", "🙂", "🚀🚀",
              "\u200b", "\x00", "ǅ", "ﬁ", *SPECIAL_TOKENS, "<|", "|>", "<|bos", "€100", "x²", "١٢٣"]
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) for _ in range(n)]


def test_tokenizer_and_chat_template_match(exported):
    models, tok = exported
    hf = transformers.AutoTokenizer.from_pretrained(models["stock"][1])
    recipe = transformers.AutoTokenizer.from_pretrained(models["recipe"][1], trust_remote_code=True)
    assert recipe.encode(TEXTS[3]) == hf.encode(TEXTS[3])   # the same files in both exports
    strings = varied_strings() + TEXTS
    assert any("<|user_start|>" in s for s in strings)
    # the HF tokenizer splits special-token text out as the special token, as tiktoken's allowed_special="all" does
    ours = [tok.enc.encode(s, allowed_special="all") for s in strings]
    assert [hf.encode(s, add_special_tokens=False) for s in strings] == ours
    assert [hf.decode(ids) for ids in ours] == strings
    assert hf.bos_token_id == tok.bos_id and hf.convert_tokens_to_ids(SPECIAL_TOKENS) == list(tok.special_ids.values())
    for messages in CONVERSATIONS:
        got = hf.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        assert got == tok.render_conversation({"messages": messages})[0]
        prompt = hf.apply_chat_template(messages[:1] if len(messages) == 1 else messages[:-1],
                                        add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        assert prompt == tok.render_for_completion({"messages": messages if len(messages) == 1 else messages[:-1]})


def test_bf16_export(exported, tmp_path, monkeypatch):
    models, tok = exported
    model, path = models["stock"]
    monkeypatch.setenv("NANOCHAT_BASE_DIR", os.path.join(os.path.dirname(path), "base"))
    export_main(["--model-tag=stock", f"--out={tmp_path / 'bf16'}", "--format=remote"])   # the default dtype
    hf = load_hf(str(tmp_path / "bf16"))
    assert hf.dtype == torch.bfloat16 and type(hf).__name__ == "NanoChatGPT"   # remote code though stock would do
    x = torch.tensor([tok.encode(PROMPTS[0], prepend=tok.bos_id)])
    with torch.no_grad():
        assert (hf(input_ids=x).logits.float() - model(x)).abs().max() < 0.1   # bf16 weights and activations


def test_model_card(exported):
    models, _ = exported
    with open(os.path.join(models["recipe"][1], "README.md")) as f:
        card = f.read()
    assert "trust_remote_code=True" in card and "smear" in card   # how it was written, and why
    assert "| CORE | 0.1234 |" in card and "stuff" not in card   # the report's summary table, only that


def test_bad_input_exits_2_and_writes_nothing(exported, tmp_path, monkeypatch, capsys):
    models, _ = exported
    monkeypatch.setenv("NANOCHAT_BASE_DIR", os.path.join(os.path.dirname(models["stock"][1]), "base"))
    out = f"--out={tmp_path / 'a'}"
    cases = [
        ["--model-tag=nope", out],                                  # no such checkpoint
        ["--model-tag=stock", "--step=99", out],                    # no such step
        ["--source=base", out],                                     # no base checkpoint at all
        ["--model-tag=recipe", "--format=stock", out],              # the stock class cannot express the recipe
        ["--model-tag=stock", f"--out={tmp_path / 'missing' / 'a'}"],   # the parent does not exist
        ["--model-tag=stock", f"--out={models['recipe'][1]}"],          # already exists
    ]
    if os.geteuid() != 0:   # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o500)
        cases.append(["--model-tag=stock", f"--out={tmp_path / 'ro' / 'a'}"])
    for args in cases:
        with pytest.raises(SystemExit) as e:
            export_main(args)
        assert e.value.code == 2, args
        assert "export: error:" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == (["ro"] if os.geteuid() != 0 else [])   # no temp dir left behind


# ----------------------------------------------------------------------------- base_eval --hf-path

def tiny_gpt2(path, n_positions=64):
    """A random GPT-2-shaped model and a byte-level BPE tokenizer trained here (no network), saved to path."""
    from tokenizers import Tokenizer as HFTok
    from tokenizers import decoders, models, pre_tokenizers, trainers
    bpe = HFTok(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(TEXTS * 10, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>",
                                               eos_token="<|endoftext|>")
    tok.save_pretrained(path)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(tok), n_positions=n_positions, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    transformers.GPT2LMHeadModel(config).save_pretrained(path)
    return path


HF_ARGS = ["--device-type=cpu", "--sample-tokens=2", "--batch-size=5"]


def test_base_eval_hf_path_runs_core_on_gpt2(tmp_path, monkeypatch):
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path / "base"))
    bundle = write_bundle(tmp_path / "bundle", _varied_bundle_tasks())
    summary = base_eval_main(["--hf-path", tiny_gpt2(str(tmp_path / "gpt2")), f"--eval-bundle={bundle}", *HF_ARGS])
    assert -1 <= summary["core"] <= 1 and "val_bpb" not in summary
    assert not os.path.exists(tmp_path / "base" / "eval")   # another model's numbers stay out of this run's files
    with pytest.raises(SystemExit) as e:   # a path that is not a model
        base_eval_main(["--hf-path", str(tmp_path / "nothing"), f"--eval-bundle={bundle}", *HF_ARGS])
    assert e.value.code == 2


def test_base_eval_hf_path_context_is_the_models_own_capped_at_2048(tmp_path):
    """CORE crops to the model's context; one that declares a long one (or none) is evaluated at 2,048."""
    for name, positions, context in [("short", 64, 64), ("long", 8192, 2048)]:
        model, _ = base_eval_load_hf(tiny_gpt2(str(tmp_path / name), n_positions=positions), "cpu", False)
        assert model.config.sequence_len == context


def test_base_eval_hf_path_of_an_export_equals_ours(exported, tmp_path, monkeypatch):
    """CORE of the exported recipe model through transformers (its tokenizer, its remote code) equals ours."""
    models, tok = exported
    model, path = models["recipe"]
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path / "base"))
    bundle = write_bundle(tmp_path / "bundle", _varied_bundle_tasks())
    summary = base_eval_main(["--hf-path", path, "--trust-remote-code", f"--eval-bundle={bundle}", *HF_ARGS])
    assert summary["core"] == pytest.approx(evaluate_core(model, tok, bundle, "cpu")["core"], abs=1e-9)
