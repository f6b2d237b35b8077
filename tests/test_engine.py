"""nanochat/engine.py against slow references: full-sequence greedy decoding without a cache, rows generated
alone vs in a batch, sampling frequencies vs the softmax, a scripted calculator call, UTF-8 streaming."""

import pytest
import torch

from nanochat.engine import (
    Engine,
    SamplingParams,
    completion_to_parts,
    fit_conversation,
    sample_tokens,
)
from nanochat.execution import eval_calculator
from tests.engine_utils import ALL_FEATURES, bigram_model, byte_tokenizer, chain, random_model

TOK = byte_tokenizer()
S = TOK.special_ids
BOS, A_START, A_END = S["<|bos|>"], S["<|assistant_start|>"], S["<|assistant_end|>"]
PY_START, PY_END, OUT_START, OUT_END = (S["<|python_start|>"], S["<|python_end|>"],
                                        S["<|output_start|>"], S["<|output_end|>"])


def no_tool(expr):
    return None


def prompts(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [[BOS] + torch.randint(0, 256, (n - 1,), generator=g).tolist() for n in lengths]


def alone(engine, prompt, params):
    """The reference for batching: one row, in a session of its own."""
    completions, masks = engine.generate_batch(prompt, params)
    return completions[0], masks[0]


def greedy_full_forward(model, prompt, max_tokens):
    """Slow, obviously correct: re-run the whole sequence for every new token, no cache."""
    ids, out = list(prompt), []
    with torch.no_grad():
        for _ in range(max_tokens):
            token = int(model(torch.tensor([ids]))[0, -1].argmax())
            if token in (A_END, BOS):
                break
            out.append(token)
            ids.append(token)
    return out


# ----------------------------------------------------------------------------- KV cache and batching

@pytest.mark.parametrize("features", [{}, ALL_FEATURES], ids=["plain", "all-features"])
def test_greedy_with_cache_matches_full_forward(features):
    model = random_model(n_layer=3, **features)
    engine = Engine(model, TOK, calculator=no_tool)
    ps = prompts([1, 2, 7, 30, 64])
    greedy = SamplingParams(temperature=0, max_tokens=24)
    completions, masks = engine.generate_batch(ps, greedy)  # all five rows batched, different lengths
    for p, completion, mask in zip(ps, completions, masks):
        reference = greedy_full_forward(model, p, 24)
        assert completion == reference and len(reference) == 24
        assert mask == [1] * len(completion)
        assert alone(engine, p, greedy)[0] == reference


@pytest.mark.parametrize("features", [{}, ALL_FEATURES], ids=["plain", "all-features"])
def test_batched_rows_match_rows_generated_alone(features):
    engine = Engine(random_model(**features), TOK, calculator=no_tool, max_batch_size=8)
    ps = prompts([1, 3, 9, 20, 5])
    params = [SamplingParams(temperature=0, max_tokens=20),
              SamplingParams(temperature=1.0, seed=1, max_tokens=30),
              SamplingParams(temperature=0.7, top_k=10, seed=2, max_tokens=12),
              SamplingParams(temperature=1.2, top_p=0.9, seed=3, max_tokens=25),
              SamplingParams(temperature=1.0, top_k=20, top_p=0.5, seed=4, max_tokens=18)]
    batched = engine.generate_batch(ps, params)
    references = [alone(engine, p, sp) for p, sp in zip(ps, params)]
    assert [list(r) for r in zip(*batched)] == [list(r) for r in references]
    assert sum(len(c) for c, _ in references) > 60  # the rows really generated something
    # more rows than slots: they queue and start as slots free up, with the same results
    small = Engine(engine.model, TOK, calculator=no_tool, max_batch_size=2)
    assert small.generate_batch(ps, params) == batched


def test_row_added_mid_generation_matches_alone():
    engine = Engine(random_model(seed=1), TOK, calculator=no_tool)
    pa, pb = prompts([6, 11], seed=3)
    sa, sb = SamplingParams(seed=12, max_tokens=30), SamplingParams(temperature=0.8, seed=11, max_tokens=20)
    session = engine.session(batch_size=4)
    a = session.add(pa, sa)
    got = {a: []}
    for step in range(1000):
        if step == 7:
            got[session.add(pb, sb)] = []  # b joins while a is mid-way
        for row, out in session.step().items():
            got[row].append(out)
        if not len(session):
            break
    (a_outs, b_outs) = got.values()
    assert len(a_outs) > 10 and a_outs[-1].finish_reason == "length"  # a really was running when b came
    for outs, p, sp in ((a_outs, pa, sa), (b_outs, pb, sb)):
        tokens = [o.token for o in outs if o.finish_reason != "stop"]
        assert tokens == alone(engine, p, sp)[0]


def test_seeds_reproduce_and_differ_and_top_k_1_is_greedy():
    engine = Engine(random_model(), TOK, calculator=no_tool)
    p = prompts([5])[0]
    run = lambda **kw: alone(engine, p, SamplingParams(max_tokens=20, **kw))[0]  # noqa: E731
    assert run(seed=7) == run(seed=7)
    assert run(seed=7) != run(seed=8)
    assert run(seed=7, top_k=1) == run(temperature=0) == run(seed=8, top_k=1)
    # num_samples: sample j uses seed + j, and the shared prefill changes nothing
    completions, _ = engine.generate_batch(p, SamplingParams(max_tokens=20, seed=7), num_samples=3)
    assert completions == [run(seed=7), run(seed=8), run(seed=9)]
    q = prompts([9], seed=1)[0]
    completions, _ = engine.generate_batch([q, p], SamplingParams(max_tokens=20, seed=7), num_samples=2)
    assert completions[2:] == [run(seed=7), run(seed=8)]
    # no seed: drawn from torch's global RNG, so torch.manual_seed reproduces a whole run
    torch.manual_seed(0)
    first = run()
    torch.manual_seed(0)
    assert run() == first


def test_sampling_frequencies_match_the_filtered_softmax():
    logits = torch.tensor([2.0, 1.5, 1.0, 0.0, -1.0, -3.0])
    g = torch.Generator().manual_seed(0)
    n = 4000

    def frequencies(params):  # n rows of the same logits in one batch
        return torch.bincount(sample_tokens(logits.expand(n, 6), [params] * n, [g] * n), minlength=6) / n

    def expected(temperature, allowed):
        p = torch.softmax(logits / temperature, dim=0) * torch.tensor([i in allowed for i in range(6)])
        return p / p.sum()

    tol = 0.03  # ~4 standard deviations of a frequency estimated from 4000 draws
    assert torch.allclose(frequencies(SamplingParams(temperature=0.8)), expected(0.8, range(6)), atol=tol)
    assert torch.allclose(frequencies(SamplingParams(top_k=3)), expected(1.0, {0, 1, 2}), atol=tol)
    # top_p=0.6 at temperature 1: sorted probabilities 0.43, 0.26, ... -> 0.43 < 0.6, 0.69 >= 0.6: two tokens
    assert torch.allclose(frequencies(SamplingParams(top_p=0.6)), expected(1.0, {0, 1}), atol=tol)
    assert torch.allclose(frequencies(SamplingParams(top_k=4, top_p=0.99)), expected(1.0, {0, 1, 2, 3}), atol=tol)
    # rows with different params in one batch: each row filtered by its own
    mixed = sample_tokens(logits.expand(3, 6), [SamplingParams(temperature=0), SamplingParams(top_k=1),
                                                SamplingParams(temperature=5.0, top_p=1e-6)], [g] * 3)
    assert mixed.tolist() == [0, 0, 0]


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(temperature=float("nan")), dict(top_k=0),
                                 dict(top_p=0), dict(top_p=1.5), dict(max_tokens=0)])
def test_sampling_params_invariants(bad):
    """User input is validated where it enters (tests/test_chat_web.py); inside, a bad value is a bug."""
    with pytest.raises(AssertionError):
        SamplingParams(**bad)


# ----------------------------------------------------------------------------- tool calls

def tool_model():
    # after the tool's output the model says "!" and ends; without an output it says "?" and ends
    return bigram_model({**chain(A_START, PY_START, "6*7", PY_END, "?", A_END), **chain(OUT_END, "!", A_END)})


def test_calculator_output_is_forced_with_mask_0():
    engine = Engine(tool_model(), TOK, calculator=eval_calculator)  # the real sandboxed calculator
    prompt = [BOS, A_START]
    completions, masks = engine.generate_batch(prompt, SamplingParams(temperature=1.0, seed=0))
    expected = [PY_START, *b"6*7", PY_END, OUT_START, *b"42", OUT_END, ord("!")]
    assert completions[0] == expected
    assert masks[0] == [1, 1, 1, 1, 1, 0, 0, 0, 0, 1]
    forced = [out.forced for (out,) in engine.generate(prompt, SamplingParams(temperature=0))]
    assert forced == [False] * 5 + [True] * 4 + [False, False]
    assert completion_to_parts(TOK, completions[0]) == [
        {"type": "python", "text": "6*7"}, {"type": "python_output", "text": "42"}, {"type": "text", "text": "!"}]


def test_calculator_none_forces_nothing():
    engine = Engine(tool_model(), TOK, calculator=no_tool)
    completions, masks = engine.generate_batch([BOS, A_START], SamplingParams(temperature=0))
    assert completions[0] == [PY_START, *b"6*7", PY_END, ord("?")]
    assert masks[0] == [1] * 6


def test_completion_to_parts_round_trips_through_the_template():
    tokens = [*b"Hi ", PY_START, *b"1+1", PY_END, OUT_START, *b"2", OUT_END, *b" ok", A_END]
    parts = completion_to_parts(TOK, tokens)
    assert parts == [{"type": "text", "text": "Hi "}, {"type": "python", "text": "1+1"},
                     {"type": "python_output", "text": "2"}, {"type": "text", "text": " ok"}]
    ids, _ = TOK.render_conversation({"messages": [{"role": "user", "content": "q"},
                                                   {"role": "assistant", "content": parts}]})
    assert ids[ids.index(A_START) + 1:] == tokens


# ----------------------------------------------------------------------------- streaming text

def test_utf8_stream_never_yields_half_a_character():
    # the model writes "hé 世界👋" byte by byte, then a tool call whose output is forced byte by byte too
    injected = "héllo 世界 👋"
    model = bigram_model({**chain(A_START, "hé 世界👋", PY_START, "x", PY_END), **chain(OUT_END, "!", A_END)})
    engine = Engine(model, TOK, calculator=lambda expr: injected if expr == "x" else None)
    outs = [out for (out,) in engine.generate([BOS, A_START], SamplingParams(temperature=0))]
    texts = [o.text for o in outs]
    assert "".join(texts) == "hé 世界👋" + "x" + injected + "!"
    assert not any("\ufffd" in t for t in texts)
    assert texts[:4] == ["h", "", "é", " "]  # é = c3 a9: nothing until its second byte arrives
    tokens = [o.token for o in outs[:-1]]
    assert "".join(texts) == TOK.decode([t for t in tokens if t < 256])


def test_utf8_stream_cut_mid_character_ends_like_decode():
    model = bigram_model(chain(A_START, "a世界", A_END))
    engine = Engine(model, TOK)
    outs = [out for (out,) in engine.generate([BOS, A_START], SamplingParams(temperature=0, max_tokens=3))]
    assert [o.text for o in outs] == ["a", "", "\ufffd"]  # the cut-off character is flushed at the end
    assert outs[-1].finish_reason == "length"
    assert "".join(o.text for o in outs) == TOK.decode([o.token for o in outs])


# ----------------------------------------------------------------------------- stopping and slots

def test_stop_tokens_and_max_tokens():
    engine = Engine(bigram_model(chain(A_START, "Hi!", A_END)), TOK)
    p = [BOS, A_START]
    run = lambda **kw: [o for (o,) in engine.generate(p, SamplingParams(temperature=0, **kw))]  # noqa: E731
    outs = run()
    assert [o.token for o in outs] == [*b"Hi!", A_END] and outs[-1].finish_reason == "stop"
    assert [o.finished for o in outs] == [False, False, False, True]
    assert engine.generate_batch(p, SamplingParams(temperature=0))[0] == [list(b"Hi!")]
    outs = run(stop_token_ids=(ord("!"),))
    assert [o.token for o in outs] == [*b"Hi!"] and outs[-1].finish_reason == "stop"
    assert engine.generate_batch(p, SamplingParams(temperature=0, stop_token_ids=[ord("!")]))[0] == [list(b"Hi")]
    outs = run(max_tokens=2)
    assert [o.token for o in outs] == [*b"Hi"] and outs[-1].finish_reason == "length"


def test_kv_cache_full_reports_length():
    model = random_model(sequence_len=32)
    engine = Engine(model, TOK, calculator=no_tool)
    p = prompts([29])[0]
    outs = [o for (o,) in engine.generate(p, SamplingParams(temperature=0, max_tokens=100))]
    assert len(outs) == 32 - 29 + 1 and outs[-1].finish_reason == "length"  # the last token is never fed back
    assert [o.token for o in outs] == greedy_full_forward(model, p, len(outs))
    with pytest.raises(ValueError, match="33 tokens but the KV cache holds 32"):
        engine.session().add(prompts([33])[0], SamplingParams())
    engine.generate_batch(prompts([32])[0], SamplingParams())  # exactly full still gives one token


def test_remove_frees_a_slot_and_other_rows_are_unaffected():
    engine = Engine(random_model(), TOK, calculator=no_tool)
    pa, pb, pc = prompts([4, 9, 2], seed=5)
    params = SamplingParams(temperature=0.9, seed=3, max_tokens=15)
    session = engine.session(batch_size=2)
    a, b = session.add(pa, params), session.add(pb, params)
    got = {b: [], 0: []}
    for _ in range(3):
        got[b].append(session.step()[b].token)
    with pytest.raises(AssertionError):   # full: the caller checks free_slots
        session.add(pc, params)
    session.remove(a)  # b moves into a's cache row
    assert session.active_rows == [b] and session.free_slots == 1 and len(session) == 1
    c = session.add(pc, params)
    got[c] = []
    while len(session):
        for row, out in session.step().items():
            got[row].append(out.token)
    assert got[b] == alone(engine, pb, params)[0][:len(got[b])] and len(got[b]) > 5
    assert got[c] == alone(engine, pc, params)[0]
    assert session.free_slots == 2
    with pytest.raises(KeyError, match=f"row {a} is not active"):
        session.remove(a)


def test_bad_prompts_are_bugs():
    engine = Engine(random_model(), TOK)
    session = engine.session()
    for bad in ([], [BOS, 999], [BOS, -1]):
        with pytest.raises(AssertionError):
            session.add(bad, SamplingParams())
    with pytest.raises(AssertionError):   # 2 SamplingParams for 3 prompts
        engine.generate_batch(prompts([2, 3, 4]), [SamplingParams()] * 2)


# ----------------------------------------------------------------------------- fitting the context

def conversation(system=True):
    msgs = [{"role": "system", "content": "Be brief."}] if system else []
    for i, ch in enumerate("abcde"):
        msgs.append({"role": "user" if i % 2 == 0 else "assistant", "content": ch * 20})
    return {"messages": msgs}


def prompt_len(conv):
    return len(TOK.render_for_completion(conv))


def test_fit_conversation_drops_oldest_pairs_keeping_system_and_last_user():
    conv = conversation()
    sys_msg, u1, a1, u2, a2, u3 = conv["messages"]
    assert fit_conversation(TOK, conv, prompt_len(conv)) == (conv, 0)
    budget = prompt_len({"messages": [sys_msg, u2, a2, u3]})
    fitted, dropped = fit_conversation(TOK, conv, budget)
    assert fitted["messages"] == [sys_msg, u2, a2, u3] and dropped == 2
    fitted, dropped = fit_conversation(TOK, conv, budget - 1)
    assert fitted["messages"] == [sys_msg, u3] and dropped == 4
    fitted, dropped = fit_conversation(TOK, conversation(system=False), 25)
    assert [m["content"] for m in fitted["messages"]] == ["e" * 20] and dropped == 4


def test_fit_conversation_crops_the_last_user_message_from_the_left():
    conv = {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "old"}, {"role": "assistant", "content": "reply"},
                         {"role": "user", "content": "0123456789 世界世界 the end"}]}
    for budget in range(22, 40):  # 15 tokens of template and system message, 7 for "the end"
        fitted, dropped = fit_conversation(TOK, conv, budget)
        sys_msg, last = fitted["messages"]
        assert sys_msg == conv["messages"][0] and dropped == 2
        assert prompt_len(fitted) <= budget and "\ufffd" not in last["content"]
        assert conv["messages"][-1]["content"].endswith(last["content"]) and last["content"].endswith("the end")
    with pytest.raises(ValueError, match="system message"):
        fit_conversation(TOK, conv, 10)
    # the cropped prompt is something the engine can answer, where the full one would not fit
    engine = Engine(random_model(sequence_len=32), TOK, calculator=no_tool)
    fitted, _ = fit_conversation(TOK, conv, 28)
    engine.generate_batch(TOK.render_for_completion(fitted), SamplingParams(max_tokens=4))
    with pytest.raises(ValueError, match="fit_conversation"):
        engine.generate_batch(TOK.render_for_completion(conv), SamplingParams(max_tokens=4))
