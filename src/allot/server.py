"""The allot server: wires the store, the local executor, the scheduling loop and the REST API
together and serves them (``allot up``). This is the one place that knows every adapter; every
other command talks to a running server through ``allot.client``.

Start-up, in order: create the data directory (mode 0700); open the store and run its
migrations; make sure an admin token exists (written once to ``<data dir>/admin-token`` with
mode 0600; only its hash is stored); load quotas (a file given with ``--quotas``, else what
the store has, else one unconstrained queue ``default`` of tenant ``default``); take the
executor's inventory; reconcile whatever a previous process left running; then serve.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from allot.api import create_app
from allot.api.auth import hash_token
from allot.config.quotas import check_against_cluster, load_quotas
from allot.control.clock import SystemClock
from allot.control.loop import SchedulingLoop
from allot.control.services import ControlPlane
from allot.core.policy import get_policy
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec
from allot.datadir import TOKEN_FILE
from allot.executors.inventory import Inventory, detect
from allot.executors.local import LocalExecutor
from allot.store import SqlStore, default_database_url

log = logging.getLogger("allot.server")
DEFAULT_PORT = 8765


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What ``allot up`` was asked for."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    gpus: int | None = None
    database_url: str | None = None
    quotas_file: Path | None = None
    policy: str = "allot"
    interval: float = 1.0
    grace_seconds: float = 30.0


def ensure_admin_token(store: SqlStore, data_dir: Path, now: float) -> Path:
    """Create the admin token once (file mode 0600) and make sure the store knows its hash."""
    path = data_dir / TOKEN_FILE
    if not path.exists():
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
    os.chmod(path, 0o600)
    token = path.read_text().strip()
    digest = hash_token(token)
    if store.find_token(digest) is None:
        store.add_token("admin", "admin", digest, at=now)
    return path


def default_quotas() -> QuotaConfig:
    """One tenant ``default`` with one queue ``default`` that any job may use."""
    return QuotaConfig((TenantSpec("default"),), (QueueSpec("default", "default"),))


@dataclass(slots=True)
class Server:
    """A wired-up server, ready to serve."""

    config: ServerConfig
    store: SqlStore
    executor: LocalExecutor
    inventory: Inventory
    loop: SchedulingLoop
    control: ControlPlane
    token_path: Path


def build(config: ServerConfig) -> Server:
    """Open and prepare everything; starts the scheduling loop (which first reconciles)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(config.data_dir, 0o700)
    clock = SystemClock()
    store = SqlStore(config.database_url or default_database_url(config.data_dir))
    store.migrate()
    token_path = ensure_admin_token(store, config.data_dir, clock.now())
    inventory = detect(config.gpus, None)
    executor = LocalExecutor(config.data_dir, gpus=config.gpus, grace_seconds=config.grace_seconds)
    store.sync_nodes(inventory.nodes, at=clock.now())
    if config.quotas_file is not None:
        quotas = load_quotas(config.quotas_file)
        check_against_cluster(quotas, {n.flavor for n in inventory.nodes}, config.quotas_file)
        store.save_quotas(quotas, at=clock.now())
    elif not store.quotas().queues:
        store.save_quotas(default_quotas(), at=clock.now())
    loop = SchedulingLoop(
        store,
        executor,
        clock,
        get_policy(config.policy),
        interval=config.interval,
        grace_seconds=config.grace_seconds,
    )
    loop.start()
    control = ControlPlane(store, executor, clock, loop)
    return Server(config, store, executor, inventory, loop, control, token_path)


def serve(server: Server) -> None:
    """Serve the API until interrupted, then stop the scheduling loop (jobs keep running)."""
    import uvicorn

    config = server.config
    log.info("allot serving on http://%s:%d", config.host, config.port)
    try:
        uvicorn.run(
            create_app(server.control),
            host=config.host,
            port=config.port,
            log_level="warning",
            access_log=False,
        )
    finally:
        server.loop.close()
