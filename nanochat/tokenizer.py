"""The tokenizer: byte-level BPE trained by rustbpe (the only module importing it), encoded by tiktoken, plus the
chat template that turns a conversation into ids and a training mask. `check_messages` is the one check of
a conversation from outside; the renderer assumes it.
Deliberately left out: byte-fallback, training in Python (tests/bpe_reference.py), text normalisation.
"""

import base64
import json
import os

import tiktoken

from nanochat.common import atomic_write_json, atomic_write_text, get_base_dir

SPECIAL_TOKENS = [
    "<|bos|>",              # starts every document; also the row separator in packed batches
    "<|user_start|>", "<|user_end|>",
    "<|assistant_start|>", "<|assistant_end|>",
    "<|python_start|>", "<|python_end|>",   # the assistant calls the calculator tool
    "<|output_start|>", "<|output_end|>",   # the tool's answer, forced into the stream
]

# The GPT-4 split pattern, except digits are grouped at most two at a time (GPT-4 uses three): with
# small vocabularies it wastes fewer tokens on number chunks. The same constant lives in rustbpe.
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)

# file names inside a tokenizer directory; tokenizer.json is written last and marks a complete save
RANKS_FILE, META_FILE = "ranks.tiktoken", "tokenizer.json"


class Tokenizer:
    """A tiktoken Encoding with our special tokens appended after the learned ranks."""

    def __init__(self, mergeable_ranks, pattern=SPLIT_PATTERN):
        ranks = dict(mergeable_ranks)
        assert sorted(ranks.values()) == list(range(len(ranks))), "mergeable_ranks must use every rank 0..n-1 once"
        self.mergeable_ranks = ranks
        self.pattern = pattern
        self.special_ids = {name: len(ranks) + i for i, name in enumerate(SPECIAL_TOKENS)}
        self.enc = tiktoken.Encoding(name="nanochat", pat_str=pattern, mergeable_ranks=ranks,
                                     special_tokens=self.special_ids)
        self.bos_id = self.special_ids["<|bos|>"]

    @classmethod
    def train_from_iterator(cls, texts, vocab_size, pattern=SPLIT_PATTERN):
        """Train BPE on an iterable of strings. `vocab_size` counts the special tokens too."""
        import rustbpe  # the only import of the Rust extension in the library (tests and the bench use it directly)
        n_special = len(SPECIAL_TOKENS)
        if vocab_size < 256 + n_special:
            raise ValueError(f"vocab_size={vocab_size} is too small: it must be at least "
                             f"{256 + n_special} (256 byte tokens + {n_special} special tokens)")
        bpe = rustbpe.Tokenizer()
        bpe.train_from_iterator(texts, vocab_size - n_special, pattern=pattern)
        return cls(bpe.get_mergeable_ranks(), bpe.get_pattern())

    def save(self, tokenizer_dir):
        """Write ranks and metadata, each atomically; tokenizer.json last."""
        os.makedirs(tokenizer_dir, exist_ok=True)
        lines = [f"{base64.b64encode(tok).decode('ascii')} {rank}"
                 for tok, rank in sorted(self.mergeable_ranks.items(), key=lambda kv: kv[1])]
        atomic_write_text(os.path.join(tokenizer_dir, RANKS_FILE), "\n".join(lines) + "\n")
        meta = {"pattern": self.pattern, "special_tokens": SPECIAL_TOKENS, "vocab_size": self.get_vocab_size()}
        atomic_write_json(os.path.join(tokenizer_dir, META_FILE), meta)

    @classmethod
    def load(cls, tokenizer_dir):
        meta_path = os.path.join(tokenizer_dir, META_FILE)
        if not os.path.exists(meta_path):
            raise FileNotFoundError(f"no trained tokenizer in {tokenizer_dir} (missing {META_FILE}); "
                                    f"train one with `python -m scripts.tok_train`")
        with open(meta_path) as f:
            meta = json.load(f)
        if meta["special_tokens"] != SPECIAL_TOKENS:
            raise ValueError(f"{meta_path} was saved with different special tokens; retrain the tokenizer")
        with open(os.path.join(tokenizer_dir, RANKS_FILE)) as f:
            ranks = {base64.b64decode(tok): int(rank) for tok, rank in map(str.split, f)}
        return cls(ranks, meta["pattern"])

    def get_vocab_size(self):
        return self.enc.n_vocab

    def get_bos_token_id(self):
        return self.bos_id

    def encode_special(self, name):
        return self.special_ids[name]   # KeyError naming it: the names are constants in our code, not user input

    def _as_id(self, tok):
        return tok if isinstance(tok, int) else self.encode_special(tok)

    def encode(self, text, prepend=None, append=None, num_threads=8):
        """Encode a string (-> ids) or a list of strings (-> lists), always as ordinary text (a literal "<|bos|>"
        is never the special token). `prepend`/`append` add one special token (name or id)."""
        pre = [self._as_id(prepend)] if prepend is not None else []
        post = [self._as_id(append)] if append is not None else []
        if isinstance(text, str):
            return pre + self.enc.encode_ordinary(text) + post
        if isinstance(text, list):
            return [pre + ids + post for ids in self.enc.encode_ordinary_batch(text, num_threads=num_threads)]
        raise TypeError(f"encode takes a str or a list of str, not {type(text).__name__}")

    def decode(self, ids):
        return self.enc.decode(ids)

    def decode_bytes(self, ids):
        """Raw bytes of a token sequence (may end in the middle of a UTF-8 character)."""
        return self.enc.decode_bytes(ids)

    def token_bytes(self):
        """int32 tensor (vocab,): bytes per token id, 0 for specials (so they do not count in bits-per-byte)."""
        import torch
        special = set(self.special_ids.values())
        sizes = [0 if i in special else len(self.enc.decode_single_token_bytes(i)) for i in range(self.enc.n_vocab)]
        return torch.tensor(sizes, dtype=torch.int32)

    def render_conversation(self, conversation):
        """Render a conversation to (ids, mask). mask[i] == 1 where ids[i] is a training target.

        Trained on: the assistant's text, its python tool calls (with their delimiters) and
        <|assistant_end|>. Not trained on: <|bos|>, user turns, <|assistant_start|> (the template
        forces it), and tool outputs with their delimiters (the tool, not the model, wrote them).
        """
        ids, mask = [], []
        sid, text = self.special_ids, self.enc.encode_ordinary

        def add(m, *tokens):   # each a token id or a list of ids; m is their mask
            for t in tokens:
                t = [t] if isinstance(t, int) else t
                ids.extend(t)
                mask.extend([m] * len(t))

        messages = conversation["messages"]
        if messages[0]["role"] == "system":   # no system turn in the template: it opens the first user turn
            messages = [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]},
                        *messages[2:]]
        add(0, self.bos_id)
        for msg in messages:
            content = msg["content"]
            if msg["role"] == "user":
                add(0, sid["<|user_start|>"], text(content), sid["<|user_end|>"])
                continue
            add(0, sid["<|assistant_start|>"])
            for part in [{"type": "text", "text": content}] if isinstance(content, str) else content:
                if part["type"] == "text":
                    add(1, text(part["text"]))
                elif part["type"] == "python":
                    add(1, sid["<|python_start|>"], text(part["text"]), sid["<|python_end|>"])
                else:  # python_output
                    add(0, sid["<|output_start|>"], text(part["text"]), sid["<|output_end|>"])
            add(1, sid["<|assistant_end|>"])
        return ids, mask

    def render_for_completion(self, conversation):
        """Ids that prime the model to write the next assistant turn; a final assistant message is dropped."""
        messages = conversation["messages"]
        if messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        ids, _ = self.render_conversation({"messages": messages})
        return ids + [self.special_ids["<|assistant_start|>"]]


PART_TYPES = ("text", "python", "python_output")


class BadConversation(ValueError):
    """A conversation the chat template cannot render; `where` names the part at fault ("messages[1].role")."""

    def __init__(self, where, problem):
        super().__init__(f"{where} {problem}")
        self.where = where


def check_messages(messages, last=None):
    """The one check of a conversation from outside (a task's data file, an HTTP request): an optional system
    message, then user, assistant, user, ... (ending with a `last` message, when given), each with string
    content (an assistant's may be a list of parts). Raises BadConversation; rendering assumes it passed."""
    if not isinstance(messages, list) or not messages:
        raise BadConversation("messages", "must be a non-empty list of {role, content} messages")
    first = 1 if isinstance(messages[0], dict) and messages[0].get("role") == "system" else 0
    for i, m in enumerate(messages):
        role = "system" if i < first else ("user", "assistant")[(i - first) % 2]
        if not isinstance(m, dict) or m.get("role") != role:
            raise BadConversation(f"messages[{i}].role", f"is {m.get('role') if isinstance(m, dict) else m!r:.40}, "
                                  f"expected {role!r}: after an optional system message, roles alternate user, "
                                  "assistant, user, ...")
        content = m.get("content")
        parts = role == "assistant" and isinstance(content, list) and all(
            isinstance(p, dict) and p.get("type") in PART_TYPES and isinstance(p.get("text"), str) for p in content)
        if not (isinstance(content, str) or parts):
            raise BadConversation(f"messages[{i}].content", f"must be a string (an assistant's may be a list of "
                                  f"{{type: one of {PART_TYPES}, text}} parts), got {content!r:.40}")
    if len(messages) == first or last and messages[-1]["role"] != last:
        raise BadConversation(f"messages[{len(messages) - 1}]", f"is the last, so it must be the {last or 'user'}'s")


# -----------------------------------------------------------------------------
# The project's tokenizer lives in $NANOCHAT_BASE_DIR/tokenizer

def tokenizer_dir(base_dir=None):
    return os.path.join(base_dir or get_base_dir(), "tokenizer")


def get_tokenizer(base_dir=None):
    return Tokenizer.load(tokenizer_dir(base_dir))


def get_token_bytes(base_dir=None, device="cpu"):
    """Computed from the ranks on each load (~10 ms at vocab 32,768), so there is no second file to keep in step."""
    return get_tokenizer(base_dir).token_bytes().to(device)
