"""
The inference engine: a model and a tokenizer turned into streams of sampled tokens, many requests at once.
A `Session` owns a KV cache: add() prefills a prompt into a free row, step() advances every row by one
batched forward, remove() frees a row. Each row has its own sampling params, generator, stop tokens,
calculator tool and UTF-8 decoder. Deliberately not here: threads, prefix caching, speculative decoding,
paged KV memory, beam search, device/dtype setup.
"""

import codecs
import copy
import math
from collections import deque
from dataclasses import dataclass, replace

import torch

from nanochat.execution import eval_calculator
from nanochat.tokenizer import SPECIAL_TOKENS

ALWAYS_STOP = ("<|assistant_end|>", "<|bos|>")  # an assistant turn ends; a new document would start


@dataclass
class SamplingParams:
    temperature: float = 1.0        # 0 = greedy
    top_k: int | None = None        # sample among the k most likely tokens only
    top_p: float | None = None      # nucleus sampling: the smallest set of tokens whose mass reaches top_p
    max_tokens: int = 256           # completion tokens, forced tool tokens included
    seed: int | None = None         # seeds this row's own generator; None draws a seed from torch's global RNG
    stop_token_ids: tuple = ()      # extra stop tokens; <|assistant_end|> and <|bos|> always stop

    def __post_init__(self):   # user input is checked where it enters (CLI flags, HTTP requests)
        assert math.isfinite(self.temperature) and self.temperature >= 0 and self.max_tokens >= 1, self
        assert (self.top_k is None or self.top_k >= 1) and (self.top_p is None or 0 < self.top_p <= 1), self
        self.stop_token_ids = tuple(self.stop_token_ids)


@dataclass
class StepOutput:
    token: int
    forced: bool                # True for tokens the tool injected (output_start, result tokens, output_end)
    text: str                   # newly decodable text: never half a character, "" for special tokens
    finished: bool              # a stop token, max_tokens, or the KV cache is full
    finish_reason: str | None   # "stop" | "length" | None while running


def sample_tokens(logits, params, generators):
    """Token ids (B,) long, left on the device, from logits (B, V) fp32, one SamplingParams and generator per row.
    Rows sharing temperature/top_k/top_p (usually all) are filtered together: top-k, then top-p inside what is left,
    then temperature-scaled softmax. Each row draws from its own generator: its samples ignore its neighbours."""
    groups = {}
    for i, p in enumerate(params):
        groups.setdefault((p.temperature, p.top_k, p.top_p) if p.temperature > 0 else "greedy", []).append(i)
    choices = logits.argmax(dim=-1) if "greedy" in groups else torch.empty_like(logits[:, 0], dtype=torch.long)
    groups.pop("greedy", None)
    V = logits.size(-1)
    for (temperature, top_k, top_p), rows in groups.items():
        idx = torch.tensor(rows, device=logits.device)
        values, ids = logits[idx], None
        if min(top_k or V, V) < V or top_p is not None:
            values, ids = torch.topk(values, min(top_k or V, V))  # sorted, most likely first
        probs = torch.softmax(values / temperature, dim=-1)  # (rows, k)
        if top_p is not None:
            # Keep a token iff the mass strictly before it is below top_p: the smallest prefix reaching top_p.
            # The first token always stays (mass 0 before it). The draw below needs no renormalising.
            probs = probs * (probs.cumsum(-1) - probs < top_p)
        # torch.multinomial(p, 1) is argmax(p / q), q ~ Exp(1) (its one-sample path): each row's q comes from its
        # own generator, then one division and one argmax serve all rows, with the same samples.
        q = torch.empty_like(probs)
        for j, r in enumerate(rows):
            q[j].exponential_(generator=generators[r])
        picks = (probs / q).argmax(dim=-1)
        choices[idx] = picks if ids is None else ids.gather(1, picks[:, None])[:, 0]
    return choices


def _rows_view(cache, start, stop):
    """A KVCache over rows [start, stop) of `cache` that shares its storage: a forward through the view
    writes keys, values and lengths straight into `cache`. Slicing one dimension keeps these views, so the
    session keeps its active rows packed at the front of the cache."""
    view = copy.copy(cache)
    view.k, view.v, view.lengths = cache.k[:, start:stop], cache.v[:, start:stop], cache.lengths[start:stop]
    view.last_token = cache.last_token[start:stop]
    return view


class _Row:
    """Everything the session tracks about one request."""

    def __init__(self, row_id, params, generator, max_tokens, next_input):
        self.id = row_id
        self.params = params
        self.generator = generator
        self.max_tokens = max_tokens  # params.max_tokens, capped so prompt + completion fit the cache
        self.next_input = next_input  # the token the next forward feeds (the last prompt token at first)
        self.num_tokens = 0           # tokens emitted so far, forced ones included
        self.forced = deque()         # tool tokens waiting to be injected, one per step
        self.expr = None              # ids of a calculator expression being written, None outside one
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")


class Engine:
    """Sampling from `model` (a nanochat GPT, already on its device and in eval mode) with `tokenizer`."""

    def __init__(self, model, tokenizer, calculator=eval_calculator, max_batch_size=32):
        self.max_batch_size, self.max_len = max_batch_size, model.config.sequence_len
        assert max_batch_size >= 1 and self.max_len <= model.cos.size(0), "positions past the rotary table"
        assert tokenizer.get_vocab_size() == model.config.vocab_size, "the tokenizer is not the model's"
        self.model, self.tokenizer, self.calculator = model, tokenizer, calculator
        self.device = model.wte.weight.device
        self.special = {name: tokenizer.encode_special(name) for name in SPECIAL_TOKENS}
        self.special_ids = frozenset(self.special.values())
        self.always_stop = frozenset(self.special[name] for name in ALWAYS_STOP)

    def session(self, batch_size=None):
        """A new, empty Session with room for batch_size rows (default max_batch_size)."""
        return Session(self, self.max_batch_size if batch_size is None else batch_size)

    def generate(self, prompts, params, num_samples=1):
        """Stream completions: yields, once per step, one StepOutput or None (not started / finished) per row.

        prompts: one prompt or a list; params: one SamplingParams or one per prompt. Rows are prompt-major
        [p0 s0, p0 s1, ..., p1 s0, ...]; with a seed, sample j uses seed + j. Rows beyond max_batch_size queue
        for a free slot; rows are independent, so the outputs are the same either way.
        """
        if prompts and all(isinstance(t, int) for t in prompts):
            prompts = [prompts]
        if isinstance(params, SamplingParams):
            params = [params] * len(prompts)
        assert prompts and len(params) == len(prompts) and num_samples >= 1, "one SamplingParams, or one each"
        jobs = [(prompt, p if p.seed is None or j == 0 else replace(p, seed=p.seed + j))
                for prompt, p in zip(prompts, params) for j in range(num_samples)]
        session = self.session(min(len(jobs), self.max_batch_size))
        waiting = deque(enumerate(jobs))
        job_of = {}  # row id -> index into jobs
        while waiting or len(session):
            while waiting and session.free_slots:
                j, (prompt, p) = waiting.popleft()
                job_of[session.add(prompt, p)] = j
            outputs = [None] * len(jobs)
            for row, out in session.step().items():  # row ids are never reused: job_of keeps finished ones
                outputs[job_of[row]] = out
            yield outputs

    def generate_batch(self, prompts, params, num_samples=1, keep_stop=False):
        """Run generate() to the end. Returns (completions, masks), one list per row: the token ids after the
        prompt, the final stop token only with keep_stop (RL trains on it), and 1 where the model sampled the
        token, 0 where the tool forced it.
        """
        completions = masks = None
        for outputs in self.generate(prompts, params, num_samples):
            if completions is None:
                completions, masks = [[] for _ in outputs], [[] for _ in outputs]
            for i, out in enumerate(outputs):
                if out is not None and (keep_stop or out.finish_reason != "stop"):  # "stop": a stop token
                    completions[i].append(out.token)
                    masks[i].append(0 if out.forced else 1)
        return completions, masks


class Session:
    """Up to `batch_size` rows sharing one KVCache; rows come and go between steps. Not thread-safe.

    Active rows occupy cache rows 0..n-1 (removing a row moves the last one into its place), so each step's
    forward runs on exactly the n active rows. Row ids handed out by add() never change.
    """

    def __init__(self, engine, batch_size):
        self.engine = engine
        with torch.inference_mode():
            self.cache = engine.model.new_kv_cache(batch_size, engine.max_len)
        self._rows = []            # active rows; self._rows[i] lives in cache row i
        self._next_id = 0
        self._last_prefill = None  # (prompt, row) of the latest add, so num_samples copies skip the forward

    def __len__(self):
        return len(self._rows)

    @property
    def active_rows(self):
        return [r.id for r in self._rows]

    @property
    def free_slots(self):
        return self.cache.batch_size - len(self._rows)

    @torch.inference_mode()
    def add(self, prompt_ids, params):
        """Prefill a prompt into a free slot; returns the new row's id. The row's first token comes from the
        next step(). Raises ValueError for a prompt that does not fit; the session must have a free slot."""
        engine = self.engine
        prompt = list(prompt_ids)
        assert self.free_slots and prompt and 0 <= min(prompt) and max(prompt) < engine.model.config.vocab_size
        if len(prompt) > engine.max_len:
            raise ValueError(f"the prompt has {len(prompt)} tokens but the KV cache holds {engine.max_len}; "
                             "shorten it (fit_conversation drops old turns)")
        slot = len(self._rows)
        # All but the last prompt token go into the cache now, in one forward; the last one is fed by the next
        # step() together with every other row, so every step treats all rows alike. The forward writes
        # straight into the slot through a one-row view: no scratch cache to allocate, nothing to copy.
        last = self._last_prefill
        if last is not None and last[0] == prompt and last[1] in self._rows:
            self.cache.row_copy_(slot, self.cache, self._rows.index(last[1]))  # same prompt: copy its keys
        else:
            self.cache.clear_row_(slot)
            if len(prompt) > 1:
                ids = torch.tensor([prompt[:-1]], dtype=torch.long, device=engine.device)
                engine.model(ids, kv_cache=_rows_view(self.cache, slot, slot + 1))  # logits unused
        seed = params.seed if params.seed is not None else int(torch.randint(2**62, ()))
        generator = torch.Generator(device=engine.device).manual_seed(seed)
        # The cache feeds positions 0..max_len-1; the last completion token is never fed, so a prompt of n
        # tokens leaves room for max_len - n + 1 completion tokens.
        max_tokens = min(params.max_tokens, engine.max_len - len(prompt) + 1)
        row = _Row(self._next_id, params, generator, max_tokens, prompt[-1])
        self._next_id += 1
        self._rows.append(row)
        self._last_prefill = (prompt, row)
        return row.id

    @torch.inference_mode()
    def step(self):
        """Advance every active row by one token. Returns {row id: StepOutput}; finished rows are removed."""
        self._last_prefill = None  # the rows' caches grow now: no longer a copy source
        n = len(self._rows)
        if n == 0:
            return {}
        engine = self.engine
        inputs = torch.tensor([[r.next_input] for r in self._rows], dtype=torch.long, device=engine.device)
        logits = engine.model(inputs, kv_cache=_rows_view(self.cache, 0, n))[:, -1]  # (n, V)
        # A row with forced tool tokens waiting draws nothing (greedy params), so its generator does not move.
        params = [SamplingParams(temperature=0) if r.forced else r.params for r in self._rows]
        choices = sample_tokens(logits, params, [r.generator for r in self._rows]).tolist()  # the step's host sync
        outputs = {row.id: self._advance(row, choice) for row, choice in zip(self._rows, choices)}
        for row_id, out in outputs.items():
            if out.finished:
                self.remove(row_id)
        return outputs

    def _advance(self, row, choice):
        """Record the row's next token (a waiting tool token, else `choice`): tool state, text, finish."""
        engine = self.engine
        forced = bool(row.forced)
        token = row.forced.popleft() if forced else choice
        row.num_tokens += 1
        row.next_input = token
        special = engine.special
        if not forced:
            if token == special["<|python_start|>"]:
                row.expr = []
            elif token == special["<|python_end|>"] and row.expr is not None:
                result = engine.calculator(engine.tokenizer.decode(row.expr))
                row.expr = None
                if isinstance(result, str):
                    row.forced.extend([special["<|output_start|>"], *engine.tokenizer.encode(result),
                                       special["<|output_end|>"]])
            elif row.expr is not None:
                row.expr.append(token)
        text = "" if token in engine.special_ids else row.decoder.decode(engine.tokenizer.decode_bytes([token]))
        reason = None
        if not forced and (token in engine.always_stop or token in row.params.stop_token_ids):
            reason = "stop"
        elif row.num_tokens >= row.max_tokens:
            reason = "length"
        if reason:
            text += row.decoder.decode(b"", final=True)  # an unfinished character at the very end: U+FFFD
        return StepOutput(token, forced, text, reason is not None, reason)

    @torch.inference_mode()
    def remove(self, row_id):
        """Free a row's slot at once (e.g. its client went away). The last row moves into the freed slot."""
        i = next((i for i, r in enumerate(self._rows) if r.id == row_id), None)
        if i is None:
            raise KeyError(f"row {row_id} is not active in this session (active: {self.active_rows})")
        last = len(self._rows) - 1
        if i != last:
            self.cache.row_copy_(i, self.cache, last)
            self._rows[i] = self._rows[last]
        self._rows.pop()
        self.cache.clear_row_(last)


# -----------------------------------------------------------------------------
# Conversations around the engine

def fit_conversation(tokenizer, conversation, max_prompt_tokens):
    """Fit a conversation's completion prompt in max_prompt_tokens. Returns (conversation, messages dropped).

    Drops the oldest user/assistant pairs, keeping the system and last user message; if still too long, crops
    the last user message from the left (its end is what the reply answers).
    """
    messages = conversation["messages"]
    assert max_prompt_tokens >= 1 and messages[-1]["role"] == "user", "a user message to answer"
    system = messages[:1] if messages[0].get("role") == "system" else []
    turns = messages[len(system):]

    def length(msgs):
        return len(tokenizer.render_for_completion({**conversation, "messages": msgs}))

    dropped = 0
    while len(turns) > 1 and length(system + turns) > max_prompt_tokens:
        turns, dropped = turns[2:], dropped + 2
    if length(system + turns) <= max_prompt_tokens:
        return {**conversation, "messages": system + turns}, dropped
    message = turns[-1]
    overhead = length(system + [{**message, "content": ""}])
    ids = tokenizer.encode(message["content"])
    keep = max_prompt_tokens - overhead
    if keep < 1:
        raise ValueError(f"the system message and chat template alone take {overhead} tokens, more than "
                         f"max_prompt_tokens={max_prompt_tokens}: shorten the system message")
    while True:
        # Re-encoding decoded text can tokenize differently at the cut, so check and cut more if needed.
        # lstrip: a cut inside a multi-byte character leaves replacement characters at the start.
        cropped = {**message, "content": tokenizer.decode(ids[-keep:]).lstrip("\ufffd")}
        excess = length(system + [cropped]) - max_prompt_tokens
        if excess <= 0 or keep <= 1:
            return {**conversation, "messages": system + [cropped]}, dropped
        keep = max(1, keep - excess)


def completion_to_parts(tokenizer, tokens):
    """Generated ids -> assistant content parts (the chat template's format), e.g. [{"type": "text", ...},
    {"type": "python", "text": "6*7"}, {"type": "python_output", "text": "42"}, ...], so the reply can go back
    into the conversation. A final <|assistant_end|> and any other special tokens are left out."""
    kinds = {tokenizer.encode_special("<|python_start|>"): "python",
             tokenizer.encode_special("<|output_start|>"): "python_output",
             tokenizer.encode_special("<|python_end|>"): "text",
             tokenizer.encode_special("<|output_end|>"): "text"}
    specials = {tokenizer.encode_special(name) for name in SPECIAL_TOKENS}
    parts, kind, ids = [], "text", []

    def flush():
        if ids or kind != "text":  # an empty tool call is still a tool call
            parts.append({"type": kind, "text": tokenizer.decode(ids)})

    for t in tokens:
        if t in kinds:
            flush()
            kind, ids = kinds[t], []
        elif t not in specials:
            ids.append(t)
    if ids:
        flush()
    return parts


class ToolRenderer:
    """StepOutputs -> readable pieces (text, is_tool). A calculator call reads "[calc 6*7 = 42]", or
    "[calc 6*7 (no result)]" when the tool returned nothing (the terminal chat and the web server show calls alike).

    The tool's special tokens carry no text, so the marks are drawn from the token ids. Whether a call got a
    result is only known one token after <|python_end|>: the forced <|output_start|>, or anything else.
    """

    def __init__(self, tokenizer):
        self.ids = {name: tokenizer.encode_special(name) for name in
                    ("<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>")}
        self.in_tool = False           # from <|python_start|> to <|output_end|>
        self.awaiting_result = False   # right after <|python_end|>

    def feed(self, out):
        ids, t, pieces = self.ids, out.token, []
        if self.awaiting_result and t != ids["<|output_start|>"]:
            pieces.append((" (no result)]", True))
            self.in_tool = False
        self.awaiting_result = False
        if t == ids["<|python_start|>"]:
            self.in_tool = True
            pieces.append(("[calc ", True))
        elif t == ids["<|python_end|>"]:
            self.awaiting_result = True
        elif t == ids["<|output_start|>"]:
            pieces.append((" = ", True))
        elif t == ids["<|output_end|>"]:
            self.in_tool = False
            pieces.append(("]", True))
        elif out.text:
            pieces.append((out.text, self.in_tool))
        if out.finished and (self.in_tool or self.awaiting_result):  # the reply ended inside a call
            pieces.append((" (no result)]" if self.awaiting_result else "]", True))
        return pieces


def prompt_budget(max_len, max_tokens):
    """Tokens a chat's prompt may take: the rest of the context is room for a reply of up to max_tokens,
    but never more than half of it (a long-winded default must not leave no room for the conversation)."""
    return max_len - min(max_tokens, max_len // 2)

SAMPLE_PROMPTS = ["The capital of France is", "Once upon a time,", "If I have 3 apples and buy 4 more, I have",
                  "The opposite of hot is"]


@torch.no_grad()
def sample_greedy(model, tokenizer, prompt, max_tokens, autocast):
    """Greedy continuation by repeated full forward passes: slow, but needs nothing beyond the model."""
    ids = tokenizer.encode(prompt, prepend="<|bos|>")
    device = next(model.parameters()).device
    for _ in range(max_tokens):
        x = torch.tensor([ids[-model.config.sequence_len:]], device=device)
        with autocast():
            ids.append(int(model(x)[0, -1].argmax()))
    return tokenizer.decode(ids[1:])
