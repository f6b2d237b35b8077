"""Bits per byte: the validation loss that does not depend on the tokenizer (nats / ln 2 / UTF-8 bytes);
special tokens and -1 targets count in neither sum.
"""

import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from nanochat.common import all_ranks_sum


@torch.no_grad()
def evaluate_bpb(model, batches, steps, token_bytes, autocast=None):
    """Mean bits per byte over `steps` batches of (inputs, targets), summed across ranks if distributed.

    model(x, y, loss_reduction="none") must return the per-position loss in nats, shape (B*T,).
    token_bytes: (vocab,) int tensor of bytes per token id (0 for special tokens).
    """
    token_bytes = token_bytes.to(next(model.parameters()).device)
    total_nats = torch.zeros((), dtype=torch.float64, device=token_bytes.device)
    total_bytes = torch.zeros((), dtype=torch.int64, device=token_bytes.device)
    for _ in range(steps):
        x, y = next(batches)
        with (autocast or nullcontext)():
            loss = model(x, y, loss_reduction="none").view(-1).double()   # (B*T,)
        y = y.reshape(-1)
        nbytes = torch.where(y >= 0, token_bytes[y.clamp(min=0)], 0)      # (B*T,) bytes per target
        total_nats += (loss * (nbytes > 0)).sum()
        total_bytes += nbytes.sum()
    nats, nbytes = all_ranks_sum([total_nats.item(), total_bytes.item()], token_bytes.device)   # float64 both
    if nbytes == 0:
        raise ValueError("no target bytes to evaluate: every target was ignored or a special token")
    return nats / (math.log(2) * nbytes)


@torch.no_grad()
def check_model_is_honest(model, x, y, autocast=None, tol=2e-2):
    """Raise unless the model is a causal LM on (x, y): its reported loss is the cross-entropy of its own logits,
    and first-half logits ignore the second half of the input (else it reads targets off its inputs). Run on
    agent-edited models before trusting evaluate_bpb; `tol` is bf16 rounding, far below what lookahead changes.
    """
    T, V = x.size(1), model.config.vocab_size
    with (autocast or nullcontext)():
        logits = model(x).float()
        loss = model(x, y, loss_reduction="none").float()
        shifted = x.clone()
        shifted[:, T // 2:] = (shifted[:, T // 2:] + 1) % V
        logits2 = model(shifted).float()
    reference = F.cross_entropy(logits.view(-1, V), y.reshape(-1), ignore_index=-1, reduction="none")
    if not torch.allclose(loss.view(-1), reference, rtol=tol, atol=tol):
        raise ValueError("the model's loss is not the cross-entropy of its logits")
    if not torch.allclose(logits[:, :T // 2], logits2[:, :T // 2], rtol=tol, atol=tol):
        raise ValueError("the model is not causal: its predictions change with later inputs")
