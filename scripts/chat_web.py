"""
Serve a chat model over HTTP: the browser UI (ui.html, GET /), its streaming endpoint (POST /chat/completions),
/health, /stats, and an OpenAI-compatible API (POST /v1/chat/completions, GET /v1/models). Bad input gets a 4xx
with an OpenAI-shaped error body; the model work runs in nanochat/serving.py.

Deliberately not here: authentication, rate limits, HTTPS (bind to 127.0.0.1, the default, or put a proxy in
front), logprobs, function calling beyond the built-in calculator, and content other than plain strings.
"""

import argparse
import asyncio
import json
import os
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import torch
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from nanochat.checkpoint import add_checkpoint_args, load_model
from nanochat.common import compute_init, print0
from nanochat.engine import Engine, SamplingParams, ToolRenderer, fit_conversation, prompt_budget
from nanochat.serving import ChatServer, GenerationError, Job, ServerConfig, StopText
from nanochat.tokenizer import BadConversation, check_messages

UI_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ui.html")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of the stream


# -----------------------------------------------------------------------------
# Requests and their validation

class ApiError(Exception):
    def __init__(self, message, param=None, code=None, status=400, type="invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}  # OpenAI's shape

    def response(self):
        return JSONResponse(self.body, status_code=self.status)


# Request limits (these and the sizes in the models below): generous for a person chatting, small enough that no
# request can hog the server.
MAX_TOTAL_CHARS = 32000
MAX_STOPS = 4

# strict: no silent coercion ("0.5" is not a temperature, true is not a top_k); unknown fields are ignored, as
# OpenAI clients send some we do not use (user, presence_penalty, ...).
STRICT = ConfigDict(strict=True, extra="ignore")


class Message(BaseModel):
    model_config = STRICT
    role: str
    content: str = Field(max_length=8000)


class ChatRequest(BaseModel):
    """The UI's request; limits on several fields, or that depend on the server, are checked in prepare()."""
    model_config = STRICT
    messages: list[Message] = Field(max_length=500)
    temperature: float | None = Field(None, ge=0, le=2)
    top_k: int | None = Field(None, ge=0, le=200)   # 0 = no top-k filter
    max_tokens: int | None = Field(None, ge=1)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)


class OpenAIChatRequest(ChatRequest):
    model: str | None = None                        # accepted and ignored: one model is loaded
    top_p: float | None = Field(None, gt=0, le=1)
    max_completion_tokens: int | None = Field(None, ge=1)  # the newer name of max_tokens
    stop: Any = None                                # a string or a list of strings, checked by check_stop
    n: int = Field(1, ge=1, le=8)
    stream: bool = False
    stream_options: dict[str, bool] | None = None   # include_usage: end the stream with a usage chunk


def check_stop(stop):
    """OpenAI's stop: None, a string, or a list of up to MAX_STOPS strings. Returns a list."""
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > MAX_STOPS or not all(isinstance(s, str) and s for s in stops):
        raise ApiError(f"stop must be a non-empty string or a list of at most {MAX_STOPS} non-empty "
                       f"strings, got {stop!r:.100}", "stop", "invalid_stop")
    return stops


def validation_error(exc):
    """FastAPI's RequestValidationError (first problem only) -> ApiError, naming the field like messages[0].role."""
    err = exc.errors()[0]
    loc = [x for x in err["loc"] if x != "body"]
    if err["type"] == "json_invalid":
        detail = err.get("ctx", {}).get("error", "")
        return ApiError(f"the request body is not valid JSON: {detail}", None, "invalid_json")
    if not loc:  # no body, or not an object
        return ApiError(f"the request body must be a JSON object with a 'messages' list ({err['msg']})", None,
                        err["type"])
    param = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in loc).lstrip(".")
    got = "" if err["type"] == "missing" else f" (got {err['input']!r:.100})"
    return ApiError(f"{param}: {err['msg']}{got}", param, err["type"])


# -----------------------------------------------------------------------------
# The routes, over the app's one ChatServer (nanochat/serving.py)

def sse(obj):
    return f"data: {json.dumps(obj)}\n\n"


def server_error(e):
    return ApiError(str(e), status=500, type="server_error")


def prepare(server, req, n=1):
    """A validated request -> (prompt ids, one SamplingParams per choice, dropped turns), or an ApiError for what
    only the server can judge."""
    total = sum(len(m.content) for m in req.messages)
    if total > MAX_TOTAL_CHARS:
        raise ApiError(f"the messages have {total} characters in all, more than the limit of {MAX_TOTAL_CHARS}; drop "
                       "old turns", "messages", "messages_too_long")
    messages = [m.model_dump() for m in req.messages]
    try:  # the chat template's rules ([system], user, assistant, ..., user): the one check of them
        check_messages(messages, last="user")
    except BadConversation as e:
        raise ApiError(str(e), e.where, "invalid_messages") from None
    asked, name = req.max_tokens, "max_tokens"
    if getattr(req, "max_completion_tokens", None) is not None:
        asked, name = req.max_completion_tokens, "max_completion_tokens"
    if asked is not None and asked > server.max_len:
        raise ApiError(f"{name}={asked} is more than this model's context of {server.max_len} tokens", name,
                       "invalid_value")
    if not any(r.alive for r in server.replicas):
        raise ApiError("no model replica is running; see the server log", None, "unavailable", 503, "server_error")
    c = server.config
    max_tokens = asked or min(c.max_tokens, server.max_len)
    try:  # the oldest turns go until the reply fits (one render per dropped pair: why prepare runs off the loop)
        conversation, dropped = fit_conversation(server.tokenizer, {"messages": messages},
                                                 prompt_budget(server.max_len, max_tokens))
    except ValueError as e:  # e.g. the system message alone is longer than the context
        raise ApiError(str(e), "messages", "context_length_exceeded") from None
    temperature = c.temperature if req.temperature is None else req.temperature
    top_k = c.top_k if req.top_k is None else req.top_k
    params = SamplingParams(temperature=temperature, top_k=top_k or None, top_p=getattr(req, "top_p", None),
                            max_tokens=max_tokens, seed=req.seed)
    # With a seed, choice j uses seed + j: the choices differ, and each one reproduces.
    choices = [params if req.seed is None else replace(params, seed=req.seed + j) for j in range(n)]
    return server.tokenizer.render_for_completion(conversation), choices, dropped


router = APIRouter()


@router.get("/", response_class=HTMLResponse)
async def index():
    with open(UI_PATH, encoding="utf-8") as f:  # read per request: edits to ui.html show on reload
        return f.read()


@router.get("/health")
async def health(request: Request):
    """200 "ok" while every replica runs, "degraded" while some do; 503 "down" when none does."""
    server = request.app.state.chat
    alive = [r.alive for r in server.replicas]
    status = "ok" if all(alive) else "degraded" if any(alive) else "down"
    replicas = [{"name": r.name, "device": str(r.engine.device), "alive": r.alive} for r in server.replicas]
    return JSONResponse({"status": status, "model": server.config.model_name, "replicas": replicas},
                        status_code=200 if any(alive) else 503)


@router.get("/stats")
async def stats(request: Request):
    return request.app.state.chat.stats()


@router.get("/v1/models")
async def models(request: Request):
    server = request.app.state.chat
    return {"object": "list", "data": [{"id": server.config.model_name, "object": "model", "created": server.started,
                                        "owned_by": "nanochat"}]}


@router.post("/chat/completions")
async def chat(req: ChatRequest, request: Request):
    server = request.app.state.chat
    prompt, params, dropped = await asyncio.to_thread(prepare, server, req)

    async def events():
        job, finish_reason = Job(prompt, params), None
        renderer = ToolRenderer(server.tokenizer)
        try:
            async with server.running(job):
                async for _, out in job.events():
                    for text, tool in renderer.feed(out):
                        yield sse({"token": text, "tool": True} if tool else {"token": text})
                    finish_reason = out.finish_reason or finish_reason
        except GenerationError as e:
            yield sse(server_error(e).body)
            return
        yield sse({"done": True, "finish_reason": finish_reason, "usage": job.usage(),
                   "dropped_turns": dropped})

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


async def choice_pieces(job, stops, tokenizer):
    """(choice index, text, finish_reason or None) as each choice's text arrives, cut at stop strings."""
    renderers = [ToolRenderer(tokenizer) for _ in job.params]
    cutters = [StopText(stops) for _ in job.params]
    async for i, out in job.events():
        text, stopped = cutters[i].feed("".join(t for t, _ in renderers[i].feed(out)))
        if stopped:
            job.cancel(i)  # the rest of this choice is never shown: stop computing it
            yield i, text, "stop"
        elif out.finished:
            yield i, text + cutters[i].flush(), out.finish_reason
        elif text:
            yield i, text, None


@router.post("/v1/chat/completions")
async def openai_chat(req: OpenAIChatRequest, request: Request):
    server = request.app.state.chat
    stops = check_stop(req.stop)
    prompt, params, dropped = await asyncio.to_thread(prepare, server, req, req.n)
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": server.config.model_name}
    headers = {"X-Dropped-Turns": str(dropped)}
    job = Job(prompt, params)
    if req.stream:
        async def chunks():
            def chunk(choices, **extra):
                return sse({**head, "object": "chat.completion.chunk", "choices": choices, **extra})

            yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                         for i in range(req.n)])
            try:
                async with server.running(job):
                    async for i, text, reason in choice_pieces(job, stops, server.tokenizer):
                        yield chunk([{"index": i, "delta": {"content": text} if text else {}, "finish_reason": reason}])
            except GenerationError as e:
                yield sse(server_error(e).body)
                return
            if (req.stream_options or {}).get("include_usage"):
                yield chunk([], usage=job.usage())
            yield "data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream", headers={**SSE_HEADERS, **headers})

    texts, reasons = [""] * req.n, [None] * req.n
    async with server.running(job):  # a GenerationError becomes a 500 (create_app's handler)
        async for i, text, reason in choice_pieces(job, stops, server.tokenizer):
            texts[i] += text
            reasons[i] = reason or reasons[i]
    choices = [{"index": i, "message": {"role": "assistant", "content": texts[i]}, "finish_reason": reasons[i],
                "logprobs": None} for i in range(req.n)]
    return JSONResponse({**head, "object": "chat.completion", "choices": choices, "usage": job.usage()},
                        headers=headers)


def create_app(engines, tokenizer, config=None):
    """The routes over a new ChatServer, whose replicas' threads stop when the app's lifespan ends."""
    server = ChatServer(engines, tokenizer, config)

    @asynccontextmanager
    async def lifespan(app):
        yield
        for r in server.replicas:
            await asyncio.to_thread(r.stop)  # joins the worker thread: off the event loop

    app = FastAPI(title="nanochat", lifespan=lifespan)
    app.state.chat = server
    app.include_router(router)
    app.add_exception_handler(ApiError, lambda request, exc: exc.response())
    app.add_exception_handler(GenerationError, lambda request, exc: server_error(exc).response())
    app.add_exception_handler(RequestValidationError, lambda request, exc: validation_error(exc).response())
    app.add_exception_handler(StarletteHTTPException, lambda request, exc: ApiError(
        str(exc.detail), None, f"http_{exc.status_code}", exc.status_code).response())
    return app


# -----------------------------------------------------------------------------
# Command line

def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Serve a nanochat model: web UI + OpenAI-compatible API")
    add_checkpoint_args(p, use="to serve")
    p.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes the server to the network")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--replicas", type=int, default=None,
                   help="model replicas: one per GPU (default: every visible GPU); on CPU, copies (default 1)")
    p.add_argument("--device-type", default="", help="cuda | cpu | mps (default: autodetect)")
    p.add_argument("--cpu-threads", type=int, default=1,
                   help="torch threads on CPU (0: torch's default). Decoding from a worker thread with several torch "
                        "threads ran 2x slower than with one on a 2-core box; on CPU, add --replicas instead")
    p.add_argument("--max-batch-size", type=int, default=16, help="concurrent requests batched per replica")
    p.add_argument("--temperature", type=float, default=0.8, help="default sampling temperature (0 = greedy)")
    p.add_argument("--top-k", type=int, default=50, help="default top-k (0 = off)")
    p.add_argument("--max-tokens", type=int, default=512, help="default longest reply, in tokens")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    compute = compute_init(args.device_type)
    if compute.device_type == "cpu" and args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)  # before any replica thread starts
    gpus = torch.cuda.device_count() if compute.device_type == "cuda" else 0
    replicas = args.replicas or gpus or 1
    if not 1 <= replicas <= (gpus or replicas):
        limit = f"1 to {gpus} (one replica per visible GPU)" if gpus else "at least 1"
        raise SystemExit(f"--replicas={replicas}: ask for {limit}")
    devices = [torch.device("cuda", i) for i in range(replicas)] if gpus else [compute.device] * replicas
    engines = []
    for device in devices:
        # CPU/MPS replicas share one set of weights: inference only reads them; each has its own KV cache.
        if not engines or device.type == "cuda":
            model, tokenizer, meta = load_model(args.source, device, args.model_tag, args.step, dtype=compute.dtype)
        engines.append(Engine(model, tokenizer, max_batch_size=args.max_batch_size))
    name = f"nanochat-{args.source}-{os.path.basename(meta['checkpoint_dir'])}-step{meta['step']}"
    config = ServerConfig(model_name=name, temperature=args.temperature, top_k=args.top_k, max_tokens=args.max_tokens)
    app = create_app(engines, tokenizer, config)
    print0(f"serving {name} on {len(engines)} replica(s) ({', '.join(str(d) for d in devices)}) at "
           f"http://{args.host}:{args.port}  (OpenAI base_url: http://{args.host}:{args.port}/v1)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
