"""nanochat/dataset.py downloads, against a real HTTP server on 127.0.0.1 serving shards in the hub's format."""

import http.server
import io
import os
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nanochat import dataset


def parquet_bytes(docs):
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": docs}), buf, row_group_size=1024, compression="zstd")
    return buf.getvalue()


class FakeHub:
    """Serves /datasets/<repo>/resolve/main/shard_NNNNN.parquet; can fail or truncate the first tries."""

    def __init__(self, files, fail_first=0, truncate_first=0):
        self.files, self.fail_left, self.truncate_left = files, fail_first, truncate_first
        self.requests, self.paths = [], []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                hub.requests.append(name)
                hub.paths.append(self.path)
                if hub.fail_left > 0:
                    hub.fail_left -= 1
                    self.send_error(503)
                    return
                if name not in hub.files:
                    self.send_error(404)
                    return
                body = hub.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if hub.truncate_left > 0:   # announce the full size, send half, hang up
                    hub.truncate_left -= 1
                    body = body[: len(body) // 2]
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}" + "/datasets/{repo}/resolve/main/{name}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def small_dataset(monkeypatch):
    # a pretend 5-shard dataset: shards 0-3 are training data, shard 4 the validation shard
    monkeypatch.setitem(dataset.DATASETS, "tiny-test", ("someone/tiny-test", 5))
    return {dataset.shard_name(i): parquet_bytes([f"document {i}-{j}" for j in range(10)]) for i in range(5)}


def test_download_with_retries(tmp_path, small_dataset):
    hub = FakeHub(small_dataset, fail_first=2, truncate_first=1)
    try:
        dataset.download(2, "tiny-test", str(tmp_path), workers=2, url_template=hub.url, backoff=0.01,
                         log=lambda *a: None)
    finally:
        hub.close()
    names = sorted(f for f in os.listdir(tmp_path) if f != "DATASET")
    assert names == ["shard_00000.parquet", "shard_00001.parquet", "shard_00004.parquet"]  # + pinned val shard
    for n in names:
        assert pq.read_table(tmp_path / n).column("text").to_pylist()[0].startswith("document")
    assert dataset.split_shards(str(tmp_path), "val") == [str(tmp_path / "shard_00004.parquet")]
    assert len(hub.requests) == 3 + 3   # 2 refused + 1 truncated retried, then 3 good


def test_download_is_idempotent(tmp_path, small_dataset):
    hub = FakeHub(small_dataset)
    try:
        dataset.download(1, "tiny-test", str(tmp_path), url_template=hub.url, log=lambda *a: None)
        first = len(hub.requests)
        dataset.download(1, "tiny-test", str(tmp_path), url_template=hub.url, log=lambda *a: None)
    finally:
        hub.close()
    assert first == 2 and len(hub.requests) == 2


def test_download_gives_up_clearly(tmp_path, small_dataset):
    hub = FakeHub({})   # every file 404s
    try:
        with pytest.raises(RuntimeError, match="--embedded"):
            dataset.download(1, "tiny-test", str(tmp_path), url_template=hub.url, max_attempts=2, backoff=0.01,
                             log=lambda *a: None)
    finally:
        hub.close()
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".parquet") or f.endswith(".tmp")]


def test_garbage_file_is_rejected(tmp_path, small_dataset):
    small_dataset[dataset.shard_name(0)] = b"<html>not parquet</html>"
    hub = FakeHub(small_dataset)
    try:
        with pytest.raises(RuntimeError, match="not a readable parquet"):
            dataset.download(1, "tiny-test", str(tmp_path), url_template=hub.url, max_attempts=1,
                             log=lambda *a: None)
    finally:
        hub.close()
    assert not (tmp_path / "shard_00000.parquet").exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(KeyError, match="nope"):   # the CLI's --dataset choices name the valid ones
        dataset.download(1, "nope", str(tmp_path))
    with pytest.raises(ValueError, match="num_train_shards=0"):
        dataset.download(0, "fineweb-edu", str(tmp_path))


def test_climbmix_is_the_default_and_uses_its_own_validation_shard(tmp_path):
    """The default dataset is ClimbMix: its files come from its hub repo, and its last shard (06542) is the
    pinned validation shard."""
    assert dataset.DEFAULT_DATASET == "climbmix"
    files = {dataset.shard_name(i): parquet_bytes([f"climbmix doc {i}"]) for i in (0, 1, 6542)}
    hub = FakeHub(files)
    try:
        dataset.download(2, directory=str(tmp_path), url_template=hub.url, log=lambda *a: None)
    finally:
        hub.close()
    assert sorted(hub.paths) == [f"/datasets/karpathy/climbmix-400b-shuffle/resolve/main/shard_{i:05d}.parquet"
                                 for i in (0, 1, 6542)]
    assert dataset.split_shards(str(tmp_path), "val") == [str(tmp_path / "shard_06542.parquet")]
    assert (tmp_path / "DATASET").read_text().strip() == "climbmix"


def test_datasets_never_mix_in_one_directory(tmp_path, small_dataset):
    hub = FakeHub(small_dataset)
    try:
        dataset.download(1, "tiny-test", str(tmp_path), url_template=hub.url, log=lambda *a: None)
        with pytest.raises(ValueError, match="already holds shards of tiny-test"):
            dataset.download(1, "climbmix", str(tmp_path), url_template=hub.url, log=lambda *a: None)
        unmarked = tmp_path / "old"
        unmarked.mkdir()
        (unmarked / "shard_00000.parquet").write_bytes(small_dataset["shard_00000.parquet"])
        with pytest.raises(ValueError, match="unknown"):
            dataset.download(1, "tiny-test", str(unmarked), url_template=hub.url, log=lambda *a: None)
    finally:
        hub.close()
    assert sorted(os.listdir(tmp_path)) == ["DATASET", "old", "shard_00000.parquet", "shard_00004.parquet"]
