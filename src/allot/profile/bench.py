"""The microbenchmarks of ``allot node check``, run on the machine itself.

With PyTorch and a CUDA GPU, per GPU: bf16 and fp16 GEMM TFLOP/s (square matrices of
``GEMM_SIZE``), device memory bandwidth (a device-to-device copy: bytes read plus written
over time), pinned host-to-device and device-to-host copy bandwidth; across the node's GPUs
when it has several, NCCL all-reduce bus bandwidth as nccl-tests defines it (algorithm
bandwidth x 2(n-1)/n). Without a GPU: fp32 (and, with PyTorch, bf16) GEMM and memory
bandwidth of the CPU, with NumPy when PyTorch is absent, and a note that the GPU checks need
a GPU. Each figure is the best of a few timed repeats after a warm-up, as benchmarks report.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from allot.profile.health import Measurement

GEMM_SIZE = 8192
CPU_GEMM_SIZE = 1024
COPY_BYTES = 1 << 30
CPU_COPY_BYTES = 1 << 28
HOST_COPY_BYTES = 1 << 28
ALLREDUCE_BYTES = 1 << 28
REPEATS = 5


@dataclass(frozen=True)
class CheckRun:
    """What one node check measured, what ran it, and what it could not check."""

    measurements: tuple[Measurement, ...]
    device: str  # the GPUs' name, or "cpu"
    gpus: int
    notes: tuple[str, ...]


def _best(run: Callable[[], float], repeats: int = REPEATS) -> float:
    """The shortest of ``repeats`` timings of ``run`` (which returns seconds), after one
    untimed warm-up."""
    run()
    return min(run() for _ in range(repeats))


def torch_available() -> bool:
    """True when PyTorch can be imported here."""
    return importlib.util.find_spec("torch") is not None


def run_checks(*, quick: bool = False) -> CheckRun:
    """Every check this machine can run (``quick``: smaller sizes, for tests)."""
    if torch_available():
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            return _gpu_checks(quick)
        return _cpu_checks(quick, with_torch=True)
    return _cpu_checks(quick, with_torch=False)


def _cpu_checks(quick: bool, *, with_torch: bool) -> CheckRun:
    import numpy as np

    n = CPU_GEMM_SIZE // (4 if quick else 1)
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)

    def gemm() -> float:
        start = time.perf_counter()
        np.matmul(a, b)
        return time.perf_counter() - start

    found = [Measurement("gemm_fp32", "cpu", 2 * n**3 / _best(gemm) / 1e12)]
    if with_torch:
        import torch

        x = torch.randn(n, n, dtype=torch.bfloat16)
        y = torch.randn(n, n, dtype=torch.bfloat16)

        def gemm_bf16() -> float:
            start = time.perf_counter()
            torch.mm(x, y)
            return time.perf_counter() - start

        found.append(Measurement("gemm_bf16", "cpu", 2 * n**3 / _best(gemm_bf16) / 1e12))
    size = CPU_COPY_BYTES // (16 if quick else 1)
    src = np.ones(size // 8, dtype=np.float64)
    dst = np.empty_like(src)

    def copy() -> float:
        start = time.perf_counter()
        np.copyto(dst, src)
        return time.perf_counter() - start

    found.append(Measurement("memory", "cpu", 2 * size / _best(copy) / 1e9))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    notes: tuple[str, ...] = (
        "no GPU here: GEMM and memory bandwidth were measured on the CPU"
        f" ({cores} cores); GPU GEMM, host-device copies and NCCL all-reduce need a GPU",
    )
    if not with_torch:
        notes += (
            "PyTorch is not installed: fp32 GEMM with NumPy only (pip install 'allot[profile]')",
        )
    return CheckRun(tuple(found), "cpu", 0, notes)


def _gpu_checks(quick: bool) -> CheckRun:
    import torch

    count = torch.cuda.device_count()
    found: list[Measurement] = []
    n = GEMM_SIZE // (4 if quick else 1)
    copy_bytes = COPY_BYTES // (16 if quick else 1)
    host_bytes = HOST_COPY_BYTES // (16 if quick else 1)
    for index in range(count):
        device = torch.device("cuda", index)
        name = f"cuda:{index}"
        for dtype, label in ((torch.bfloat16, "gemm_bf16"), (torch.float16, "gemm_fp16")):
            a = torch.randn(n, n, dtype=dtype, device=device)
            b = torch.randn(n, n, dtype=dtype, device=device)
            seconds = _timed_cuda(device, partial(torch.mm, a, b))
            found.append(Measurement(label, name, 2 * n**3 / seconds / 1e12))
        src = torch.empty(copy_bytes, dtype=torch.uint8, device=device)
        dst = torch.empty_like(src)
        seconds = _timed_cuda(device, partial(dst.copy_, src))
        found.append(Measurement("memory", name, 2 * copy_bytes / seconds / 1e9))
        host = torch.empty(host_bytes, dtype=torch.uint8, pin_memory=True)
        on_device = torch.empty(host_bytes, dtype=torch.uint8, device=device)
        seconds = _timed_cuda(device, partial(on_device.copy_, host, non_blocking=True))
        found.append(Measurement("host_to_device", name, host_bytes / seconds / 1e9))
        seconds = _timed_cuda(device, partial(host.copy_, on_device, non_blocking=True))
        found.append(Measurement("device_to_host", name, host_bytes / seconds / 1e9))
    notes: tuple[str, ...] = ()
    if count > 1:
        found.append(Measurement("allreduce", "all", _allreduce_busbw(count, quick)))
    else:
        notes = ("one GPU: the NCCL all-reduce check needs two or more",)
    return CheckRun(tuple(found), torch.cuda.get_device_name(0), count, notes)


def _timed_cuda(device: Any, work: Callable[[], object], repeats: int = REPEATS) -> float:
    """Seconds ``work`` takes on ``device``, timed with CUDA events (best of ``repeats``)."""
    import torch

    with torch.cuda.device(device):
        work()
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            start.record()
            work()
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3)
    return best


def _allreduce_worker(rank: int, world: int, port: int, size: int, out: object) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl", rank=rank, world_size=world)
    torch.cuda.set_device(rank)
    data = torch.ones(size // 4, dtype=torch.float32, device="cuda")
    dist.all_reduce(data)
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(REPEATS):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(data)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    if rank == 0:
        out.put(best)  # type: ignore[attr-defined]
    dist.destroy_process_group()


def _allreduce_busbw(world: int, quick: bool) -> float:
    """NCCL all-reduce bus bandwidth in GB/s across ``world`` local GPUs."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    size = ALLREDUCE_BYTES // (16 if quick else 1)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    mp.start_processes(  # type: ignore[attr-defined, no-untyped-call]
        _allreduce_worker, args=(world, port, size, out), nprocs=world, start_method="spawn"
    )
    seconds = float(out.get())
    return size / seconds * 2 * (world - 1) / world / 1e9
