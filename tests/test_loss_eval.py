"""Bits per byte against values computed by hand."""

import math

import pytest
import torch

from nanochat.loss_eval import evaluate_bpb


class Uniform(torch.nn.Module):
    """Equal logits everywhere: the loss of every target is exactly ln(vocab)."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, y, loss_reduction="mean"):
        logits = torch.zeros(*x.shape, self.vocab)
        return torch.nn.functional.cross_entropy(logits.view(-1, self.vocab), y.reshape(-1), ignore_index=-1,
                                                 reduction=loss_reduction)


def batches(vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    while True:
        x = torch.randint(0, vocab, (3, 16), generator=g)
        y = torch.randint(0, vocab, (3, 16), generator=g)
        y[0, :5] = -1          # ignored targets
        yield x, y


def test_uniform_model_bpb_is_log2_vocab_over_mean_bytes():
    vocab = 50
    token_bytes = torch.randint(1, 6, (vocab,))
    token_bytes[:3] = 0       # special tokens: no bytes, not counted
    steps = 4
    got = evaluate_bpb(Uniform(vocab), batches(vocab), steps, token_bytes)

    counted, nbytes = 0, 0
    it = batches(vocab)
    for _ in range(steps):
        _, y = next(it)
        for t in y.view(-1).tolist():
            if t >= 0 and token_bytes[t] > 0:
                counted += 1
                nbytes += int(token_bytes[t])
    # every counted token costs log2(vocab) bits; bpb = log2(vocab) / (mean bytes per counted token)
    assert got == pytest.approx(math.log2(vocab) / (nbytes / counted), rel=1e-6)  # the loss itself is float32


def test_all_targets_ignored_is_an_error():
    vocab = 10
    def ignored():
        while True:
            yield torch.zeros(1, 4, dtype=torch.long), torch.full((1, 4), -1)
    with pytest.raises(ValueError, match="no target bytes"):
        evaluate_bpb(Uniform(vocab), ignored(), 2, torch.ones(vocab, dtype=torch.long))


# ----------------------------------------------------------------------------- the honesty check of base_eval

class Cheat(torch.nn.Module):
    """A real GPT, bent one of two ways an edited gpt.py could game bits per byte."""

    def __init__(self, model, how):
        super().__init__()
        self.model, self.how, self.config = model, how, model.config

    def forward(self, x, y=None, loss_reduction="mean"):
        if self.how == "lookahead":   # the next input is the target: copy it into the logits
            logits = self.model(x)
            logits = logits + 30.0 * torch.nn.functional.one_hot(torch.roll(x, -1, 1), self.config.vocab_size)
            if y is None:
                return logits
            return torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1),
                                                     ignore_index=-1, reduction=loss_reduction)
        out = self.model(x, y, loss_reduction=loss_reduction)
        return out if y is None else out * 0.5   # "fake": a loss smaller than the logits say


def test_honesty_check_passes_a_real_model_and_catches_cheats():
    from nanochat.gpt import GPT, config_from_depth
    from nanochat.loss_eval import check_model_is_honest
    torch.manual_seed(0)
    model = GPT(config_from_depth(2, 64, 32, aspect_ratio=32, head_dim=32))   # the recipe: windows, smear, ...
    model.init_weights()
    model.eval()
    x = torch.randint(0, 64, (2, 32))
    y = torch.roll(x, -1, 1)
    y[:, -1] = -1
    check_model_is_honest(model, x, y)
    for how in ("lookahead", "fake"):
        with pytest.raises(ValueError):
            check_model_is_honest(Cheat(model, how), x, y)
