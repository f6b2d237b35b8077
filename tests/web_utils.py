"""Helpers for the web server and UI tests (and bench/server.py): `BackgroundServer`, and a scripted model
whose reply is fixed, contains HTML that would run script if it were inserted as HTML, and calls the calculator.

The scripted reply is written with a few whole-phrase tokens added to the byte tokenizer, so that a bigram model
(the next token depends only on the current one) can emit a text whose characters repeat.
"""

import socket
import threading
import time

import uvicorn

from nanochat.tokenizer import Tokenizer
from tests.engine_utils import bigram_model

PHRASES = [
    b"Hi! Here is some HTML, shown as text: ",
    b'<img src=x onerror="window.__pwned=1">',
    b" And a sum: ",
    b". Bye!",
]
# what the reply reads like once the calculator call is rendered
SCRIPTED_REPLY = ('Hi! Here is some HTML, shown as text: <img src=x onerror="window.__pwned=1"> And a sum: '
                  "[calc 6*7 = 42]. Bye!")
SCRIPTED_TOOL_TEXT = "[calc 6*7 = 42]"


def scripted_tokenizer():
    """256 byte tokens, the phrases (ids 256..259), then the special tokens. Plain text still encodes byte by
    byte: BPE only reaches a token through merges, and no merge leads to a phrase."""
    ranks = {bytes([i]): i for i in range(256)}
    ranks.update({p: 256 + i for i, p in enumerate(PHRASES)})
    return Tokenizer(ranks)


def scripted_model(tokenizer, sequence_len=256):
    """A GPT that answers every prompt (which ends in <|assistant_start|>) with SCRIPTED_REPLY."""
    sp = tokenizer.encode_special
    p = [256 + i for i in range(len(PHRASES))]
    steps = [sp("<|assistant_start|>"), p[0], p[1], p[2], sp("<|python_start|>"), *b"6*7", sp("<|python_end|>")]
    transitions = dict(zip(steps, steps[1:]))
    # after <|python_end|> the engine forces <|output_start|>42<|output_end|>; the model resumes from there
    transitions[sp("<|output_end|>")] = p[3]
    transitions[p[3]] = sp("<|assistant_end|>")
    return bigram_model(transitions, vocab_size=tokenizer.get_vocab_size(), sequence_len=sequence_len)


class BackgroundServer:
    """Serve an app with uvicorn from a background thread (tests, benchmarks); port=0 picks a free port."""

    def __init__(self, app, host="127.0.0.1", port=0, log_level="warning"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        # A short graceful shutdown: open streams are cut after a second instead of blocking stop().
        config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self, timeout=30.0):
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start serving {self.url} within {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
