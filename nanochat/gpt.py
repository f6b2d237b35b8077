"""
The GPT model: a decoder-only transformer (rotary, RMSNorm, QK-norm, ReLU^2, GQA, logit softcap) written as
plain math and shapes, with the recipe's optional pieces as GPTConfig switches, and KVCache for decoding.
Deliberately not here: optimizers (param_groups() only sorts parameters by role), data, ranks, devices,
autocast and sampling; the caller does those.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

# The rotary tables cover this many times sequence_len, so inference may run past the training context.
ROTARY_HEADROOM = 10
# Gates (value embeddings, smear) read this many leading channels of their input. A fixed count keeps
# an Adam step's effect on the gate's logit the same at every width (a sum over 32 inputs, not n_embd).
GATE_CHANNELS = 32


@dataclass
class GPTConfig:
    sequence_len: int = 1024    # training context length
    vocab_size: int = 32768
    n_layer: int = 12
    n_head: int = 6             # query heads
    n_kv_head: int = 6          # key/value heads; fewer than n_head means grouped-query attention
    n_embd: int = 768
    softcap: float = 15.0       # logits = softcap * tanh(logits / softcap); 0 turns it off
    rope_base: float = 10000.0  # rotary base: pair i turns by position * rope_base^(-2i / head_dim)
    # The optional pieces below default to off, which is the model every older checkpoint holds;
    # config_from_depth() sets the current recipe.
    qk_scale: float = 1.0       # attention logits = qk_scale * q.k / sqrt(head_dim) (q, k unit-RMS)
    window_pattern: str = "L"   # per layer, tiled: L = full context, S = short window; the last layer is always L
    short_window: int = 0       # keys an S layer sees; 0 = a quarter of the context rounded up to 128
    value_embeds: bool = False  # value embeddings on every other layer, counted back from the last
    layer_scalars: bool = False  # learned per-layer weights on the residual stream and the re-injected embedding
    smear: bool = False         # mix the previous token's embedding into each token's, through a gate
    backout: bool = False       # subtract a learned fraction of the mid-depth residual before lm_head

    def __post_init__(self):   # a config comes from flags or a checkpoint's JSON: say what is wrong with it
        sizes = (self.sequence_len, self.vocab_size, self.n_layer, self.n_head, self.n_kv_head, self.n_embd)
        if not all(type(v) is int and v > 0 for v in sizes) or self.n_embd % self.n_head or self.head_dim % 2 \
                or self.n_head % self.n_kv_head:   # rotary turns pairs; a key/value head serves whole query heads
            raise ValueError(f"{self}: sizes (n_layer, ...) must be positive ints, n_embd = n_head x an even "
                             "head_dim, and n_kv_head must divide n_head")
        if type(self.short_window) is not int or self.short_window < 0 or self.softcap < 0 \
                or not self.window_pattern or set(self.window_pattern) - set("SL"):
            raise ValueError(f"{self}: short_window must be an int >= 0, softcap >= 0 and window_pattern a "
                             "string of S (short window) and L (full context)")

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    @property
    def windows(self):
        """Keys each query may see, per layer (itself included); None = the whole context (even past
        sequence_len at inference). The pattern is tiled over the layers; the last layer is always full. A
        short window defaults to a quarter of the context rounded up to 128, flash-attention's tile."""
        short = self.short_window or -(-self.sequence_len // 4 // 128) * 128
        short = None if short >= self.sequence_len else short
        sizes = [short if self.window_pattern[i % len(self.window_pattern)] == "S" else None
                 for i in range(self.n_layer)]
        sizes[-1] = None
        return sizes

    def has_value_embed(self, layer):
        """Value embeddings go on the last layer and every other one before it (d4: layers 1 and 3)."""
        return self.value_embeds and (self.n_layer - 1 - layer) % 2 == 0


# The architecture every new model gets; each entry is measured in docs/LOG.md.
RECIPE = dict(qk_scale=1.0, rope_base=10000.0, window_pattern="SSSL", short_window=0, value_embeds=True,
              layer_scalars=True, smear=True, backout=True)


def config_from_depth(depth, vocab_size, sequence_len, aspect_ratio=64, head_dim=128, **overrides):
    """The one size dial: every shape of the model follows from its depth (number of blocks).
    `overrides` replace entries of RECIPE (for ablations)."""
    # Width grows linearly with depth (aspect ratio 64: d12 -> 768, d20 -> 1280, d32 -> 2048), so one
    # dial scales width and depth together. It is rounded UP to a whole number of heads of a fixed size:
    # attention kernels are tuned for head sizes like 64/128, and extra width becomes extra heads.
    n_embd = -(-depth * aspect_ratio // head_dim) * head_dim  # ceil to a multiple of head_dim
    n_head = n_embd // head_dim
    # n_kv_head = n_head: plain multi-head attention. GQA shrinks the KV cache, which pays off for long
    # contexts and big serving batches, not at our sizes; the model supports it, the default stays simplest.
    recipe = dict(RECIPE, **overrides)
    return GPTConfig(sequence_len=sequence_len, vocab_size=vocab_size, n_layer=depth,
                     n_head=n_head, n_kv_head=n_head, n_embd=n_embd, **recipe)


class Linear(nn.Linear):
    """A bias-free nn.Linear. Decoding on a CPU (a few rows, no autograd) multiplies by a cached contiguous copy
    of W^T: MKL streams that layout faster than W's own (all 25 matrix-vector products of a depth-4 decode step:
    1.4 vs 2.4 ms at batch 1, 3.4 vs 4.6 ms at batch 8), and such products are most of a CPU decode step. The
    copy costs the weights' memory once more and is remade whenever the weight changes (RL trains what it
    samples from). Elsewhere (GPUs, training, long inputs) it is F.linear."""

    def __init__(self, in_features, out_features):
        super().__init__(in_features, out_features, bias=False)
        self._w_t = (None, None)  # (the weight's (version, address, dtype) when copied, W^T)

    def forward(self, x):
        w = self.weight
        # In this order, so that torch.compile (training, evaluation) never traces is_inference().
        if torch.is_grad_enabled() or w.device.type != "cpu" or x.numel() > 64 * w.size(1) or w.is_inference():
            return F.linear(x, w)
        key = (w._version, w.data_ptr(), w.dtype)  # an in-place update bumps the version
        if self._w_t[0] != key:
            self._w_t = (key, w.t().contiguous())
        return x @ self._w_t[1]


def norm(x):
    """Parameter-free RMSNorm over the last dimension."""
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(length, head_dim, base, device=None):
    """cos, sin of shape (length, head_dim // 2): pair i at position t turns by angle t * base^(-2i/head_dim)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    angles = torch.outer(torch.arange(length, dtype=torch.float32, device=device), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x, cos, sin):
    """Turn each pair (x[..., i], x[..., i + D/2]) of x (B, T, H, D); cos/sin broadcast as (B|1, T, 1, D/2)."""
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # fp32 tables, bf16 activations under autocast
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


_FA3 = None   # the flash-attention-3 module once find_flash_attn3() has found it usable, else None


def find_flash_attn3():
    """Looks for flash-attention-3 (CUDA, compute capability 9.x, module installed) and remembers the answer
    in _FA3. Called when a GPT is built, outside any compiled code (torch.compile would otherwise trace
    the import); never at import time and never installs anything: a missing module just means SDPA."""
    global _FA3
    _FA3 = None
    if torch.cuda.is_available() and torch.cuda.get_device_capability()[0] == 9:
        try:
            import flash_attn_interface as _FA3
        except ImportError:
            pass
    return _FA3


def causal_attention(q, k, v, window=None, scale=None):
    """Training-path attention. q (B, T, H, D), k/v (B, T, Hkv, D) -> (B, T, H, D).

    window: each query sees the last `window` keys (itself included); None = all earlier keys.
    scale: the softmax scale (None: 1/sqrt(D)).
    """
    T = q.size(1)
    windowed = window is not None and window < T
    if _FA3 is not None and q.is_cuda and q.dtype in (torch.bfloat16, torch.float16):
        # flash-attention counts the window without the query itself: (left, right) = (window - 1, 0)
        y = _FA3.flash_attn_func(q, k, v, softmax_scale=scale, causal=True,
                                 window_size=(window - 1, 0) if windowed else (-1, -1))
        return y[0] if isinstance(y, tuple) else y  # some versions also return the log-sum-exp
    mask = None
    if windowed:
        i = torch.arange(T, device=q.device)
        behind = i[:, None] - i[None, :]  # (T, T): how far key j lies behind query i
        mask = (behind >= 0) & (behind < window)
    y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask,
                                       is_causal=mask is None, scale=scale, enable_gqa=k.size(2) != q.size(2))
    return y.transpose(1, 2)


class KVCache:
    """Keys and values of past tokens, for decoding one (or a few) tokens at a time.

    k, v: (num_layers, B, max_len, num_kv_heads, head_dim), flash-attention's layout, in the compute dtype (what
    the forward emits, so neither writes nor reads convert). lengths: (B,) int32, tokens cached per row.
    last_token: (B,) long, each row's latest token (smear mixes it into the next one; -1 when empty).
    Rows are independent: row b's next tokens go to positions lengths[b], lengths[b] + 1, ... so a
    server can batch requests that are at different points of their conversations. Slots at or past
    lengths[b] hold stale data that attention masks out, so clearing a row only resets its length.
    """

    def __init__(self, batch_size, num_layers, num_kv_heads, head_dim, max_len, device=None,
                 dtype=torch.float32):
        assert min(batch_size, num_layers, num_kv_heads, head_dim, max_len) > 0
        shape = (num_layers, batch_size, max_len, num_kv_heads, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.lengths = torch.zeros(batch_size, dtype=torch.int32, device=device)
        self.last_token = torch.full((batch_size,), -1, dtype=torch.long, device=device)

    @property
    def batch_size(self):
        return self.k.size(1)

    @property
    def max_len(self):
        return self.k.size(2)

    def clear_row_(self, row):
        """Forget one row, e.g. a finished request whose slot a new one will take."""
        self.lengths[row] = 0
        self.last_token[row] = -1

    def row_copy_(self, dst_row, src_cache, src_row):
        """Copy row src_row of src_cache (e.g. a freshly prefilled prompt) into row dst_row of this cache."""
        n = int(src_cache.lengths[src_row])
        assert self.k[:, 0, 0].shape == src_cache.k[:, 0, 0].shape and n <= self.max_len, "caches of one model"
        self.k[:, dst_row, :n] = src_cache.k[:, src_row, :n]
        self.v[:, dst_row, :n] = src_cache.v[:, src_row, :n]
        self.lengths[dst_row] = n
        self.last_token[dst_row] = src_cache.last_token[src_row]


def cached_attention(q, k, v, cache, layer_idx, slots, span, window=None, scale=None):
    """Attention that appends this step's k/v to the cache, then reads the cached prefix.
    q (B, T, H, D), k/v (B, T, Hkv, D); slots (rows (B, 1), positions (B, T)): where each new token goes;
    span (L, mask): L = the longest row after this step; mask (B, 1, T, L) bool, True where a query may look
    (None: everywhere)."""
    k_cache, v_cache = cache.k[layer_idx], cache.v[layer_idx]  # (B, max_len, Hkv, D), views
    dtype = k_cache.dtype
    if _FA3 is not None and q.is_cuda and dtype in (torch.bfloat16, torch.float16):
        # One kernel writes k/v at each row's length and attends to that row's prefix (causal, windowed).
        y = _FA3.flash_attn_with_kvcache(q.to(dtype), k_cache, v_cache, k=k.to(dtype), v=v.to(dtype),
                                         cache_seqlens=cache.lengths, softmax_scale=scale, causal=True,
                                         window_size=(window - 1, 0) if window else (-1, -1))
        return (y[0] if isinstance(y, tuple) else y).to(q.dtype)
    k_cache[slots] = k.to(dtype)  # the (B, T) index pair selects (B, T, Hkv, D): k's own layout
    v_cache[slots] = v.to(dtype)
    L, attn_mask = span
    y = F.scaled_dot_product_attention(q.transpose(1, 2).to(dtype), k_cache[:, :L].transpose(1, 2),
                                       v_cache[:, :L].transpose(1, 2), attn_mask=attn_mask, scale=scale,
                                       enable_gqa=k.size(2) != q.size(2))
    return y.transpose(1, 2).to(q.dtype)


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.window = config.windows[layer_idx]
        self.scale = config.qk_scale / self.head_dim ** 0.5
        C = config.n_embd
        self.c_q = Linear(C, self.n_head * self.head_dim)
        self.c_k = Linear(C, self.n_kv_head * self.head_dim)
        self.c_v = Linear(C, self.n_kv_head * self.head_dim)
        self.c_proj = Linear(C, C)
        # Value embedding gate: how much of the token's own value embedding each kv head mixes in
        # (ResFormer-style value residual, arXiv 2410.17897; the per-head gate follows modded-nanogpt).
        self.ve_gate = None
        if config.has_value_embed(layer_idx):
            self.ve_gate = Linear(min(GATE_CHANNELS, C), self.n_kv_head)

    def forward(self, x, cos, sin, ve=None, kv_cache=None, slots=None, attn_masks=None):
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)  # (B, T, H, D)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)  # (B, T, Hkv, D)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)  # (B, T, Hkv, D)
        if ve is not None:
            # Gate in (0, 2), exactly 1 at init (zero weights): v + ve, and ve itself starts at zero.
            gate = 2 * torch.sigmoid(self.ve_gate(x[..., :GATE_CHANNELS]))  # (B, T, Hkv)
            v = v + gate.unsqueeze(-1) * ve.view(B, T, self.n_kv_head, self.head_dim).to(v.dtype)
        # QK-norm: unit-RMS queries and keys bound the attention logits by qk_scale * sqrt(D), which keeps
        # attention from saturating early in training. (Rotation keeps norms, so the order is free.)
        # Queries and keys go through rotary and the norm together: half the ops (decoding is op-bound).
        qk = norm(apply_rotary(torch.cat([q, k], dim=2), cos, sin)).to(v.dtype)  # rms_norm may upcast: one dtype
        q, k = qk.split([self.n_head, self.n_kv_head], dim=2)
        if kv_cache is None:
            y = causal_attention(q, k, v, self.window, self.scale)
        else:
            y = cached_attention(q, k, v, kv_cache, self.layer_idx, slots, attn_masks[self.window], self.window,
                                 self.scale)
        return self.c_proj(y.reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)).square())  # ReLU^2: cheap, and beats GELU at this scale


class Block(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer_idx)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, ve=None, kv_cache=None, slots=None, attn_masks=None):
        x = x + self.attn(norm(x), cos, sin, ve, kv_cache, slots, attn_masks)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        C, L = config.n_embd, config.n_layer
        self.wte = nn.Embedding(config.vocab_size, C)
        self.blocks = nn.ModuleList([Block(config, i) for i in range(L)])
        self.lm_head = Linear(C, config.vocab_size)
        kv_dim = config.n_kv_head * config.head_dim
        self.value_embeds = nn.ModuleDict({str(i): nn.Embedding(config.vocab_size, kv_dim)
                                           for i in range(L) if config.has_value_embed(i)})
        if config.layer_scalars:
            # Before block i: x <- resid_lambdas[i] * x + x0_lambdas[i] * x0, x0 the (smeared) embedding.
            self.resid_lambdas = nn.Parameter(torch.empty(L))
            self.x0_lambdas = nn.Parameter(torch.empty(L))
        if config.smear:
            self.smear_gate = Linear(min(GATE_CHANNELS, C), 1)
            self.smear_lambda = nn.Parameter(torch.empty(()))
        if config.backout:
            self.backout_lambda = nn.Parameter(torch.empty(()))
        # Rotary tables are derived data: non-persistent, so checkpoints hold only weights.
        rotary_len = config.sequence_len * ROTARY_HEADROOM
        self.register_buffer("cos", torch.empty(rotary_len, config.head_dim // 2), persistent=False)
        self.register_buffer("sin", torch.empty(rotary_len, config.head_dim // 2), persistent=False)
        self.init_weights()
        find_flash_attn3()

    @torch.no_grad()
    def init_weights(self):
        """Fill every weight and the rotary tables (deterministic given torch's seed); call again after to_empty()."""
        # Embeddings N(0, 1): the RMSNorm right after the lookup fixes their scale anyway.
        nn.init.normal_(self.wte.weight, std=1.0)
        # Input projections std 1/sqrt(fan_in): unit-RMS inputs give unit-RMS outputs.
        # Output projections start at zero, so every residual branch starts as the identity and the
        # residual stream is exactly the normed embedding at init; their gradient is not zero, so
        # they move on the first step and the branches open up gradually.
        # lm_head std 0.001: logits start near 0, the first prediction is near uniform, loss ~ ln(vocab).
        for block in self.blocks:
            for linear in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                nn.init.normal_(linear.weight, std=linear.in_features ** -0.5)
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)
            if block.attn.ve_gate is not None:
                nn.init.zeros_(block.attn.ve_gate.weight)  # gate exactly 1
        nn.init.normal_(self.lm_head.weight, std=0.001)
        # Optional pieces start as the identity (zeros; scalars at (1, 0)); each gradient is non-zero at once.
        for ve in self.value_embeds.values():
            nn.init.zeros_(ve.weight)
        if self.config.layer_scalars:
            nn.init.ones_(self.resid_lambdas)
            nn.init.zeros_(self.x0_lambdas)
        if self.config.smear:
            nn.init.zeros_(self.smear_gate.weight)
            nn.init.zeros_(self.smear_lambda)
        if self.config.backout:
            nn.init.zeros_(self.backout_lambda)
        cfg = self.config
        self.cos, self.sin = rotary_tables(self.cos.size(0), cfg.head_dim, cfg.rope_base, self.wte.weight.device)

    def new_kv_cache(self, batch_size, max_len, dtype=None):
        """An empty KVCache shaped for this model, on its device, by default in the compute dtype: bf16 on
        GPUs that have it (what autocast emits), else the weights' dtype."""
        cfg, w = self.config, self.wte.weight
        dtype = dtype or (torch.bfloat16 if w.is_cuda and torch.cuda.is_bf16_supported() else w.dtype)
        return KVCache(batch_size, cfg.n_layer, cfg.n_kv_head, cfg.head_dim, max_len, self.wte.weight.device, dtype)

    def _cache_positions(self, kv_cache, B, T):
        """Rotary tables, cache slots (rows, positions) and one attention mask per window size for T new tokens
        per row."""
        cfg = self.config
        assert kv_cache.k.shape[:2] == (cfg.n_layer, B) and kv_cache.k.shape[3:] == (cfg.n_kv_head, cfg.head_dim)
        positions = kv_cache.lengths[:, None] + torch.arange(T, device=kv_cache.lengths.device)  # (B, T)
        # The one host sync per forward: how many key slots anybody needs (L), and whether all rows end there.
        shortest, L = torch.stack(torch.aminmax(kv_cache.lengths + T)).tolist()
        assert L <= min(kv_cache.max_len, self.cos.size(0)), "a row past its cache (the engine ends rows there)"
        # Slot j is visible to the query at position p iff 0 <= p - j (the cached prefix plus the causal part of
        # the new tokens; slots past a row's end never are) and, in a windowed layer, p - j < window. Decoding
        # rows that all sit at one position see every slot where no window cuts: no mask (SDPA's fastest path).
        behind = positions[:, :, None] - torch.arange(L, device=positions.device)  # (B, T, L)
        masks = {w: (L, None if T == 1 and shortest == L and (w or L) >= L else
                     ((behind >= 0) & (behind < (w or L + 1)))[:, None]) for w in set(cfg.windows)}  # (B, 1, T, L)
        cos, sin = self.cos[positions][:, :, None], self.sin[positions][:, :, None]  # (B, T, 1, D/2)
        rows = torch.arange(B, device=positions.device)[:, None]  # (B, 1), broadcasts against positions (B, T)
        return cos, sin, (rows, positions), masks

    def forward(self, idx, targets=None, kv_cache=None, loss_reduction="mean"):
        """idx (B, T) long -> logits (B, T, vocab) fp32, or the loss when targets (B, T) are given.

        targets == -1 marks positions not trained on; loss_reduction "mean" averages over the rest, "sum"
        adds them up, "none" returns one loss per position, shape (B*T,), 0 at ignored positions.
        With kv_cache, the tokens are appended to each row of the cache and lengths grow by T.
        """
        assert idx.dim() == 2 and idx.dtype == torch.long, "idx: (B, T) token ids"
        cfg = self.config
        B, T = idx.shape
        slots = attn_masks = None
        if kv_cache is None:
            assert T <= self.cos.size(0), "longer than the rotary table"
            cos, sin = self.cos[None, :T, None], self.sin[None, :T, None]  # (1, T, 1, D/2)
        else:
            cos, sin, slots, attn_masks = self._cache_positions(kv_cache, B, T)
        x = norm(self.wte(idx))  # (B, T, C)
        if cfg.smear:
            first = torch.zeros_like(x[:, :1])  # token 0 of a sequence has no previous token
            if kv_cache is not None:  # the previous token of a cached row is its last one
                last = kv_cache.last_token.clamp(min=0)[:, None]
                first = norm(self.wte(last)) * (kv_cache.last_token >= 0)[:, None, None]
            # Smear: x_t += lambda * sigmoid(w . x_t[:32]) * x_(t-1), a cheap bigram feature gated per token.
            gate = self.smear_lambda * torch.sigmoid(self.smear_gate(x[..., :GATE_CHANNELS]))  # (B, T, 1)
            x = x + gate * torch.cat([first, x[:, :-1]], dim=1)
        x0 = x
        mid = None
        for i, block in enumerate(self.blocks):
            if cfg.layer_scalars:
                x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            x = block(x, cos, sin, ve, kv_cache, slots, attn_masks)
            if i == max(cfg.n_layer // 2, 1) - 1:
                mid = x  # the residual after the first half of the blocks
        if cfg.backout:
            # Backout: take out a learned part of the mid-depth stream, whose low-level features the
            # prediction does not need (modded-nanogpt).
            x = x - self.backout_lambda * mid
        if kv_cache is not None:
            kv_cache.lengths += T
            kv_cache.last_token.copy_(idx[:, -1])
        logits = self.lm_head(norm(x)).float()  # (B, T, V); fp32 for the softcap and the loss
        softcap = cfg.softcap
        if softcap:
            # Smoothly bound |logits| < softcap: stops a few logits from running away in training.
            logits = softcap * torch.tanh(logits / softcap)
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T), ignore_index=-1,
                               reduction=loss_reduction)

    def num_params(self):
        return sum(p.numel() for p in self.parameters())

    def num_scaling_params(self):
        """Parameters that multiply activations (every Linear: the blocks' matrices and gates, lm_head):
        what the training horizon scales with. Lookups (wte, value embeddings) and scalars are left out."""
        return sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))

    def estimate_flops(self):
        """Training FLOPs per token (forward + backward), the numerator of MFU.

        Each weight used in a matmul costs 2 FLOPs (multiply + add) per token forward and 4 backward
        (gradients for input and weight): 6 per parameter. Embeddings are lookups, not matmuls, so
        they are left out. Attention adds q.k and att.v, each 2 * W * D FLOPs per head per token forward
        over the W keys it sees (W = the layer's window or the full context T, causality not discounted),
        again x3 with backward: 12 * n_head * head_dim * W per layer.
        """
        cfg = self.config
        T = cfg.sequence_len
        attention = sum(12 * cfg.n_head * cfg.head_dim * min(w or T, T) for w in cfg.windows)
        return 6 * self.num_scaling_params() + attention

    def param_groups(self):
        """Parameters by role, each exactly once: what the optimizer treats differently."""
        gates = [b.attn.ve_gate.weight for b in self.blocks if b.attn.ve_gate is not None]
        scalars = [getattr(self, name) for name in ("resid_lambdas", "x0_lambdas", "smear_lambda", "backout_lambda")
                   if hasattr(self, name)]
        if self.config.smear:
            gates.append(self.smear_gate.weight)
        gate_ids = {id(p) for p in gates}
        return {
            "matrix": [p for p in self.blocks.parameters() if p.dim() == 2 and id(p) not in gate_ids],  # Muon
            "embedding": [self.wte.weight],
            "value_embedding": [ve.weight for ve in self.value_embeds.values()],
            "unembedding": [self.lm_head.weight],
            "gate": gates,
            "scalar": scalars,
        }
