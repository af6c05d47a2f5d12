"""Workload profiling: what a job does with the hardware it got, and which hardware suits it.

- ``trace``, ``counting``, ``timeline``, ``analysis``, ``bottleneck``: read the PyTorch profiler's
  (Kineto) traces of a job and split each step into compute, communication, memory copies and
  idle per rank, with top kernels, overlap, data-loader stalls and one headline bottleneck;
- ``catalog``: the flavor catalog (peak figures and prices, ``flavors.yaml``);
- ``roofline``: achieved TFLOP/s, MFU and arithmetic intensity on a flavor's roofline;
- ``recommend``: the job's step time on every flavor, ranked by work per dollar and time;
- ``bench`` and ``health``: a node's microbenchmarks and their comparison with its flavor;
- ``capture`` and ``hook``: how a profiled task is run under the profiler.

Nothing here imports PyTorch at import time: ``bench`` and the task-side ``hook`` import it
where they use it, so every path that needs no profiler works without it.
"""
