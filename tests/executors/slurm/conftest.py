"""Fixtures for the tests against a real Slurm: the cluster ``scripts/services/slurm start``
runs on loopback (two slurmd, four GPUs each), which ``scripts/test`` starts for the suite.

Without ``ALLOT_TEST_SLURM=1`` (no service started) these tests are skipped, saying how to
start it; with it, a cluster that does not answer, or has fewer than two nodes of four GPUs,
fails them: in CI the service is up and they always run.

``plant``: the live control plane (real SQLite store, real clock, the scheduling loop) over a
``SlurmExecutor`` in a temporary folder; on teardown every Slurm job it launched is cancelled
and waited for, so the next test finds the cluster idle.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_plant import SlurmPlant, slurm


@pytest.fixture(scope="session")
def slurm_nodes() -> list[str]:
    """The test cluster's node names; skips without the service, fails when it is broken."""
    if os.environ.get("ALLOT_TEST_SLURM") != "1":
        pytest.skip('no Slurm service: run eval "$(scripts/services/slurm start)" first')
    try:
        nodes = json.loads(slurm("sinfo", "--json"))["nodes"]
    except (AssertionError, OSError, ValueError) as err:
        pytest.fail(f"ALLOT_TEST_SLURM=1 but Slurm does not answer: {err}")
    names = sorted(n["name"] for n in nodes if n["gres"] == "gpu:4")
    if len(names) < 2:
        pytest.fail(f"the Slurm tests need two nodes with gpu:4, sinfo shows {names}")
    return names


@pytest.fixture
def plant(tmp_path: Path, slurm_nodes: list[str]) -> Iterator[SlurmPlant]:
    p = SlurmPlant(tmp_path)
    yield p
    p.loop.close()
    p.executor.close()
    p.cancel_everything()
    p.store.close()
