"""Default CPU and memory per task from the node shape (``allot.core.defaults``)."""

from __future__ import annotations

from allot.core.defaults import CPU_TASK_DEFAULT, fill_task, per_gpu_share
from allot.core.model import Node, Resources

LAPTOP = Node("laptop", "gpu", 4, 2_000, 8_192)  # 4 declared GPUs, 2 CPUs, 8 GiB
FAT = Node("fat", "H100", 8, 128_000, 1_048_576)  # 16 CPUs and 128 GiB per GPU
THIN = Node("thin", "H100", 8, 64_000, 524_288)  # 8 CPUs and 64 GiB per GPU
A100 = Node("a100", "A100", 4, 16_000, 131_072)  # 4 CPUs and 32 GiB per GPU
CPU_ONLY = Node("cpu", "cpu", 0, 1_000, 1_024)


def test_a_gpu_task_gets_its_gpus_share_of_the_node() -> None:
    assert per_gpu_share([LAPTOP], (), 1000) == Resources(1000, 500, 2048)
    assert per_gpu_share([LAPTOP], (), 4000) == Resources(4000, 2000, 8192)


def test_the_smallest_ratio_among_the_accepted_flavors_wins() -> None:
    nodes = [FAT, THIN, A100, CPU_ONLY]
    assert per_gpu_share(nodes, ("H100",), 2000) == Resources(2000, 16_000, 131_072)
    assert per_gpu_share(nodes, ("H100", "A100"), 1000) == Resources(1000, 4_000, 32_768)
    assert per_gpu_share(nodes, (), 1000) == Resources(1000, 4_000, 32_768)  # any flavor


def test_amounts_are_rounded_down_and_never_zero() -> None:
    odd = Node("odd", "gpu", 3, 2_000, 1_000)  # 666.67 milli-CPU and 333.3 MiB per GPU
    assert per_gpu_share([odd], (), 1000) == Resources(1000, 666, 333)
    assert per_gpu_share([odd], (), 1) == Resources(1, 1, 1)


def test_a_cpu_only_task_and_a_task_no_node_holds_get_the_small_default() -> None:
    assert (CPU_TASK_DEFAULT.cpu_milli, CPU_TASK_DEFAULT.memory_mib) == (1000, 1024)
    assert per_gpu_share([FAT], (), 0) == CPU_TASK_DEFAULT
    assert per_gpu_share([CPU_ONLY], (), 1000) == CPU_TASK_DEFAULT
    assert per_gpu_share([FAT], ("B200",), 1000) == CPU_TASK_DEFAULT


def test_only_missing_amounts_are_filled_in() -> None:
    assert fill_task([LAPTOP], (), 1000, None, None) == Resources(1000, 500, 2048)
    assert fill_task([LAPTOP], (), 1000, 1500, None) == Resources(1000, 1500, 2048)
    assert fill_task([LAPTOP], (), 1000, None, 100) == Resources(1000, 500, 100)
    assert fill_task([LAPTOP], (), 1000, 7, 9) == Resources(1000, 7, 9)
    assert fill_task([LAPTOP], (), 0, None, None) == Resources(0, 1000, 1024)
