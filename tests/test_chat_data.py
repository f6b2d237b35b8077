"""nanochat/chat_data.py: which positions are trained on, padding, cropping, packing, rank shares, exact resume.

The reference for "what is trained on" is the chat template itself (Tokenizer.render_conversation) and,
independently, the text of the assistant's messages: decoding the trained targets of a row must give
exactly the assistant's own words and tool calls, each turn closed by <|assistant_end|>.
"""

import pytest
import torch

from nanochat.chat_data import IGNORE, PackedConversationLoader, PaddedLoader, RankCursor, pad_batch
from tasks.spellingbee import SpellingBee
from tasks.synthetic import SyntheticChat, SyntheticMath
from tests.engine_utils import byte_tokenizer

TOK = byte_tokenizer()


@pytest.fixture(scope="module")
def conversations():
    """Plain chat, multi-turn chat, and tool-call conversations (math, spelling) mixed."""
    convs = []
    for a, b, c in zip(SyntheticChat(size=6, seed=3), SyntheticMath(size=6, seed=3), SpellingBee(size=6, seed=3)):
        convs += [a, b, c]
    return convs


def assistant_text(conversation):
    """What the model should learn to write: its text and python calls, never the tool's output."""
    out = ""
    for msg in conversation["messages"]:
        if msg["role"] != "assistant":
            continue
        parts = msg["content"] if isinstance(msg["content"], list) else [{"type": "text", "text": msg["content"]}]
        for p in parts:
            if p["type"] == "text":
                out += p["text"]
            elif p["type"] == "python":
                out += "<|python_start|>" + p["text"] + "<|python_end|>"
        out += "<|assistant_end|>"
    return out


def test_targets_are_exactly_the_assistant_tokens(conversations):
    docs = [TOK.render_conversation(c) for c in conversations]
    seq_len = max(len(ids) for ids, _ in docs)   # long enough: nothing cropped
    x, y, cropped = pad_batch(docs, seq_len, pad_id=TOK.get_bos_token_id())
    assert cropped == 0 and x.shape == y.shape == (len(docs), seq_len - 1)
    assert any(p.get("type") == "python_output" for c in conversations for m in c["messages"]
               if isinstance(m["content"], list) for p in m["content"])   # tool outputs really are present
    for b, ((ids, mask), conv) in enumerate(zip(docs, conversations)):
        n = len(ids) - 1
        assert x[b, :n].tolist() == ids[:-1]
        expected = [t if m else IGNORE for t, m in zip(ids[1:], mask[1:])]
        assert y[b, :n].tolist() == expected                      # against the template's mask directly
        trained = [t for t in y[b].tolist() if t != IGNORE]
        assert TOK.decode(trained) == assistant_text(conv)           # and against the messages themselves
        assert (y[b, n:] == IGNORE).all()                           # padding is never a target
        assert (x[b, n:] == TOK.get_bos_token_id()).all()


def test_padding_is_never_trained_on():
    short = TOK.render_conversation({"messages": [{"role": "user", "content": "hi"},
                                                  {"role": "assistant", "content": "yo"}]})
    long = TOK.render_conversation({"messages": [{"role": "user", "content": "hello there"},
                                                 {"role": "assistant", "content": "x" * 40}]})
    x, y, _ = pad_batch([short, long], seq_len=100, pad_id=7)
    assert x.shape[1] == len(long[0]) - 1
    n = len(short[0]) - 1
    assert (y[0, n:] == IGNORE).all() and (x[0, n:] == 7).all()
    assert (y[0, :n] != IGNORE).sum() == 3   # "y", "o", <|assistant_end|>
    assert (y[1] != IGNORE).sum() == 41


def test_cropping_is_counted_and_keeps_the_mask():
    ids, mask = TOK.render_conversation({"messages": [{"role": "user", "content": "q"},
                                                      {"role": "assistant", "content": "a" * 50}]})
    x, y, cropped = pad_batch([(ids, mask)], seq_len=20, pad_id=0)
    assert cropped == 1 and x.shape == (1, 20)
    assert y[0].tolist() == [t if m else IGNORE for t, m in zip(ids[1:21], mask[1:21])]


def test_padded_loader_shares_and_resumes(conversations):
    render = TOK.render_conversation
    seen = [[], []]
    for rank in range(2):
        cursor = RankCursor(conversations, render, rank, 2)
        for _ in range(len(conversations) // 2):
            seen[rank].append(cursor.index())
            assert cursor.next() == render(conversations[seen[rank][-1]])
    # each rank takes every other conversation; together they cover the dataset once
    assert sorted(seen[0] + seen[1]) == list(range(len(conversations)))
    assert not set(seen[0]) & set(seen[1])

    a = PaddedLoader(conversations, render, 3, 64, 0, rank=1, world_size=2)
    for _ in range(2):
        next(a)
    state = a.state_dict()
    expected = [next(a) for _ in range(4)]   # wraps around the dataset: cycling is part of the state
    b = PaddedLoader(conversations, render, 3, 64, 0, rank=1, world_size=2)
    b.load_state_dict(state)
    for (x1, y1), (x2, y2) in zip(expected, [next(b) for _ in range(4)]):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert a.cropped == b.cropped > 0   # 64-token rows crop the longer conversations


def packed_targets(ids, mask, n):
    """Targets of the first n tokens of a conversation in a packed row: its next token, masked by the template;
    after its last token comes the next conversation's <|bos|>, which is never a target."""
    return [(ids[i + 1] if mask[i + 1] else IGNORE) if i + 1 < len(ids) else IGNORE for i in range(n)]


def test_packed_rows_are_whole_conversations_with_their_mask(conversations):
    docs = {tuple(ids): mask for ids, mask in map(TOK.render_conversation, conversations)}
    loader = PackedConversationLoader(conversations, TOK.render_conversation, batch_size=2, seq_len=400,
                                      buffer_size=8)
    bos = TOK.get_bos_token_id()
    whole = 0
    for _ in range(4):
        x, y = next(loader)
        assert x.shape == y.shape == (2, 400)
        for row_x, row_y in zip(x.tolist(), y.tolist()):
            assert row_x[0] == bos
            starts = [i for i, t in enumerate(row_x) if t == bos] + [len(row_x)]
            for s, e in zip(starts, starts[1:]):
                segment = tuple(row_x[s:e])
                match = [d for d in docs if d[:len(segment)] == segment]
                assert match, "a packed segment is not the start of any rendered conversation"
                assert any(row_y[s:e] == packed_targets(d, docs[d], len(segment)) for d in match)
                whole += any(len(d) == len(segment) for d in match)
    assert whole > 10


def test_packed_loader_resume_and_all_tokens(conversations):
    render = TOK.render_conversation
    a = PackedConversationLoader(conversations, render, 2, 128, rank=0, world_size=2, use_mask=False, buffer_size=4)
    next(a)
    state = a.state_dict()
    expected = [next(a) for _ in range(5)]
    b = PackedConversationLoader(conversations, render, 2, 128, rank=0, world_size=2, use_mask=False, buffer_size=4)
    b.load_state_dict(state)
    for (x1, y1), (x2, y2) in zip(expected, [next(b) for _ in range(5)]):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
        assert (y1 != IGNORE).all()   # use_mask=False: every token is a target
        assert torch.equal(x1[:, 1:], y1[:, :-1])   # targets are the inputs shifted by one


def test_empty_inputs_are_bugs():
    with pytest.raises(AssertionError):
        pad_batch([], 8, 0)
    with pytest.raises(AssertionError):
        PaddedLoader([], TOK.render_conversation, 2, 8, 0)
