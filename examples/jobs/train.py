"""Train a small classifier, with checkpoints that survive preemption: the script behind
``train-1gpu.yaml`` and ``gang-2task.yaml``.

It learns to tell two noisy rings of points apart with a one-hidden-layer network (full-batch
gradient descent with momentum), prints the loss and accuracy as it goes, and keeps its state
in ``--checkpoint-dir``:

- every ``--checkpoint-every`` steps and at the end it writes ``checkpoint.npz`` there
  (a temporary file, then a rename, so a checkpoint is never half written);
- on SIGTERM (allot's preemption, cancel and time limit) or Ctrl-C it finishes the step it is
  in, saves a checkpoint and exits with 128 + the signal's number (143 for SIGTERM);
- started again with the same directory, it resumes from the saved step.

A gang (``WORLD_SIZE`` > 1, as allot sets for a multi-task job) trains data-parallel: each
rank takes every ``WORLD_SIZE``-th sample, the ranks meet at ``MASTER_ADDR:MASTER_PORT`` and
sum their gradients every step (rank 0 adds them up and sends the sum back), so the gang
computes exactly what one process computes on all the data. Rank 0 writes the checkpoints and
sends its state to the others when they start. A real job would use torch.distributed; this
keeps to the standard library so that it runs anywhere.

Needs Python 3.10+ and NumPy; about 100 MiB of memory and one CPU per process. When torch is
installed and sees a GPU (``CUDA_VISIBLE_DEVICES``, which allot sets to the task's GPUs), the
network's forward and backward passes run there; otherwise NumPy runs them on the CPU.

    python3 examples/jobs/train.py --steps 300 --checkpoint-dir out/jobs/try
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

try:
    import numpy as np
except ImportError:
    sys.exit(
        "train.py needs NumPy, which this python3 lacks: run it with the Python of allot's"
        " virtualenv (for a job, start `allot up` with that virtualenv activated)"
    )

CHECKPOINT = "checkpoint.npz"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="train up to this step")
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("out/jobs/train"))
    parser.add_argument("--checkpoint-every", type=int, default=500, help="steps between saves")
    parser.add_argument("--samples", type=int, default=4096, help="size of the data set")
    parser.add_argument("--hidden", type=int, default=16, help="units in the hidden layer")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, help="steps between log lines (steps / 20)")
    parser.add_argument("--device", choices=("auto", "cpu"), default="auto")
    parser.add_argument("--connect-timeout", type=float, default=120.0, help="gang rendezvous")
    args = parser.parse_args(argv)
    if args.log_every is None:
        args.log_every = max(1, args.steps // 20)
    for name in ("steps", "checkpoint_every", "samples", "hidden", "log_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


# --------------------------------------------------------------------------- the model


def rings(samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two noisy rings, radius 1 (label 0) and 2 (label 1), in random order."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, samples).astype(np.float64)
    angle = rng.uniform(0.0, 2 * np.pi, samples)
    radius = 1.0 + labels + rng.normal(0.0, 0.2, samples)
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return points, labels


def initial_params(hidden: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    return [
        rng.normal(0.0, 1.0, (2, hidden)),
        np.zeros(hidden),
        rng.normal(0.0, 1.0 / np.sqrt(hidden), (hidden, 1)),
        np.zeros(1),
    ]


class NumpyMath:
    """The operations the network needs, on NumPy arrays."""

    name = "NumPy on the CPU"

    def asarray(self, value: np.ndarray) -> Any:
        return value

    def numpy(self, value: Any) -> np.ndarray:
        return np.asarray(value, dtype=np.float64)

    def tanh(self, value: Any) -> Any:
        return np.tanh(value)

    def softplus(self, value: Any) -> Any:
        return np.logaddexp(0.0, value)


class TorchMath:
    """The same operations on torch tensors on the first visible GPU."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch
        self.name = f"torch on {torch.cuda.get_device_name(0)}"

    def asarray(self, value: np.ndarray) -> Any:
        return self.torch.as_tensor(value, device="cuda")

    def numpy(self, value: Any) -> np.ndarray:
        return np.asarray(value.detach().cpu().numpy(), dtype=np.float64)

    def tanh(self, value: Any) -> Any:
        return self.torch.tanh(value)

    def softplus(self, value: Any) -> Any:
        return self.torch.nn.functional.softplus(value)


def pick_math(device: str) -> tuple[NumpyMath | TorchMath, str]:
    """torch on a GPU when asked for ``auto`` and both are there; NumPy otherwise (and why)."""
    if device == "cpu":
        return NumpyMath(), "--device cpu"
    try:
        import torch  # type: ignore[import-not-found]
    except ImportError:
        return NumpyMath(), "torch is not installed"
    if not torch.cuda.is_available():
        return NumpyMath(), "torch sees no GPU"
    return TorchMath(torch), f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}"


def gradients(ops: NumpyMath | TorchMath, params: list[np.ndarray], x: Any, y: Any) -> np.ndarray:
    """The gradient of the summed logistic loss over ``x``, flattened, followed by the summed
    loss and the number of correct answers (sums, so ranks can add theirs up)."""
    w1, b1, w2, b2 = (ops.asarray(p) for p in params)
    hidden = ops.tanh(x @ w1 + b1)
    logit = (hidden @ w2 + b2)[:, 0]
    loss = (ops.softplus(logit) - y * logit).sum()
    correct = ((logit > 0) == (y > 0.5)).sum()
    # d loss / d logit = sigmoid(logit) - y, with sigmoid written through tanh (stable).
    dlogit = 0.5 * (1.0 + ops.tanh(0.5 * logit)) - y
    dhidden = dlogit[:, None] * w2.T * (1.0 - hidden * hidden)
    grads = [
        x.T @ dhidden,
        dhidden.sum(0),
        hidden.T @ dlogit[:, None],
        dlogit.sum(0, keepdims=True),
    ]
    flat = [ops.numpy(g).ravel() for g in grads]
    return np.concatenate([*flat, [float(loss), float(correct)]])


def unflatten(flat: np.ndarray, like: list[np.ndarray]) -> list[np.ndarray]:
    out, at = [], 0
    for p in like:
        out.append(flat[at : at + p.size].reshape(p.shape))
        at += p.size
    return out


# --------------------------------------------------------------------------- the gang


def recv_exact(conn: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("a peer of the gang closed its connection")
        data += chunk
    return bytes(data)


class Gang:
    """The ranks of a multi-task job, joined over TCP: rank 0 listens at MASTER_ADDR:
    MASTER_PORT; ``allreduce`` sums a vector over all ranks (rank 0 adds, then sends back)."""

    def __init__(self, rank: int, world: int, address: str, port: int, timeout: float) -> None:
        self.rank, self.world = rank, world
        self.peers: list[socket.socket] = []
        if world == 1:
            return
        if rank == 0:
            with socket.create_server((address, port)) as server:
                server.settimeout(timeout)
                for _ in range(world - 1):
                    conn, _ = server.accept()
                    conn.settimeout(None)
                    recv_exact(conn, 4)  # the peer's rank, for the log
                    self.peers.append(conn)
            return
        deadline = time.monotonic() + timeout
        while True:  # rank 0 may not be listening yet
            try:
                conn = socket.create_connection((address, port), timeout=5.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        conn.settimeout(None)
        conn.sendall(rank.to_bytes(4, "big"))
        self.peers.append(conn)

    def allreduce(self, vector: np.ndarray) -> np.ndarray:
        data = vector.astype("<f8")
        if self.world == 1:
            return data
        if self.rank == 0:
            total = data.copy()
            for conn in self.peers:
                total += np.frombuffer(recv_exact(conn, data.nbytes), dtype="<f8")
            for conn in self.peers:
                conn.sendall(total.tobytes())
            return total
        self.peers[0].sendall(data.tobytes())
        return np.frombuffer(recv_exact(self.peers[0], data.nbytes), dtype="<f8").copy()

    def broadcast(self, vector: np.ndarray) -> np.ndarray:
        """Rank 0's ``vector`` on every rank (the others add zeros)."""
        return self.allreduce(vector if self.rank == 0 else np.zeros_like(vector))


# --------------------------------------------------------------------------- checkpoints


def save(directory: Path, step: int, params: list[np.ndarray], velocity: list[np.ndarray]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CHECKPOINT
    partial = directory / f".{CHECKPOINT}.partial"
    with open(partial, "wb") as handle:
        np.savez(handle, *params, *velocity, step=step)
    os.replace(partial, path)
    return path


def load(
    directory: Path, params: list[np.ndarray]
) -> tuple[int, list[np.ndarray], list[np.ndarray]] | None:
    path = directory / CHECKPOINT
    if not path.exists():
        return None
    with np.load(path) as saved:
        arrays = [saved[f"arr_{i}"] for i in range(2 * len(params))]
        step = int(saved["step"])
    for array, like in zip(arrays, params * 2, strict=True):
        if array.shape != like.shape:
            sys.exit(
                f"{path} holds a network of another size ({array.shape} instead of {like.shape});"
                " give the --hidden it was trained with, or another --checkpoint-dir"
            )
    return step, arrays[: len(params)], arrays[len(params) :]


# --------------------------------------------------------------------------- training


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    stop: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.append(signum)  # finish the step, save, then leave

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ops, why = pick_math(args.device)
    who = f"rank {rank} of {world}" if world > 1 else "one process"
    print(f"{who}: {ops.name} ({why})", flush=True)
    gang = Gang(
        rank,
        world,
        os.environ.get("MASTER_ADDR", "127.0.0.1"),
        int(os.environ.get("MASTER_PORT", "29500")),
        args.connect_timeout,
    )
    if world > 1:
        print(f"rank {rank}: joined the gang of {world}", flush=True)

    points, labels = rings(args.samples, args.seed)
    x = ops.asarray(points[rank::world])
    y = ops.asarray(labels[rank::world])
    params = initial_params(args.hidden, args.seed)
    velocity = [np.zeros_like(p) for p in params]
    step = 0
    if rank == 0 and (saved := load(args.checkpoint_dir, params)) is not None:
        step, params, velocity = saved
        print(f"resuming from step {step} ({args.checkpoint_dir / CHECKPOINT})", flush=True)
    # Every rank starts from rank 0's state: a fresh start, or its checkpoint.
    state = gang.broadcast(np.concatenate([[step], *(p.ravel() for p in params + velocity)]))
    step = int(state[0])
    params = unflatten(state[1:], params)
    velocity = unflatten(state[1 + sum(p.size for p in params) :], velocity)

    started, first = time.perf_counter(), step
    while step < args.steps:
        local = gradients(ops, params, x, y)
        total = gang.allreduce(np.concatenate([local, [1.0 if stop else 0.0]]))
        grads = unflatten(total[:-3] / args.samples, params)
        loss, correct, stopping = total[-3] / args.samples, total[-2] / args.samples, total[-1]
        for p, v, g in zip(params, velocity, grads, strict=True):
            v *= 0.9
            v -= args.lr * g
            p += v
        step += 1
        if step % args.log_every == 0 or step == args.steps:
            pace = (time.perf_counter() - started) / (step - first) * 1000
            if rank == 0:
                print(
                    f"step {step}/{args.steps}  loss {loss:.4f}  accuracy {correct:.1%}"
                    f"  ({pace:.2f} ms/step)",
                    flush=True,
                )
        if stopping:  # some rank was asked to stop: every rank leaves after this same step
            if rank == 0:
                path = save(args.checkpoint_dir, step, params, velocity)
                print(f"stopped at step {step}: saved {path}", flush=True)
            signum = stop[0] if stop else signal.SIGTERM
            return 128 + int(signum)
        if rank == 0 and step % args.checkpoint_every == 0:
            save(args.checkpoint_dir, step, params, velocity)
    if rank == 0:
        path = save(args.checkpoint_dir, step, params, velocity)
        print(f"done: step {step}, checkpoint {path}", flush=True)
    else:
        print(f"rank {rank}: done at step {step}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
