"""``allot submit --interactive`` and ``--notebook``: a session on allocated GPUs.

``--interactive`` submits a job that only holds its allocation (``sleep infinity`` unless a
command is given after ``--``), waits until it runs (saying why it waits and when it is
expected to start), then opens ``$SHELL`` here with ``CUDA_VISIBLE_DEVICES`` set to the GPUs
the job was given and ``ALLOT_JOB_ID`` set; when the shell exits, the job is cancelled, so the
GPUs go back at once. The shell runs on this machine, so the server must be local (its URL on
loopback, where the local executor runs the job); otherwise the command says so and leaves
the job to the user. Ctrl-C while waiting cancels the job.

``--notebook`` submits ``jupyter lab`` (bound to 127.0.0.1, no browser) as the job itself,
waits until it runs and prints the URL the notebook server writes to its log; the notebook
then runs until cancelled, or until its queue's ``idle_timeout`` releases GPUs it left idle.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from rich.markup import escape

from allot.cli import output
from allot.cli.output import InputError, when

if TYPE_CHECKING:
    from allot.client import Client, JobOut

HOLD = ["sleep", "infinity"]
NOTEBOOK = ["jupyter", "lab", "--no-browser", "--ip=127.0.0.1"]
POLL_SECONDS = 0.5
URL_SECONDS = 120.0  # how long to wait for the notebook to print its URL
NOTEBOOK_URL = re.compile(r"https?://127\.0\.0\.1:\d+/\S*")


def is_local(url: str) -> bool:
    """Whether the server at ``url`` runs on this machine (a loopback address)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def wait_running(allot: Client, job_id: int) -> JobOut:
    """Poll until the job runs; says, when it changes, why it waits and when it should
    start. Raises InputError if the job ends first."""
    said = ""
    while True:
        job = allot.job(job_id)
        if job.state == "running" and job.run is not None and job.run.phase == "running":
            return job
        if job.state not in ("pending", "running"):
            raise InputError(f"job {job_id} ended before it ran: {job.state} ({job.reason})")
        if job.state == "pending":
            expected = job.estimated_start
            eta = ""
            if expected is not None and expected.start is not None:
                eta = f"; expected to start {when(expected.start)}"
            line = f"waiting for GPUs: {job.reason or 'not yet scheduled'}{eta}"
            if line != said:
                output.say(escape(line))
                said = line
        time.sleep(POLL_SECONDS)


def shell_session(allot: Client, job_id: int) -> int:
    """Wait for the job, run ``$SHELL`` on its GPUs, cancel it when the shell exits; returns
    the shell's exit status."""
    try:
        job = wait_running(allot, job_id)
    except KeyboardInterrupt:
        allot.cancel(job_id)
        output.say(f"Cancelled job {job_id}")
        return 130
    assert job.run is not None
    devices = [str(d) for p in job.run.placement for d in p.devices]
    env = {**os.environ, "ALLOT_JOB_ID": str(job_id), "CUDA_VISIBLE_DEVICES": ",".join(devices)}
    nodes = ", ".join(dict.fromkeys(p.node for p in job.run.placement))
    output.say(
        f"Job {job_id} runs on {escape(nodes)} (GPUs {','.join(devices) or 'none'}); exit the shell"
        " to give them back"
    )
    try:
        status = subprocess.call([os.environ.get("SHELL") or "/bin/sh"], env=env)
    finally:
        allot.cancel(job_id)
        output.say(f"Session ended; job {job_id} cancelled")
    return status


def notebook_session(allot: Client, job_id: int) -> None:
    """Wait for the notebook job to run and print its URL."""
    try:
        wait_running(allot, job_id)
    except KeyboardInterrupt:
        allot.cancel(job_id)
        output.say(f"Cancelled job {job_id}")
        return
    deadline = time.monotonic() + URL_SECONDS
    text, offset = "", 0
    while time.monotonic() < deadline:
        chunk = allot.logs(job_id, offset=offset)
        text, offset = text + chunk.data, chunk.next_offset
        found = NOTEBOOK_URL.search(text)
        if found:
            output.say(f"Notebook of job {job_id}: {escape(found.group(0))}")
            output.say(f"It runs until: allot cancel {job_id}")
            return
        if chunk.finished:
            raise InputError(f"job {job_id}: the notebook ended; see allot logs {job_id}")
        time.sleep(POLL_SECONDS)
    output.say(f"Job {job_id} runs; its notebook printed no URL yet: allot logs {job_id}")
