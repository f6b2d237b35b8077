"""scripts/chat_cli.py end to end: a scripted tiny checkpoint in a temp base dir, one-shot and interactive."""

import io
import os
import subprocess
import sys
from dataclasses import asdict

import pytest

from nanochat.checkpoint import save_checkpoint
from scripts import chat_cli
from tests.engine_utils import bigram_model, byte_tokenizer, chain

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOK = byte_tokenizer()
S = TOK.special_ids
REPLY = "Hi [calc 6*7 = 42]!"  # what the scripted model's reply looks like on the terminal


@pytest.fixture
def base_dir(tmp_path, monkeypatch):
    """A base dir holding a tokenizer and an SFT checkpoint of a model that always replies
    "Hi <|python_start|>6*7<|python_end|>", then "!" after the calculator's output (or "?" without one)."""
    model = bigram_model({**chain(S["<|assistant_start|>"], "Hi ", S["<|python_start|>"], "6*7",
                                  S["<|python_end|>"], "?", S["<|assistant_end|>"]),
                          **chain(S["<|output_end|>"], "!", S["<|assistant_end|>"])})
    TOK.save(str(tmp_path / "tokenizer"))
    save_checkpoint(str(tmp_path / "chatsft_checkpoints" / "tiny"), 7, model.state_dict(), {},
                    {"model_config": asdict(model.config)})
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path))
    return tmp_path


def test_one_shot_prints_the_reply_with_the_tool_call(base_dir, capsys):
    assert chat_cli.main(["-p", "What is 6*7?", "--device-type", "cpu", "--seed", "0"]) == 0
    assert capsys.readouterr().out == REPLY + "\n"
    with pytest.raises(FileNotFoundError, match="no rl checkpoint"):
        chat_cli.main(["--source", "rl", "-p", "hi", "--device-type", "cpu"])


def test_interactive_session(base_dir, monkeypatch, capsys):
    # seq_len 64, --max-tokens 16: prompts may take 48 tokens. Turn 1 (5 chars) fits; turn 2 (30 chars) does
    # not fit after turn 1 (9 + 14 + 33 = 56 tokens), so the first pair is dropped.
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n" + "x" * 30 + "\n/clear\n/nope\nhey\n/quit\nnot read\n"))
    assert chat_cli.main(["--device-type", "cpu", "--max-tokens", "16"]) == 0
    out, err = capsys.readouterr()
    assert out.count("Assistant: " + REPLY + "\n") == 3 and "not read" not in out
    notes = err.splitlines()
    assert notes[0].startswith("(nanochat: sft model") and "step 7" in notes[0]
    assert notes[1:] == ["(dropped the 2 oldest messages to fit the model's 64-token context)",
                         "(new conversation)",
                         "(unknown command '/nope': /clear starts a new conversation, /quit exits)"]


@pytest.mark.slow
def test_run_as_a_module_until_end_of_input(base_dir):
    """Real pipes and `python -m`: end of input (Ctrl-D) ends the chat cleanly."""
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base_dir)}
    proc = subprocess.run([sys.executable, "-m", "scripts.chat_cli", "--device-type", "cpu"], input="hello\n",
                          capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Assistant: " + REPLY + "\n" in proc.stdout


def test_reply_printer_shows_calls_without_result_and_unclosed_calls():
    from nanochat.engine import StepOutput, ToolRenderer
    renderer, pieces = ToolRenderer(TOK), []
    ids = [*b"a", S["<|python_start|>"], *b"1/0", S["<|python_end|>"], *b"b", S["<|python_start|>"], *b"2"]
    for i, t in enumerate(ids):
        pieces += renderer.feed(StepOutput(t, False, "" if t >= 256 else chr(t), i == len(ids) - 1, None))
    assert "".join(text for text, _ in pieces) == "a[calc 1/0 (no result)]b[calc 2]"
