"""Pretraining data: parquet shards under $NANOCHAT_BASE_DIR/base_data, one document per row in a string column
`text`; sorted by name, the LAST is the validation shard. Downloads shards from the Hugging Face hub (parallel,
retried, checked) and iterates documents. Deliberately not here: tokenization and batching (dataloader.py).

    python -m nanochat.dataset -n 240              # 240 training shards + the validation shard
    python -m nanochat.dataset --embedded          # offline: write the embedded corpus (nanochat.synthetic)
"""

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from nanochat.common import atomic_write_text, download_file, get_base_dir

# name -> (hub dataset repo, total shard count); the last shard of each is its validation shard
DATASETS = {
    "fineweb-edu": ("karpathy/fineweb-edu-100b-shuffle", 1823),
    "climbmix": ("karpathy/climbmix-400b-shuffle", 6543),
}
# ClimbMix by default: nanochat measured a clear gain over FineWeb-Edu at equal tokens (its leaderboard run 4,
# 2026-03-03: GPT-2 grade in fewer steps); FineWeb-Edu stays selectable with --dataset.
DEFAULT_DATASET = "climbmix"
MARKER = "DATASET"   # base_data/DATASET names the dataset its shards came from, so two never mix
HUB_URL = "https://huggingface.co/datasets/{repo}/resolve/main/{name}"


def shard_name(index):
    return f"shard_{index:05d}.parquet"


def data_dir(base_dir=None):
    return os.path.join(base_dir or get_base_dir(), "base_data")


def list_shards(directory):
    """All complete shards in `directory`, sorted (temp files of an interrupted download are ignored)."""
    if not os.path.isdir(directory):
        return []
    return sorted(os.path.join(directory, f) for f in os.listdir(directory)
                  if f.startswith("shard_") and f.endswith(".parquet"))


def split_shards(directory, split):
    """Paths of the 'train' shards (all but the last) or the 'val' shard (the last)."""
    assert split in ("train", "val"), split
    paths = list_shards(directory)
    if len(paths) < 2:
        raise FileNotFoundError(
            f"need at least 2 shards in {directory} (training + validation), found {len(paths)}. "
            "Download real data with `python -m nanochat.dataset -n 8`, or write the offline corpus with "
            "`python -m nanochat.dataset --embedded`.")
    return paths[:-1] if split == "train" else paths[-1:]


def iter_documents(paths, start_shard=0, start_row_group=0):
    """Yield (shard_idx, row_group_idx, list of documents) for each row group, in order, from a position."""
    import pyarrow.parquet as pq
    for si in range(start_shard, len(paths)):
        pf = pq.ParquetFile(paths[si])
        first = start_row_group if si == start_shard else 0
        for rg in range(first, pf.num_row_groups):
            yield si, rg, pf.read_row_group(rg, columns=["text"]).column("text").to_pylist()


def iter_texts(directory, split="train", max_chars=None, doc_cap=None):
    """Plain text stream for tokenizer training: documents cropped to `doc_cap` chars, `max_chars` in total."""
    seen = 0
    for _, _, docs in iter_documents(split_shards(directory, split)):
        for doc in docs:
            doc = doc[:doc_cap]   # doc_cap None: the whole document
            yield doc
            seen += len(doc)
            if max_chars is not None and seen >= max_chars:
                return


# -----------------------------------------------------------------------------
# Download

def check_shard(path):
    """Raise ValueError unless `path` is a readable parquet file with a string column `text`."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        schema = pq.read_schema(path)
    except Exception as e:  # pyarrow raises several types for truncated/garbage files
        raise ValueError(f"{path} is not a readable parquet file: {e}") from e
    text_type = schema.field("text").type if "text" in schema.names else None
    if text_type is None or not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
        raise ValueError(f"{path} has no string column 'text' (columns: {schema.names})")


def claim_directory(directory, dataset):
    """Mark `directory` as holding `dataset`'s shards; refuse if it holds another dataset's: shard names are
    the same in every dataset, so mixing would go unnoticed and the validation shard would be the wrong one."""
    os.makedirs(directory, exist_ok=True)
    marker = os.path.join(directory, MARKER)
    held = open(marker).read().strip() if os.path.exists(marker) else None
    if held is None and list_shards(directory):
        held = "unknown (no DATASET file)"
    if held is not None and held != dataset:
        raise ValueError(f"{directory} already holds shards of {held}, not {dataset}: move them elsewhere (or point "
                         f"NANOCHAT_BASE_DIR at a fresh directory), or ask for --dataset {held.split()[0]}")
    if held is None:
        atomic_write_text(marker, dataset + "\n")


def download(num_train_shards, dataset=DEFAULT_DATASET, directory=None, workers=8,
             url_template=HUB_URL, max_attempts=5, backoff=2.0, log=print):
    """Fetch training shards 0..num_train_shards-1 plus the dataset's pinned validation shard."""
    repo, total = DATASETS[dataset]   # main's --dataset choices check the name
    if not 1 <= num_train_shards <= total - 1:
        raise ValueError(f"num_train_shards={num_train_shards}: {dataset} has {total - 1} training shards")
    directory = directory or data_dir()
    claim_directory(directory, dataset)
    indices = list(range(num_train_shards)) + [total - 1]   # the last one is the validation shard
    todo = [i for i in indices if not os.path.exists(os.path.join(directory, shard_name(i)))]
    log(f"{dataset}: {len(indices) - len(todo)}/{len(indices)} shards already in {directory}")
    t0, nbytes = time.time(), 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(download_file, url_template.format(repo=repo, name=shard_name(i)),
                               os.path.join(directory, shard_name(i)), check_shard, max_attempts, 60, backoff): i
                   for i in todo}
        try:
            for done, fut in enumerate(as_completed(futures), 1):
                path = fut.result()
                nbytes += os.path.getsize(path)
                mbps = nbytes / 1e6 / max(time.time() - t0, 1e-6)
                log(f"  [{done}/{len(todo)}] {os.path.basename(path)}  {mbps:.1f} MB/s")
        except RuntimeError as e:
            pool.shutdown(cancel_futures=True)   # the shards not started yet
            raise RuntimeError(f"{e}\nNo network? Every stage can run offline on the embedded corpus: "
                               "`python -m nanochat.dataset --embedded`") from e


def main(argv=None):
    parser = argparse.ArgumentParser(description="Download pretraining shards, or write the embedded corpus")
    parser.add_argument("-n", "--num-shards", type=int, default=8, help="number of training shards to download")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, choices=sorted(DATASETS))
    parser.add_argument("-w", "--workers", type=int, default=8, help="parallel downloads")
    parser.add_argument("--embedded", action="store_true", help="write the offline embedded corpus instead")
    args = parser.parse_args(argv)
    directory = data_dir()
    try:
        if args.embedded:
            from nanochat.synthetic import write_embedded_corpus
            claim_directory(directory, "embedded")
            paths = write_embedded_corpus(directory)
            print(f"embedded corpus: {len(paths)} shards in {directory}")
        else:
            download(args.num_shards, args.dataset, directory, args.workers)
    except (ValueError, RuntimeError) as e:
        print(f"nanochat.dataset: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
