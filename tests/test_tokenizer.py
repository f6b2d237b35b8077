"""nanochat/tokenizer.py: training through rustbpe, save/load, encode/decode, the chat template."""

import os
import random

import pytest

from nanochat.tokenizer import SPECIAL_TOKENS, BadConversation, Tokenizer, check_messages

TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 20,
    "Numbers: 1234567 and 3.14159, dates like 2026-11-22, and prices of $19.99.",
    "Café naïve résumé — crème brûlée. 東京は日本の首都です。 Emoji: 👩‍👩‍👧 🎉🎉",
    "def f(x):\n\treturn x ** 2  # square\n\n\n   trailing spaces   \r\n",
    "",
] * 5


@pytest.fixture(scope="module")
def trained():
    return Tokenizer.train_from_iterator(iter(TEXTS), vocab_size=256 + len(SPECIAL_TOKENS) + 120)


@pytest.fixture(scope="module")
def bytes_only():
    """A tokenizer with no merges: every byte is a token. Enough for exact chat-template checks."""
    return Tokenizer({bytes([i]): i for i in range(256)})


def test_vocab_and_specials(trained):
    assert trained.get_vocab_size() == 256 + 120 + len(SPECIAL_TOKENS)
    ids = [trained.encode_special(s) for s in SPECIAL_TOKENS]
    assert ids == list(range(256 + 120, 256 + 120 + len(SPECIAL_TOKENS)))
    assert trained.get_bos_token_id() == ids[0]
    with pytest.raises(KeyError, match="nope"):
        trained.encode_special("<|nope|>")


def test_roundtrip_arbitrary_unicode(trained):
    rng = random.Random(0)
    for _ in range(200):
        # random code points, skipping the surrogate range which is not valid in UTF-8 strings
        cps = [rng.choice([rng.randrange(0x20, 0x7F), rng.randrange(0xA0, 0xD800), rng.randrange(0xE000, 0x10FFFF)])
               for _ in range(rng.randrange(0, 40))]
        s = "".join(map(chr, cps))
        assert trained.decode(trained.encode(s)) == s


def test_special_token_text_is_ordinary(trained):
    s = "before <|bos|> after <|assistant_end|>"
    ids = trained.encode(s)
    assert not set(ids) & set(trained.special_ids.values())
    assert trained.decode(ids) == s


def test_encode_batch_prepend_append(trained):
    bos = trained.get_bos_token_id()
    single = [trained.encode(t, prepend="<|bos|>") for t in TEXTS]
    assert trained.encode(TEXTS, prepend=bos) == single
    assert trained.encode("hi", append="<|assistant_end|>")[-1] == trained.encode_special("<|assistant_end|>")
    with pytest.raises(TypeError, match="str or a list"):
        trained.encode(123)


def test_save_load_roundtrip(trained, tmp_path):
    d = tmp_path / "tokenizer"
    trained.save(str(d))
    assert not [f for f in os.listdir(d) if f.endswith(".tmp")]
    loaded = Tokenizer.load(str(d))
    assert loaded.mergeable_ranks == trained.mergeable_ranks
    assert loaded.pattern == trained.pattern
    for t in TEXTS:
        assert loaded.encode(t) == trained.encode(t)
    assert loaded.token_bytes().tolist() == trained.token_bytes().tolist()
    with pytest.raises(FileNotFoundError, match="tok_train"):
        Tokenizer.load(str(tmp_path / "missing"))


def test_token_bytes(trained):
    tb = trained.token_bytes().tolist()
    for i in range(trained.get_vocab_size()):
        expected = 0 if i in trained.special_ids.values() else len(trained.enc.decode_single_token_bytes(i))
        assert tb[i] == expected
    assert tb[:256] == [1] * 256


def test_vocab_too_small():
    with pytest.raises(ValueError, match="vocab_size=100"):
        Tokenizer.train_from_iterator(iter(TEXTS), vocab_size=100)


# -----------------------------------------------------------------------------
# chat template: the expected ids and mask are built by hand, token by token

def expected_render(tok, pieces):
    """pieces: list of (special name | plain str, mask). Plain strings are encoded as ordinary text."""
    ids, mask = [], []
    for piece, m in pieces:
        toks = [tok.encode_special(piece)] if piece in SPECIAL_TOKENS else tok.encode(piece)
        ids += toks
        mask += [m] * len(toks)
    return ids, mask


def test_chat_template_masks(bytes_only):
    tok = bytes_only
    conv = {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 6*7?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me compute. "},
            {"type": "python", "text": "6*7"},
            {"type": "python_output", "text": "42"},
            {"type": "text", "text": "It is 42."},
        ]},
        {"role": "user", "content": "Thanks <|bos|>"},
        {"role": "assistant", "content": "You're welcome."},
    ]}
    ids, mask = tok.render_conversation(conv)
    exp_ids, exp_mask = expected_render(tok, [
        ("<|bos|>", 0),
        ("<|user_start|>", 0), ("Be brief.\n\nWhat is 6*7?", 0), ("<|user_end|>", 0),
        ("<|assistant_start|>", 0), ("Let me compute. ", 1),
        ("<|python_start|>", 1), ("6*7", 1), ("<|python_end|>", 1),
        ("<|output_start|>", 0), ("42", 0), ("<|output_end|>", 0),
        ("It is 42.", 1), ("<|assistant_end|>", 1),
        ("<|user_start|>", 0), ("Thanks <|bos|>", 0), ("<|user_end|>", 0),
        ("<|assistant_start|>", 0), ("You're welcome.", 1), ("<|assistant_end|>", 1),
    ])
    assert ids == exp_ids
    assert mask == exp_mask


def test_render_for_completion(bytes_only):
    tok = bytes_only
    conv = {"messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
    ]}
    ids = tok.render_for_completion(conv)
    full_ids, _ = tok.render_conversation(conv)
    assert ids == full_ids + [tok.encode_special("<|assistant_start|>")]
    # a trailing assistant message (e.g. a reference answer) is dropped
    with_answer = {"messages": conv["messages"] + [{"role": "assistant", "content": "See you"}]}
    assert tok.render_for_completion(with_answer) == ids


@pytest.mark.parametrize("messages, where", [
    ([], "messages"),
    ("hi", "messages"),
    ([{"role": "assistant", "content": "hi"}], "messages[0].role"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "messages[1].role"),
    ([{"role": "system", "content": "s"}], "messages[0]"),
    ([{"role": "system", "content": "s"}, {"role": "assistant", "content": "x"}], "messages[1].role"),
    ([{"role": "user", "content": 5}], "messages[0].content"),
    ([{"role": "user", "content": [{"type": "text", "text": "x"}]}], "messages[0].content"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"type": "code", "text": "x"}]}],
     "messages[1].content"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": None}], "messages[1].content"),
    (["hello"], "messages[0].role"),
])
def test_malformed_conversations(messages, where):
    """The one check of conversations from outside names the message and field at fault."""
    with pytest.raises(BadConversation) as e:
        check_messages(messages)
    assert e.value.where == where


def test_conversation_must_end_with_the_right_turn():
    user_only = [{"role": "user", "content": "a"}]
    pair = user_only + [{"role": "assistant", "content": "b"}]
    check_messages(user_only, last="user")
    check_messages(pair, last="assistant")
    check_messages(pair)
    for messages, last in ((user_only, "assistant"), (pair, "user")):
        with pytest.raises(BadConversation):
            check_messages(messages, last=last)
