"""A tiny SFT-ed math model for the RL tests, made without scripts/chat_sft.py.

`make_sft_checkpoint(base_dir)` trains a small BPE tokenizer on synthetic math problems, then a small GPT
with a short supervised loop on those problems rendered as conversations (tool calls included, the chat
template's mask deciding what is trained on), and saves it as chatsft_checkpoints/<tag> exactly where
scripts/chat_rl.py looks for an SFT model. It is deliberately undertrained: sampled at temperature 1 (top-k 50)
it solves about 45% of held-out problems after 120 steps and about 65% after 200, so the samples of one
problem often disagree, which is what RL needs to learn anything.
"""

import os
from dataclasses import asdict

import torch

from nanochat.chat_data import pad_batch
from nanochat.checkpoint import save_checkpoint
from nanochat.gpt import GPT, GPTConfig
from nanochat.synthetic import generate_math_problems
from nanochat.tokenizer import Tokenizer, tokenizer_dir
from nanochat.training import build_optimizer, lr_multiplier, set_schedule
from tasks.synthetic import SyntheticMath

SEQ_LEN = 192


def train_tokenizer(base_dir, vocab_size=512):
    """BPE on the question and answer text of 2,000 synthetic problems; saved where get_tokenizer looks."""
    texts = [p["question"] + "\n" + p["answer"] for p in generate_math_problems(12345, 2000)]
    tokenizer = Tokenizer.train_from_iterator(texts, vocab_size)
    tokenizer.save(tokenizer_dir(str(base_dir)))
    return tokenizer


def make_sft_checkpoint(base_dir, tag="tiny", steps=200, batch_size=16, seed=0, n_layer=2, n_embd=128):
    """Train tokenizer + tiny model on SyntheticMath(seed=0) and save it as an SFT checkpoint. Returns its dir."""
    tokenizer = train_tokenizer(base_dir)
    torch.manual_seed(seed)
    config = GPTConfig(sequence_len=SEQ_LEN, vocab_size=tokenizer.get_vocab_size(), n_layer=n_layer,
                       n_head=n_embd // 64, n_kv_head=n_embd // 64, n_embd=n_embd)
    model = GPT(config)
    model.init_weights()
    optimizer = build_optimizer(model, matrix_lr=0.04, embedding_lr=0.3, unembedding_lr=0.02)
    task = SyntheticMath(size=steps * batch_size, seed=0)
    model.train()
    for step in range(steps):
        set_schedule(optimizer, lr_multiplier(step / steps, warmdown_ratio=0.3))
        rendered = [tokenizer.render_conversation(task[step * batch_size + i]) for i in range(batch_size)]
        x, y, _ = pad_batch(rendered, SEQ_LEN, tokenizer.bos_id)
        model(x, y).backward()
        optimizer.step()
        model.zero_grad(set_to_none=True)
    ckpt_dir = os.path.join(str(base_dir), "chatsft_checkpoints", tag)
    meta = {"model_config": asdict(config), "train_config": {"source": "tests/rl_utils.py", "steps": steps}}
    save_checkpoint(ckpt_dir, steps, model.state_dict(), {}, meta)
    return ckpt_dir
