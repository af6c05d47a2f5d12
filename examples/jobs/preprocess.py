"""Tokenize a folder of text into shards of token ids: the script behind ``preprocess-cpu.yaml``.

A CPU-only job that uses the CPUs it asked for: ``--workers`` processes read the ``.md``,
``.txt`` and ``.rst`` files under ``--input`` (the repository's own ``docs`` make a small
corpus), split them into lower-case words and punctuation, and count them; the most frequent
``--vocab-size`` tokens make the vocabulary (``<unk>`` is 0, ``<eos>``, which ends each file,
is 1). A second pass turns every file into token ids. It writes into ``--output``:

- ``tokens-00000.npy``, ...: the ids (``uint32``), ``--shard-size`` tokens per shard;
- ``vocab.json``: the tokens in id order, and what was read.

Needs Python 3.10+ and NumPy; memory grows with the corpus (the docs take a few tens of MiB).

    python3 examples/jobs/preprocess.py --input docs --output out/jobs/tokens --workers 2
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

try:
    import numpy as np
except ImportError:
    sys.exit(
        "preprocess.py needs NumPy, which this python3 lacks: run it with the Python of allot's"
        " virtualenv (for a job, start `allot up` with that virtualenv activated)"
    )

SUFFIXES = (".md", ".txt", ".rst")
TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
SPECIALS = ("<unk>", "<eos>")
T = TypeVar("T")
R = TypeVar("R")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="folder of text files")
    parser.add_argument("--output", type=Path, required=True, help="folder for the shards")
    parser.add_argument("--workers", type=int, default=1, help="processes (one per CPU)")
    parser.add_argument("--vocab-size", type=int, default=8192, help="tokens kept, specials too")
    parser.add_argument("--shard-size", type=int, default=1 << 20, help="tokens per shard")
    args = parser.parse_args(argv)
    for name in ("workers", "shard_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.vocab_size <= len(SPECIALS):
        parser.error(f"--vocab-size must be more than {len(SPECIALS)} (room for {SPECIALS})")
    if not args.input.is_dir():
        parser.error(f"--input: {args.input} is not a folder")
    return args


def tokens(path: Path) -> list[str]:
    return TOKEN.findall(path.read_text(encoding="utf-8", errors="replace").lower())


def count(path: Path) -> Counter[str]:
    return Counter(tokens(path))


def encode(job: tuple[Path, dict[str, int]]) -> np.ndarray:
    path, ids = job
    unknown, end = ids[SPECIALS[0]], ids[SPECIALS[1]]
    return np.array([*(ids.get(t, unknown) for t in tokens(path)), end], dtype=np.uint32)


def run_all(workers: int, work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``work`` over ``items`` in ``workers`` processes (in this one for a single worker)."""
    if workers == 1:
        return [work(item) for item in items]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(work, items, chunksize=4))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    files = sorted(p for p in args.input.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    if not files:
        print(f"no {', '.join(SUFFIXES)} files under {args.input}", file=sys.stderr)
        return 1
    counts: Counter[str] = Counter()
    for part in run_all(args.workers, count, files):
        counts.update(part)
    # Most frequent first; ties in alphabetical order, so the same corpus gives the same ids.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    vocab = [*SPECIALS, *(t for t, _ in ranked[: args.vocab_size - len(SPECIALS)])]
    ids = {t: i for i, t in enumerate(vocab)}
    encoded = run_all(args.workers, encode, [(path, ids) for path in files])
    stream = np.concatenate(encoded)

    args.output.mkdir(parents=True, exist_ok=True)
    for old in args.output.glob("tokens-*.npy"):
        old.unlink()
    shards = []
    for n, start in enumerate(range(0, stream.size, args.shard_size)):
        shard = args.output / f"tokens-{n:05d}.npy"
        np.save(shard, stream[start : start + args.shard_size])
        shards.append(shard.name)
    unknown = int((stream == ids[SPECIALS[0]]).sum())
    summary = {
        "input": str(args.input),
        "files": len(files),
        "tokens": int(stream.size),
        "distinct": len(counts),
        "unknown": unknown,
        "shards": shards,
        "vocab": vocab,
    }
    (args.output / "vocab.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(
        f"{args.workers} worker(s) tokenized {len(files)} files from {args.input}:"
        f" {stream.size:,} tokens, {len(counts):,} distinct, vocabulary of {len(vocab):,}"
        f" ({unknown:,} tokens outside it); wrote {len(shards)} shard(s) to {args.output}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
