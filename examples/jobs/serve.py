"""A small text-embedding server: the script behind ``inference-half-gpu.yaml``.

It answers over HTTP until it is stopped (SIGTERM, as allot's cancel sends, or Ctrl-C):

- ``POST /embed`` with ``{"texts": ["...", ...]}`` returns ``{"embeddings": [[...], ...]}``:
  each text's words and character trigrams hashed into ``--buckets`` counts, then a fixed
  random projection to ``--dim`` numbers, scaled to length 1 (so a dot product of two
  embeddings is their cosine similarity; texts that share words score higher);
- ``GET /health`` returns ``{"status": "ok", ...}``.

It prints the address it listens on first (``--port 0`` takes any free port, so two copies can
share a machine). allot gives a job that asks for a share of a GPU ``ALLOT_GPU_FRACTION``; when
torch is installed and sees a GPU, the server caps its GPU memory to that share and projects
there, otherwise NumPy does the work on the CPU.

Needs Python 3.10+ and NumPy; about 100 MiB of memory and one CPU.

    python3 examples/jobs/serve.py --port 8080
    curl -s -d '{"texts": ["a GPU job", "a CPU job"]}' http://127.0.0.1:8080/embed
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

try:
    import numpy as np
except ImportError:
    sys.exit(
        "serve.py needs NumPy, which this python3 lacks: run it with the Python of allot's"
        " virtualenv (for a job, start `allot up` with that virtualenv activated)"
    )

MAX_BODY = 1 << 20  # bytes of one request


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0: any free port")
    parser.add_argument("--dim", type=int, default=256, help="numbers per embedding")
    parser.add_argument("--buckets", type=int, default=4096, help="hashed features")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.dim < 1 or args.buckets < 1:
        parser.error("--dim and --buckets must be at least 1")
    return args


def features(text: str) -> list[str]:
    """Lower-case words and the character trigrams of each word (with its edges)."""
    words = text.lower().split()
    grams = [f"#{w}#"[i : i + 3] for w in words for i in range(len(w))]
    return [*words, *grams]


class Embedder:
    """Hashed features times a fixed random projection, on NumPy or a torch GPU."""

    def __init__(self, dim: int, buckets: int, seed: int) -> None:
        self.buckets = buckets
        rng = np.random.default_rng(seed)
        projection = rng.normal(0.0, 1.0 / np.sqrt(dim), (buckets, dim)).astype(np.float32)
        self.torch: Any = None
        self.where = "NumPy on the CPU"
        share = float(os.environ.get("ALLOT_GPU_FRACTION", "1"))
        try:
            import torch  # type: ignore[import-not-found]
        except ImportError:
            self.where += ": torch is not installed"
        else:
            if torch.cuda.is_available():
                # Stay within the share of the GPU this job was given.
                torch.cuda.set_per_process_memory_fraction(share, 0)
                self.torch = torch
                self.where = f"torch on {torch.cuda.get_device_name(0)}, {share:g} of its memory"
            else:
                self.where += ": torch sees no GPU"
        self.projection = (
            projection if self.torch is None else self.torch.as_tensor(projection, device="cuda")
        )

    def _bucket(self, feature: str) -> tuple[int, float]:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.buckets, 1.0 if value >> 63 else -1.0

    def embed(self, texts: list[str]) -> list[list[float]]:
        counts = np.zeros((len(texts), self.buckets), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in features(text):
                bucket, sign = self._bucket(feature)
                counts[row, bucket] += sign
        if self.torch is None:
            vectors = counts @ self.projection
        else:
            vectors = (self.torch.as_tensor(counts, device="cuda") @ self.projection).cpu().numpy()
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms > 0, norms, 1.0)
        return [[round(float(v), 6) for v in row] for row in vectors]


class Handler(BaseHTTPRequestHandler):
    server: EmbeddingServer

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path != "/health":
            self._reply(404, {"error": f"no such path {self.path!r}; try GET /health"})
            return
        self._reply(200, {"status": "ok", "served": self.server.served})

    def do_POST(self) -> None:
        if self.path != "/embed":
            self._reply(404, {"error": f"no such path {self.path!r}; try POST /embed"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, {"error": f"the body is over {MAX_BODY} bytes"})
            return
        try:
            texts = json.loads(self.rfile.read(length) or b"null")["texts"]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._reply(400, {"error": 'send JSON like {"texts": ["some text", ...]}'})
            return
        embeddings = self.server.embedder.embed(texts)
        self.server.count(len(texts))
        self._reply(200, {"dim": len(embeddings[0]) if embeddings else 0, "embeddings": embeddings})

    def log_message(self, format: str, *args: Any) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


class EmbeddingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], embedder: Embedder) -> None:
        super().__init__(address, Handler)
        self.embedder = embedder
        self.served = 0
        self._lock = threading.Lock()

    def count(self, texts: int) -> None:
        with self._lock:
            self.served += texts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    embedder = Embedder(args.dim, args.buckets, args.seed)
    server = EmbeddingServer((args.host, args.port), embedder)
    port = server.server_address[1]
    print(f"listening on http://{args.host}:{port} with {embedder.where}", flush=True)
    # serve_forever in a thread: shutdown() must come from another thread than the one serving.
    worker = threading.Thread(target=server.serve_forever, daemon=True)
    worker.start()
    while not stop.wait(0.5):  # wakes now and then, so a signal is seen promptly
        pass
    server.shutdown()
    server.server_close()
    print(f"stopped after embedding {server.served} text(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
