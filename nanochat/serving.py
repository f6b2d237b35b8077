"""
Serving many chat requests at once: `ChatServer` over a pool of model replicas, each with one worker thread
that batches every request it holds into one engine Session (dynamic batching), plus `StopText` for stop strings.

Deliberately not here: HTTP and request validation (scripts/chat_web.py), a queue-length limit, fairness beyond
first come first served, and moving rows between replicas.
"""

import asyncio
import threading
import time
import traceback
from collections import deque
from contextlib import asynccontextmanager, nullcontext, suppress
from dataclasses import dataclass
from functools import partial

import torch


@dataclass
class ServerConfig:
    model_name: str = "nanochat"
    temperature: float = 0.8      # defaults for requests that do not say
    top_k: int = 50
    max_tokens: int = 512         # capped by the model's context


class ChatServer:
    """The replicas of one model (a list of Engines), request defaults and counters.
    Each job goes whole to the least-loaded live replica."""

    def __init__(self, engines, tokenizer, config=None):
        self.config, self.tokenizer = config or ServerConfig(), tokenizer
        self.replicas = [Replica(e, str(i)) for i, e in enumerate(engines)]
        self.max_len = min(e.max_len for e in engines)  # the KV cache: prompt + reply must fit in it
        self.counters = {"requests_served": 0, "requests_active": 0}
        self.started = int(time.time())

    @asynccontextmanager
    async def running(self, job):
        """Submit a job; whatever ends the request (done, error, client gone) frees its rows at once."""
        self.counters["requests_active"] += 1
        try:
            live = [r for r in self.replicas if r.alive]
            if not live:
                raise GenerationError("no model replica is running; see the server log")
            min(live, key=lambda r: len(r.rows) + len(r.pending)).submit(job)
            yield job
        finally:
            job.cancel()
            self.counters["requests_active"] -= 1
            self.counters["requests_served"] += 1

    def stats(self):
        per = [r.stats() for r in self.replicas]
        totals = {k: sum(s[k] for s in per) for k in ("active_rows", "queued_rows", "tokens_generated")}
        return {**self.counters, **totals, "replicas": per}


class GenerationError(RuntimeError):
    """The replica could not produce this row (the engine raised, or the server is shutting down)."""


class Job:
    """One request: a prompt and one SamplingParams per choice; create it on the event loop, iterate events()."""

    def __init__(self, prompt, params):
        assert params, "one SamplingParams per choice"
        self.prompt = list(prompt)
        self.params = list(params)
        self.loop = asyncio.get_running_loop()
        self.queue = asyncio.Queue()
        self.cancelled = [False] * len(self.params)  # written by the loop, read by the worker thread
        self.completion_tokens = 0

    def usage(self):
        return {"prompt_tokens": len(self.prompt), "completion_tokens": self.completion_tokens,
                "total_tokens": len(self.prompt) + self.completion_tokens}

    def deliver(self, index, item):
        """Called from the worker thread: item is a StepOutput or a GenerationError for choice `index`."""
        with suppress(RuntimeError):  # the event loop is closed: the server is gone, nobody is listening
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (index, item))

    def cancel(self, index=None):
        """Stop generating one choice (or all): the worker drops the rows before its next step."""
        for i in range(len(self.cancelled)) if index is None else [index]:
            self.cancelled[i] = True

    async def events(self):
        """Yields (choice index, StepOutput) until every choice finished or was cancelled; raises GenerationError."""
        running = set(range(len(self.params)))
        while any(not self.cancelled[i] for i in running):
            index, item = await self.queue.get()
            if isinstance(item, Exception):
                raise item
            if self.cancelled[index]:
                continue  # produced before the worker saw the cancel
            self.completion_tokens += 1
            if item.finished:
                running.discard(index)
            yield index, item


class Replica:
    """One Engine and the worker thread that owns its Session, from construction until stop(); autocast is
    thread-local, so the worker enters it."""

    def __init__(self, engine, name):
        self.engine, self.name = engine, name
        self.autocast = partial(torch.autocast, "cuda", torch.bfloat16) if engine.device.type == "cuda" else nullcontext
        self.cond = threading.Condition()
        self.pending = deque()  # (job, choice index) rows waiting for a slot; shared, guarded by cond
        self.rows = {}          # session row id -> (job, choice index); touched by the worker thread only
        self.tokens_generated = self.rows_finished = self.errors = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name=f"replica-{name}", daemon=True)
        self.thread.start()

    @property
    def alive(self):
        return self.thread.is_alive()

    def stop(self, timeout=10.0):
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join(timeout)

    def submit(self, job):
        with self.cond:
            self.pending.extend((job, i) for i in range(len(job.params)))
            self.cond.notify()

    def _run(self):
        session = self.engine.session()
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.stopping or self.rows or self.pending)
                if self.stopping:
                    break
            self._drop_cancelled(session)
            self._admit(session)
            if self.rows:
                try:
                    with self.autocast():
                        outputs = session.step()
                except Exception as e:  # a bug or an out-of-memory: fail these rows, keep serving
                    traceback.print_exc()
                    self.errors += 1
                    self._fail_all(f"generation failed on replica {self.name}: {type(e).__name__}: {e}")
                    session = self.engine.session()
                    continue
                for row_id, out in outputs.items():
                    job, i = self.rows.pop(row_id) if out.finished else self.rows[row_id]
                    self.tokens_generated += 1
                    self.rows_finished += out.finished
                    job.deliver(i, out)
        self._fail_all("the server is shutting down")

    def _drop_cancelled(self, session):
        for row_id, (job, i) in list(self.rows.items()):
            if job.cancelled[i]:
                session.remove(row_id)
                del self.rows[row_id]
        with self.cond:  # cancelled rows still waiting leave the queue too, so the stats stay honest
            self.pending = deque((job, i) for job, i in self.pending if not job.cancelled[i])

    def _admit(self, session):
        """Prefill waiting rows into free slots: the new rows join the running batch at the next step."""
        while session.free_slots:
            with self.cond:
                if not self.pending:
                    return
                job, i = self.pending.popleft()
            try:
                with self.autocast():
                    self.rows[session.add(job.prompt, job.params[i])] = (job, i)
            except Exception as e:  # e.g. a prompt longer than the KV cache: this row fails, the rest go on
                job.deliver(i, GenerationError(f"{type(e).__name__}: {e}"))

    def _fail_all(self, message):
        with self.cond:
            waiting, self.pending = list(self.pending), deque()
        for job, i in list(self.rows.values()) + waiting:
            job.deliver(i, GenerationError(message))
        self.rows.clear()

    def stats(self):
        return {"name": self.name, "device": str(self.engine.device), "alive": self.alive,
                "active_rows": len(self.rows), "queued_rows": len(self.pending), "capacity": self.engine.max_batch_size,
                "tokens_generated": self.tokens_generated, "rows_finished": self.rows_finished, "errors": self.errors}


# -----------------------------------------------------------------------------
# Reply text

class StopText:
    """Cuts a text stream where the first stop string (ends earliest, longer on a tie) is complete, dropping it.
    feed() -> (text safe to emit, stopped); the last len(longest stop) - 1 characters are held back until flush()."""

    def __init__(self, stops=()):
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.buffer = ""

    def feed(self, text):
        self.buffer += text
        # find() gives each stop's earliest occurrence; no earlier one can exist, or we would have stopped
        hits = [(i + len(s), i) for s in self.stops if (i := self.buffer.find(s)) >= 0]
        if hits:
            out, self.buffer = self.buffer[:min(hits)[1]], ""
            return out, True
        split = max(0, len(self.buffer) - self.hold)
        out, self.buffer = self.buffer[:split], self.buffer[split:]
        return out, False

    def flush(self):
        out, self.buffer = self.buffer, ""
        return out
