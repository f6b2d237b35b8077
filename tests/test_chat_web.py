"""The web server over real HTTP: uvicorn in a background thread on 127.0.0.1, tiny models, httpx and the official
openai client as clients. Covers the UI's SSE endpoint, the OpenAI-compatible API, every validation error, dynamic
batching seen from outside (a seeded reply does not depend on its batch mates), disconnects and concurrency."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict

import httpx
import openai
import pytest

from nanochat.checkpoint import save_checkpoint
from nanochat.engine import Engine
from scripts.chat_web import ServerConfig, create_app
from tests.engine_utils import byte_tokenizer, random_model
from tests.web_utils import SCRIPTED_REPLY, SCRIPTED_TOOL_TEXT, BackgroundServer, scripted_model, scripted_tokenizer

MAX_LEN = 1024  # the random model's context: long enough that a runaway row would be noticed


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer()


@pytest.fixture(scope="module")
def server(tokenizer):
    app = create_app([Engine(random_model(sequence_len=MAX_LEN), tokenizer, max_batch_size=8)], tokenizer,
                     ServerConfig(max_tokens=16))
    with BackgroundServer(app) as s:
        yield s


@pytest.fixture(scope="module")
def scripted():
    tok = scripted_tokenizer()
    with BackgroundServer(create_app([Engine(scripted_model(tok), tok)], tok)) as s:
        yield s


def user(text="hello"):
    return [{"role": "user", "content": text}]


def sse_events(response):
    """The JSON payloads of a server-sent event stream ([DONE] as the string itself)."""
    out = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def ui_chat(url, **body):
    with httpx.stream("POST", url + "/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        return sse_events(r)


def v1(url, **body):
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=60)


def client(url):
    return openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)


# -----------------------------------------------------------------------------
# The UI's endpoint and the simple routes

def test_ui_endpoint_streams_tokens_then_done(server, tokenizer):
    events = ui_chat(server.url, messages=user("hi there"), max_tokens=10, temperature=0)
    *tokens, done = events
    assert tokens and all(set(e) == {"token"} for e in tokens)
    assert done["done"] is True and done["finish_reason"] == "length" and done["dropped_turns"] == 0
    prompt_tokens = len(tokenizer.render_for_completion({"messages": user("hi there")}))
    assert done["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": 10,
                             "total_tokens": prompt_tokens + 10}
    # greedy: the same text as the OpenAI endpoint gives
    text = v1(server.url, messages=user("hi there"), max_tokens=10, temperature=0).json()
    assert "".join(e["token"] for e in tokens) == text["choices"][0]["message"]["content"]


def test_tool_calls_are_marked_in_the_stream(scripted):
    events = ui_chat(scripted.url, messages=user(), temperature=0)
    assert "".join(e["token"] for e in events[:-1]) == SCRIPTED_REPLY
    assert "".join(e["token"] for e in events[:-1] if e.get("tool")) == SCRIPTED_TOOL_TEXT
    assert events[-1]["finish_reason"] == "stop"


def test_index_health_models_stats(server):
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>nanochat</title>" in page.text
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["replicas"][0]["alive"] is True
    models = client(server.url).models.list()
    assert [m.id for m in models.data] == ["nanochat"]
    stats = httpx.get(server.url + "/stats").json()
    assert {"requests_served", "requests_active", "active_rows", "queued_rows", "tokens_generated"} <= set(stats)
    assert stats["replicas"][0]["capacity"] == 8


# -----------------------------------------------------------------------------
# The OpenAI-compatible API

def test_openai_client_non_streaming(server, tokenizer):
    resp = client(server.url).chat.completions.create(model="nanochat", messages=user("what is up"), max_tokens=7,
                                                       temperature=0)
    assert resp.object == "chat.completion" and len(resp.choices) == 1
    assert resp.choices[0].message.role == "assistant" and resp.choices[0].finish_reason == "length"
    prompt_tokens = len(tokenizer.render_for_completion({"messages": user("what is up")}))
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (prompt_tokens, 7)


def test_openai_client_streaming_matches_non_streaming(server):
    kwargs = dict(model="nanochat", messages=user("stream me"), max_tokens=12, temperature=0.9, seed=5)
    whole = client(server.url).chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client(server.url).chat.completions.create(stream=True, stream_options={"include_usage": True},
                                                              **kwargs))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12


def test_stream_ends_with_done_marker(server):
    with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=60,
                      json={"messages": user(), "max_tokens": 3, "stream": True}) as r:
        events = sse_events(r)
    assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] == "length"


def test_n_choices_follow_seed_plus_index(server):
    c = client(server.url)
    two = c.chat.completions.create(model="m", messages=user("n"), n=2, seed=100, max_tokens=12, temperature=1.0)
    assert [ch.index for ch in two.choices] == [0, 1]
    texts = [ch.message.content for ch in two.choices]
    assert texts[0] != texts[1]
    # choice j is seeded with seed + j, so each choice reproduces on its own
    for j in range(2):
        one = c.chat.completions.create(model="m", messages=user("n"), seed=100 + j, max_tokens=12, temperature=1.0)
        assert one.choices[0].message.content == texts[j]
    assert two.usage.completion_tokens == 24


def test_n_choices_stream(server):
    chunks = list(client(server.url).chat.completions.create(model="m", messages=user(), n=3, max_tokens=5,
                                                              stream=True))
    finished = sorted(ch.index for c in chunks for ch in c.choices if ch.finish_reason)
    assert finished == [0, 1, 2]


def test_seed_reproduces_whatever_shares_the_batch(server):
    body = dict(messages=user("seeded"), seed=1234, max_tokens=20, temperature=1.0)
    alone = v1(server.url, **body).json()["choices"][0]["message"]["content"]
    assert v1(server.url, **{**body, "seed": 4321}).json()["choices"][0]["message"]["content"] != alone

    async def crowded():  # the same request while other rows of other lengths are in the batch
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as ac:
            others = [ac.post("/v1/chat/completions", json={"messages": user("x" * (5 * i)), "max_tokens": 30})
                      for i in range(1, 6)]
            replies = await asyncio.gather(*others[:3], ac.post("/v1/chat/completions", json=body), *others[3:])
        return replies[3].json()["choices"][0]["message"]["content"]

    assert asyncio.run(crowded()) == alone


def test_stop_strings_cut_the_output(server):
    full = v1(server.url, messages=user("stop test"), max_tokens=40, temperature=0).json()
    text = full["choices"][0]["message"]["content"]
    stop = text[12:15]  # a piece of the greedy reply, so the stop certainly occurs
    cut = v1(server.url, messages=user("stop test"), max_tokens=40, temperature=0, stop=[stop, "never here 123"])
    choice = cut.json()["choices"][0]
    assert choice["message"]["content"] == text[:text.find(stop)]
    assert choice["finish_reason"] == "stop"
    # streaming gives the same cut, and a plain string works as well as a list
    chunks = list(client(server.url).chat.completions.create(model="m", messages=user("stop test"), max_tokens=40,
                                                              temperature=0, stop=stop, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text[:text.find(stop)]


def test_long_conversations_drop_old_turns(server, tokenizer):
    messages = [{"role": "system", "content": "be brief"}]
    for i in range(12):
        messages += [{"role": "user", "content": f"question {i} " + "q" * 150},
                     {"role": "assistant", "content": f"answer {i} " + "a" * 150}]
    messages.append({"role": "user", "content": "the last question"})
    r = v1(server.url, messages=messages, max_tokens=8)
    assert r.status_code == 200
    dropped = int(r.headers["X-Dropped-Turns"])
    assert dropped > 0 and dropped % 2 == 0
    kept = messages[:1] + messages[1 + dropped:]
    assert r.json()["usage"]["prompt_tokens"] == len(tokenizer.render_for_completion({"messages": kept}))
    done = ui_chat(server.url, messages=messages, max_tokens=8)[-1]
    assert done["dropped_turns"] == dropped


# -----------------------------------------------------------------------------
# Validation: every bad request is a 4xx with the OpenAI error shape

OK = {"messages": [{"role": "user", "content": "hi"}]}
BAD_REQUESTS = [
    # (body, expected param)
    ({}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "user", "content": str(i)} if i % 2 == 0 else {"role": "assistant", "content": "a"}
                   for i in range(501)]}, "messages"),
    ({"messages": [{"role": "user", "content": "x" * 8001}]}, "messages[0].content"),
    ({"messages": [{"role": "user" if i % 2 == 0 else "assistant", "content": "x" * 7000} for i in range(5)]},
     "messages"),
    ({"messages": [{"role": "tool", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, "messages[1].role"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]}, "messages[1].role"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, "messages[1]"),
    ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages[0]"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"content": "hi"}]}, "messages[0].role"),
    ({**OK, "temperature": -0.1}, "temperature"),
    ({**OK, "temperature": 2.5}, "temperature"),
    ({**OK, "temperature": "hot"}, "temperature"),
    ({**OK, "temperature": True}, "temperature"),
    ({**OK, "top_k": -1}, "top_k"),
    ({**OK, "top_k": 201}, "top_k"),
    ({**OK, "top_k": 2.5}, "top_k"),
    ({**OK, "top_p": 0}, "top_p"),
    ({**OK, "top_p": 1.01}, "top_p"),
    ({**OK, "max_tokens": 0}, "max_tokens"),
    ({**OK, "max_tokens": MAX_LEN + 1}, "max_tokens"),
    ({**OK, "max_tokens": "ten"}, "max_tokens"),
    ({**OK, "max_completion_tokens": MAX_LEN + 1}, "max_completion_tokens"),
    ({**OK, "n": 0}, "n"),
    ({**OK, "n": 9}, "n"),
    ({**OK, "seed": "abc"}, "seed"),
    ({**OK, "seed": -1}, "seed"),
    ({**OK, "seed": 1.5}, "seed"),
    ({**OK, "seed": 2**64}, "seed"),
    ({**OK, "stop": [1]}, "stop"),
    ({**OK, "stop": ""}, "stop"),
    ({**OK, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({**OK, "stop": {"a": 1}}, "stop"),
    ({**OK, "stream": "yes"}, "stream"),
]


def assert_openai_error(r, param, status=400):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["message"]
    assert err["param"] == param, err


@pytest.mark.parametrize("body,param", BAD_REQUESTS)
def test_bad_requests_get_openai_shaped_400s(server, body, param):
    assert_openai_error(v1(server.url, **body), param)


@pytest.mark.parametrize("body,param", [b for b in BAD_REQUESTS if set(b[0]) <= {"messages", "temperature",
                                                                                   "top_k", "max_tokens", "seed"}])
def test_ui_endpoint_rejects_the_same_bad_requests(server, body, param):
    r = httpx.post(server.url + "/chat/completions", json=body)
    assert_openai_error(r, param)


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"hi"', b"\xff\xfe"])
@pytest.mark.parametrize("route", ["/chat/completions", "/v1/chat/completions"])
def test_malformed_bodies(server, raw, route):
    r = httpx.post(server.url + route, content=raw, headers={"content-type": "application/json"})
    assert_openai_error(r, None)


def test_wrong_method_and_route_are_openai_shaped(server):
    r = httpx.get(server.url + "/v1/chat/completions")
    assert r.status_code == 405 and r.json()["error"]["message"]
    r = httpx.get(server.url + "/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["message"]


def test_openai_client_raises_bad_request(server):
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client(server.url).chat.completions.create(model="m", messages=user(), temperature=5)


# -----------------------------------------------------------------------------
# Load, disconnects, failures

def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return predicate()


def test_client_disconnect_frees_the_slot_at_once(server):
    before = httpx.get(server.url + "/stats").json()["tokens_generated"]
    # greedy on the random model never samples a stop token: left alone, this row would run MAX_LEN - prompt tokens
    body = {"messages": user("run long"), "max_tokens": MAX_LEN, "temperature": 0}
    with httpx.stream("POST", server.url + "/chat/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()  # kept referenced: a dropped iterator closes the connection
        first = [next(lines) for _ in range(6)]
        assert first[0].startswith("data: {\"token\"")
        assert httpx.get(server.url + "/stats").json()["active_rows"] == 1
    assert wait_for(lambda: httpx.get(server.url + "/stats").json()["active_rows"] == 0, timeout=5)
    time.sleep(0.2)
    generated = httpx.get(server.url + "/stats").json()["tokens_generated"] - before
    assert generated < MAX_LEN // 2, f"{generated} tokens generated after the client left"


def test_32_concurrent_streaming_clients(server):
    async def one(ac, i):
        if i % 2:
            async with ac.stream("POST", "/chat/completions", json={"messages": user(f"client {i}"),
                                                                    "max_tokens": 12}) as r:
                lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
                return r.status_code, json.loads(lines[-1][6:]).get("done")
        async with ac.stream("POST", "/v1/chat/completions", json={"messages": user(f"client {i}"),
                                                                   "max_tokens": 12, "stream": True}) as r:
            lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
            return r.status_code, lines[-1] == "data: [DONE]"

    async def main():
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as ac:
            return await asyncio.wait_for(asyncio.gather(*(one(ac, i) for i in range(32))), timeout=60)

    results = asyncio.run(main())
    assert results == [(200, True)] * 32
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    stats = httpx.get(server.url + "/stats").json()
    assert stats["active_rows"] == 0 and stats["queued_rows"] == 0 and stats["requests_active"] == 0


def test_two_replicas_share_the_load(tokenizer):
    model = random_model(sequence_len=128)
    app = create_app([Engine(model, tokenizer, max_batch_size=2) for _ in range(2)], tokenizer)

    async def main(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as ac:
            return await asyncio.gather(*(ac.post("/v1/chat/completions", json={"messages": user(), "max_tokens": 20})
                                          for _ in range(8)))

    with BackgroundServer(app) as s:
        assert all(r.status_code == 200 for r in asyncio.run(main(s.url)))
        replicas = httpx.get(s.url + "/stats").json()["replicas"]
    assert len(replicas) == 2 and all(r["tokens_generated"] > 0 for r in replicas)


def test_engine_failure_is_reported_and_the_server_survives(capsys):
    tok = scripted_tokenizer()

    def broken_calculator(expr):
        raise RuntimeError("calculator exploded")

    app = create_app([Engine(scripted_model(tok), tok, calculator=broken_calculator)], tok)
    with BackgroundServer(app) as s:
        events = ui_chat(s.url, messages=user())
        assert "calculator exploded" in events[-1]["error"]["message"]
        assert events[-1]["error"]["type"] == "server_error"
        r = v1(s.url, messages=user())
        assert r.status_code == 500 and "calculator exploded" in r.json()["error"]["message"]
        assert httpx.get(s.url + "/health").json()["status"] == "ok"
        stats = httpx.get(s.url + "/stats").json()
        assert stats["replicas"][0]["errors"] == 2 and stats["active_rows"] == 0


@pytest.mark.slow
def test_many_concurrent_clients_for_a_while(server):
    async def one(ac, i):
        async with ac.stream("POST", "/chat/completions", json={"messages": user("x" * (i % 50)),
                                                                "max_tokens": 64}) as r:
            lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
            return r.status_code, json.loads(lines[-1][6:]).get("done")

    async def main():
        async with httpx.AsyncClient(base_url=server.url, timeout=120,
                                     limits=httpx.Limits(max_connections=256)) as ac:
            return await asyncio.gather(*(one(ac, i) for i in range(200)))

    assert asyncio.run(main()) == [(200, True)] * 200
    assert httpx.get(server.url + "/stats").json()["active_rows"] == 0


@pytest.mark.slow  # ~8 s, mostly the subprocess importing torch
def test_command_line_serves_a_saved_checkpoint(tmp_path):
    """`python -m scripts.chat_web` end to end: load a checkpoint from the base dir, serve it, answer, exit."""
    tok = scripted_tokenizer()
    tok.save(str(tmp_path / "tokenizer"))
    model = scripted_model(tok)
    save_checkpoint(str(tmp_path / "chatsft_checkpoints" / "tiny"), 3, model.state_dict(), {},
                    {"model_config": asdict(model.config)})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "scripts.chat_web", "--device-type", "cpu", "--port", str(port),
                             "--temperature", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def healthy():
            try:
                return httpx.get(url + "/health").status_code == 200
            except httpx.TransportError:
                return proc.poll() is not None  # stop waiting if the server died
        assert wait_for(healthy, timeout=60) and proc.poll() is None
        assert client(url).models.list().data[0].id == "nanochat-sft-tiny-step3"
        reply = client(url).chat.completions.create(model="m", messages=user())
        assert reply.choices[0].message.content == SCRIPTED_REPLY
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0].decode()
    assert "serving nanochat-sft-tiny-step3" in output
