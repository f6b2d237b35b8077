"""Small utilities every stage shares: where artifacts live, printing from rank 0, atomic writes and downloads, and
the compute (device, dtype, process group). Nothing runs at import: a script calls `compute_init()` in its `main()`
and passes the `Compute` down; library code never reads torchrun's environment variables itself.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass


class BadInput(Exception):
    """Input a user can fix (a flag, a file, a missing artifact), found at a boundary."""


@contextmanager
def cli(name):
    """A script's main runs inside this: BadInput or FileNotFoundError becomes `name: error: ...` and exit status
    2, as argparse does for a bad flag; the process group, if any, is torn down either way."""
    try:
        yield
    except (BadInput, FileNotFoundError) as e:
        print(f"{name}: error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    finally:
        compute_cleanup()


def positive(kind):
    """An argparse `type` for a positive number of `kind` (int or float): `--steps 0` is refused by name."""
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    parse.__name__ = f"positive {kind.__name__}"   # argparse names it in "invalid positive int value"
    return parse


def get_base_dir():
    """Root of every artifact a run produces: $NANOCHAT_BASE_DIR, default ~/.cache/nanochat."""
    base = os.environ.get("NANOCHAT_BASE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "nanochat")
    os.makedirs(base, exist_ok=True)
    return base


def dist_info():
    """(rank, local_rank, world_size) from torchrun's environment, (0, 0, 1) when not under torchrun."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"])
    return 0, 0, 1


def print0(*args, **kwargs):
    """print() on rank 0 only, flushed so logs interleave sensibly under torchrun."""
    if dist_info()[0] == 0:
        kwargs.setdefault("flush", True)
        print(*args, **kwargs)


def parse_json(text, where):
    """json.loads(text), or a ValueError naming `where` (e.g. "path:line") when it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None


def read_jsonl(path):
    """[(where, value)] for the non-blank lines of a JSON-lines file, where = "path:line"."""
    with open(path, encoding="utf-8") as f:
        return [(f"{path}:{n}", parse_json(line, f"{path}:{n}")) for n, line in enumerate(f, 1) if line.strip()]


# -----------------------------------------------------------------------------
# Atomic writes: every artifact is written to a temp file in the same directory, then renamed,
# so a reader (or a resumed run) never sees half a file.

@contextmanager
def atomic_path(path):
    """Yields a temp path next to `path`; on clean exit renames it onto `path`, on error deletes it."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):   # the rename did not happen: leave no temp file behind
            os.remove(tmp)


def atomic_write_text(path, text):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(text.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def download_file(url, dest, check=None, max_attempts=5, timeout=60, backoff=2.0):
    """Download `url` to `dest` atomically, retried with exponential backoff; the size must match the server's
    Content-Length and `check(temp path)` must not raise. An existing `dest` is kept. RuntimeError at the end."""
    import requests
    if os.path.exists(dest):
        return dest
    for attempt in range(1, max_attempts + 1):
        try:
            with requests.get(url, stream=True, timeout=timeout) as r, atomic_path(dest) as tmp:
                r.raise_for_status()
                with open(tmp, "wb") as f:
                    for chunk in r.iter_content(chunk_size=1 << 20):
                        f.write(chunk)
                expected, size = int(r.headers.get("Content-Length", -1)), os.path.getsize(tmp)
                if expected >= 0 and size != expected:
                    raise OSError(f"got {size} bytes, server announced {expected}")
                if check:
                    check(tmp)
            return dest
        except (OSError, ValueError, requests.RequestException) as e:
            if attempt == max_attempts:
                raise RuntimeError(f"failed to download {url} after {max_attempts} attempts: {e}") from e
            time.sleep(backoff * 2 ** (attempt - 1))


@contextmanager
def file_lock(path):
    """Holds an exclusive flock(2) on `path` (created if missing) for the `with` block, across processes and
    threads (each call opens its own descriptor). The kernel drops it when the holder dies, even by SIGKILL."""
    import fcntl
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)   # closing the descriptor releases the lock


# -----------------------------------------------------------------------------
# Compute setup

def autodetect_device_type():
    """'cuda' if a GPU is visible, else 'mps' on Apple silicon, else 'cpu'."""
    import torch
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@dataclass
class Compute:
    """Where a stage runs. Passed down explicitly, never global."""
    device_type: str         # "cuda" | "cpu" | "mps"
    device: object           # torch.device
    rank: int
    world_size: int
    ddp: bool                # True when a process group is initialised (world_size > 1)

    @property
    def master(self):
        return self.rank == 0

    @property
    def dtype(self):
        """The matmuls' dtype: bf16 on GPUs that have it, else fp32. Weights, optimizer state, loss: always fp32."""
        import torch
        if self.device_type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32

    def autocast(self):
        """The context forwards run in: autocast to self.dtype (casting fp32 weights per op), or a no-op for fp32."""
        import torch
        fp32 = self.dtype == torch.float32
        return nullcontext() if fp32 else torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def synchronize(self):
        import torch
        if self.device_type == "cuda":
            torch.cuda.synchronize()

    def peak_memory(self):
        """Peak bytes: the CUDA allocator's peak on a GPU, the process's peak resident set elsewhere."""
        import torch
        if self.device_type == "cuda":
            return torch.cuda.max_memory_allocated()
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # Linux reports KiB


def compute_init(device_type="", seed=42):
    """Pick the device, seed RNGs and, under torchrun, join the process group (NCCL on GPUs, gloo on CPU)."""
    import torch
    import torch.distributed as dist
    device_type = device_type or autodetect_device_type()
    if device_type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device_type='cuda' but no CUDA GPU is visible; pass --device-type=cpu")
    rank, local_rank, world_size = dist_info()
    if device_type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        device = torch.device(device_type)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=device if device_type == "cuda" else None)
        dist.barrier()
    torch.manual_seed(seed)   # seeds every device's generator, CUDA's included
    return Compute(device_type, device, rank, world_size, ddp=world_size > 1)


def active_dist():
    """torch.distributed when a process group is initialised, else None."""
    import torch.distributed as dist
    return dist if dist.is_available() and dist.is_initialized() else None


def compute_cleanup():
    if active_dist():
        active_dist().destroy_process_group()


def all_ranks_sum(values, device="cpu", op="sum"):
    """Each number of `values` summed (op="max": the max) over ranks in one float64 all_reduce; unchanged alone."""
    import torch
    dist = active_dist()
    if not dist:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t.tolist()


def all_ranks_max(value, device="cpu"):
    return all_ranks_sum([value], device, op="max")[0]
