"""nanochat/serving.py's text transforms against obvious references; the replica pool itself is exercised over
HTTP in tests/test_chat_web.py."""

import random

import pytest

from nanochat.engine import StepOutput, ToolRenderer
from nanochat.serving import StopText
from tests.engine_utils import byte_tokenizer


def cut_reference(text, stops):
    """Grow the text one character at a time; at the first length where it ends with a stop string, cut that
    stop string off (the longest one, if several end there)."""
    for end in range(len(text) + 1):
        done = [s for s in stops if s and text[:end].endswith(s)]
        if done:
            return text[:end - max(map(len, done))], True
    return text, False


def random_chunks(rng, text):
    cuts = sorted(rng.sample(range(1, len(text)), rng.randint(0, len(text) - 1))) if len(text) > 1 else []
    return [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]


def test_stop_text_matches_cutting_the_whole_text():
    rng = random.Random(0)
    for _ in range(2000):
        text = "".join(rng.choice("abc") for _ in range(rng.randint(0, 30)))
        stops = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(0, 3))]
        cutter, out, stopped = StopText(stops), "", False
        for chunk in random_chunks(rng, text):
            piece, stopped = cutter.feed(chunk)
            out += piece
            if stopped:
                break
        if not stopped:
            out += cutter.flush()
        assert (out, stopped) == cut_reference(text, stops), (text, stops)


def test_stop_text_holds_back_only_what_could_start_a_stop():
    cutter = StopText(["END"])
    assert cutter.feed("hello E") == ("hello", False)  # the last 2 characters could begin "END"
    assert cutter.feed("N") == (" ", False)
    assert cutter.feed("D and more") == ("", True)
    assert StopText([]).feed("anything") == ("anything", False)


def out(token, text="", finished=False, forced=False):
    return StepOutput(token, forced, text, finished, "stop" if finished else None)


@pytest.fixture
def tok():
    return byte_tokenizer()


def render(tok, outputs):
    renderer = ToolRenderer(tok)
    return [piece for o in outputs for piece in renderer.feed(o)]


def text_outputs(s):
    return [out(b, chr(b)) for b in s.encode()]


def test_tool_renderer_with_a_result(tok):
    sp = tok.encode_special
    outputs = (text_outputs("so ") + [out(sp("<|python_start|>"))] + text_outputs("6*7") + [out(sp("<|python_end|>")),
               out(sp("<|output_start|>"), forced=True)] + [out(b, chr(b), forced=True) for b in b"42"]
               + [out(sp("<|output_end|>"), forced=True)] + text_outputs(" ok") + [out(sp("<|assistant_end|>"),
                                                                                       finished=True)])
    pieces = render(tok, outputs)
    assert "".join(t for t, _ in pieces) == "so [calc 6*7 = 42] ok"
    assert "".join(t for t, tool in pieces if tool) == "[calc 6*7 = 42]"


def test_tool_renderer_without_a_result_and_cut_short(tok):
    sp = tok.encode_special
    no_result = [out(sp("<|python_start|>"))] + text_outputs("x") + [out(sp("<|python_end|>"))] + text_outputs("!")
    assert "".join(t for t, _ in render(tok, no_result)) == "[calc x (no result)]!"
    # the reply ends inside the call, or right after it: the bracket still closes
    cut = [out(sp("<|python_start|>"))] + text_outputs("1+") + [out(ord("2"), "2", finished=True)]
    assert "".join(t for t, _ in render(tok, cut)) == "[calc 1+2]"
    cut = [out(sp("<|python_start|>")), out(ord("1"), "1"), out(sp("<|python_end|>"), finished=True)]
    assert "".join(t for t, _ in render(tok, cut)) == "[calc 1 (no result)]"
