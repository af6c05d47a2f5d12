"""The allot server: wires the store, the executor (local processes, or a Slurm cluster with
``--executor slurm``), the scheduling loop and the REST API
together and serves them (``allot up``). This is the one place that knows every adapter; every
other command talks to a running server through ``allot.client``.

Start-up, in order: claim the listening address and lock the data directory
(``allot.instance``: a second server on either is refused before anything is touched); take
the executor's inventory; read and check a quota file given with ``--quotas`` (a bad one is
refused before the store is opened); open the store and run its migrations; make sure an
admin token exists (written once to ``<data dir>/admin-token`` with mode 0600; only its hash
is stored); activate the quotas (``allot.quota_source``: the file's, the built-in default's,
or those the store already has); reconcile whatever a previous process left running; then
serve on the claimed socket, where a connection that has not sent a request's headers within
``HEADER_SECONDS`` is closed (``allot.api.connections``).

Observability (``allot.observe``, see docs/observability.md): unless ``metrics`` is off, the
server keeps Prometheus metrics, serves them at ``/metrics`` and writes a scrape token once to
``<data dir>/metrics-token`` (mode 0600); it keeps start-time estimates of pending jobs; with
an OTLP endpoint it exports traces (asked for without the exporter installed, it is refused
before anything is touched).

Jobs may not name a working directory inside the data directory; ``workdir_roots``, when
given, are the only roots they may name.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from allot.api import create_app
from allot.config.oidc import OidcConfig, load_oidc
from allot.config.quotas import check_against_cluster, load_quotas
from allot.control.clock import SystemClock
from allot.control.credentials import hash_token, new_token
from allot.control.loop import SchedulingLoop
from allot.control.metering import MeteringConfig
from allot.control.ports import Executor, NotFoundError, Store
from allot.control.records import AuditEntry
from allot.control.registry import LOCAL, ExecutorRegistry
from allot.control.services import ControlPlane
from allot.control.system import SystemConfig
from allot.control.system import build as build_system
from allot.control.workdirs import WorkdirRule
from allot.core.quota.config import QuotaConfig
from allot.datadir import TOKEN_FILE
from allot.executors.inventory import Inventory
from allot.executors.local import LocalExecutor
from allot.executors.slurm import SlurmExecutor
from allot.instance import ClaimError, DataDirLock, bind_address, data_dir_holder, lock_data_dir
from allot.metering.budgets import BudgetBook, load_budgets
from allot.metering.prices import load_prices
from allot.metering.report import IdleMode
from allot.observe.eta import StartTimeEstimator
from allot.observe.idle import IdleReclaim
from allot.observe.metrics import ControlMetrics, TimedExecutors
from allot.observe.telemetry import GpuTelemetry
from allot.observe.tracing import JobTracing, endpoint_from, otlp_tracing
from allot.quota_source import ActiveQuotas, activate, default_quotas
from allot.store import SqlStore, default_database_url

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("allot.server")
DEFAULT_PORT = 8765
EXECUTORS = ("local", "slurm")
SLURM_POOL = "slurm"
SLURM_INVENTORY_INTERVAL = 5.0  # Slurm's nodes change under allot (drains, jobs of others)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What ``allot up`` was asked for."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    gpus: int | None = None
    database_url: str | None = None
    quotas_file: Path | None = None
    default_quotas: bool = False  # ``--quotas default``: back to the built-in default
    policy: str = "allot"
    interval: float = 1.0
    grace_seconds: float = 30.0
    oidc_file: Path | None = None
    workdir_roots: tuple[Path, ...] = ()
    rate_limit: float = 100.0  # requests per second per token (cluster admins: unlimited)
    executor: str = "local"  # or "slurm": run jobs on a Slurm cluster (docs/slurm.md)
    partition: str | None = None  # with the Slurm executor: its one partition
    metrics: bool = True  # Prometheus metrics at /metrics
    eta_interval: float = 15.0  # seconds between refreshes of start-time estimates (0: none)
    otlp_endpoint: str | None = None  # traces go there (else the OTEL_EXPORTER_OTLP_* variables)
    prices_file: Path | None = None  # prices per flavor (else the flavor catalog's)
    budgets_file: Path | None = None  # money budgets, enforced at admission
    idle: str = "unallocated"  # idle capacity's cost: "share" or "unallocated"

    def __post_init__(self) -> None:
        if self.default_quotas and self.quotas_file is not None:
            raise ValueError("quotas_file and default_quotas: give one of them, not both")
        if self.executor not in EXECUTORS:
            raise ValueError(
                f"executor: must be one of {', '.join(EXECUTORS)}, got {self.executor!r}"
            )
        if self.partition is not None and self.executor != "slurm":
            raise ValueError("partition: only the Slurm executor has partitions (--executor slurm)")


@dataclass(slots=True)
class Claims:
    """What a server holds before it starts: its bound socket and its data directory's lock."""

    sock: socket.socket
    lock: DataDirLock

    def release(self) -> None:
        self.sock.close()
        self.lock.release()


def claim(config: ServerConfig) -> Claims:
    """Bind the address, then lock the data directory; raises ClaimError (holding nothing)
    when either is taken. Nothing else is touched."""
    try:
        sock = bind_address(config.host, config.port)
    except ClaimError as err:
        holder = data_dir_holder(config.data_dir)
        if holder is None:
            raise
        raise ClaimError(
            f"{err}; allot is already running on the data directory {config.data_dir}"
            f" ({holder.describe()})"
        ) from None
    try:
        lock = lock_data_dir(config.data_dir, host=config.host, port=config.port)
    except BaseException:
        sock.close()
        raise
    return Claims(sock, lock)


ADMIN_USER = "admin"
SCRAPE_TOKEN_FILE = "metrics-token"


def ensure_scrape_token(data_dir: Path) -> str:
    """Create the scrape token once (file mode 0600); returns its SHA-256 hex digest."""
    path = data_dir / SCRAPE_TOKEN_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_token() + "\n")
    os.chmod(path, 0o600)
    return hash_token(path.read_text().strip())


def ensure_admin_token(store: Store, data_dir: Path, now: float) -> Path:
    """Create the admin token once (file mode 0600) and make sure the store knows its hash,
    as a token of the cluster admin ``admin`` (created on the first start)."""
    path = data_dir / TOKEN_FILE
    if not path.exists():
        token = new_token()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
    os.chmod(path, 0o600)
    token = path.read_text().strip()
    digest = hash_token(token)
    try:
        store.get_user(ADMIN_USER)
    except NotFoundError:
        store.add_user(ADMIN_USER, cluster_admin=True, at=now)
    if store.find_token(digest) is None:
        store.add_token(ADMIN_USER, "admin-token", digest, at=now)
    return path


@dataclass(slots=True)
class Server:
    """A wired-up server, ready to serve."""

    config: ServerConfig
    store: SqlStore
    executor: Executor
    inventory: Inventory
    loop: SchedulingLoop
    control: ControlPlane
    token_path: Path
    quotas: ActiveQuotas
    oidc: OidcConfig | None = None
    metrics: ControlMetrics | None = None
    scrape_token_hash: str | None = None
    estimator: StartTimeEstimator | None = None
    tracing: JobTracing | None = None
    telemetry: GpuTelemetry | None = None

    def close(self) -> None:
        """Stop the background threads (running jobs keep running), then write what the
        audit trail holds and send the traces still batched."""
        if self.estimator is not None:
            self.estimator.close()
        if self.telemetry is not None:
            self.telemetry.close()
        self.loop.close()
        self.control.audit.close()
        if self.tracing is not None:
            self.tracing.close()


def _quota_file(config: ServerConfig, inventory: Inventory) -> QuotaConfig | None:
    """What ``--quotas`` asks for, read and checked; None when it was not given."""
    if config.default_quotas:
        return default_quotas()
    if config.quotas_file is None:
        return None
    quotas = load_quotas(config.quotas_file)
    check_against_cluster(quotas, {n.flavor for n in inventory.nodes}, config.quotas_file)
    return quotas


def _executor(config: ServerConfig) -> tuple[Executor, Inventory, str]:
    """The executor ``allot up`` was asked for, its inventory, and its pool's name; raises
    OSError when Slurm's commands are missing or its controller does not answer."""
    if config.executor == "slurm":
        slurm = SlurmExecutor(
            config.data_dir / "slurm",
            partition=config.partition,
            grace_seconds=config.grace_seconds,
        )
        slurm.check()
        nodes = slurm.inventory()
        where = f"partition {config.partition}" if config.partition else "every partition"
        gpus = sum(n.gpus for n in nodes)
        detail = f"Slurm, {where}: {len(nodes)} nodes, {gpus} GPUs free for allot"
        return slurm, Inventory(nodes, "slurm", detail), SLURM_POOL
    local = LocalExecutor(config.data_dir, gpus=config.gpus, grace_seconds=config.grace_seconds)
    return local, local.inventory_report(), LOCAL


def _metering(config: ServerConfig) -> MeteringConfig:
    """The prices, budgets and idle-cost rule ``allot up`` was given, read and checked."""
    prices = None if config.prices_file is None else load_prices(config.prices_file)
    budgets = BudgetBook() if config.budgets_file is None else load_budgets(config.budgets_file)
    try:
        idle = IdleMode(config.idle)
    except ValueError:
        raise ValueError(f"idle: must be share or unallocated, got {config.idle!r}") from None
    return MeteringConfig(prices, budgets, idle)


def build(config: ServerConfig) -> Server:
    """Open and prepare everything; starts the scheduling loop (which first reconciles).
    The caller has claimed the data directory (``claim``) when other servers may be about."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(config.data_dir, 0o700)
    clock = SystemClock()
    endpoint = endpoint_from(config.otlp_endpoint)
    tracing = None if endpoint is None else otlp_tracing(endpoint, clock)  # before any state
    executor, inventory, pool = _executor(config)
    loaded = _quota_file(config, inventory)  # a bad file is refused before the store opens
    oidc = None if config.oidc_file is None else load_oidc(config.oidc_file)
    metering = _metering(config)  # a bad prices or budgets file is refused before the store opens
    store = SqlStore(config.database_url or default_database_url(config.data_dir))
    store.migrate()
    token_path = ensure_admin_token(store, config.data_dir, clock.now())
    quota_file = None if config.quotas_file is None else config.quotas_file.resolve()
    quotas = activate(store, config.data_dir, loaded=loaded, file=quota_file, at=clock.now())
    workdirs = WorkdirRule.of(
        [str(config.data_dir)], [str(root) for root in config.workdir_roots] or None
    )
    every = SLURM_INVENTORY_INTERVAL if pool == SLURM_POOL else SystemConfig().inventory_interval
    executors = ExecutorRegistry({pool: executor})
    metrics = scrape_hash = None
    if config.metrics:
        metrics = ControlMetrics(store, clock)
        executors = TimedExecutors(executors, metrics.launch_seconds_of)
        scrape_hash = ensure_scrape_token(config.data_dir)
    system = build_system(
        SystemConfig(
            config.policy,
            config.interval,
            grace_seconds=config.grace_seconds,
            inventory_interval=every,
        ),
        store=store,
        executors=executors,
        clock=clock,
        workdirs=workdirs,
        metering=metering,
    )
    if metrics is not None:
        system.loop.subscribe(metrics)
    if tracing is not None:
        system.loop.subscribe(tracing)
    estimator = None
    if config.eta_interval > 0:
        estimator = StartTimeEstimator(system.loop, interval=config.eta_interval)
        system.loop.subscribe(estimator)
        system.control.estimates = estimator
        if metrics is not None:
            metrics.add(estimator)
    if not quotas.kept:
        source = "the built-in default" if quotas.file is None else str(quotas.file)
        loaded_from = f"quotas loaded from {source}"
        entry = AuditEntry(clock.now(), "config", "quotas_loaded", "quotas", "ok", loaded_from)
        system.control.audit.record(entry)
    telemetry = gpu_telemetry(inventory, store, clock, IdleReclaim(store, system.loop))
    if metrics is not None:
        metrics.add(telemetry)
    system.start()
    if estimator is not None:
        estimator.start()
    telemetry.start()
    return Server(
        config,
        store,
        executor,
        inventory,
        system.loop,
        system.control,
        token_path,
        quotas,
        oidc,
        metrics,
        scrape_hash,
        estimator,
        tracing,
        telemetry,
    )


def gpu_telemetry(
    inventory: Inventory, store: Store, clock: SystemClock, idle: IdleReclaim
) -> GpuTelemetry:
    """NVML sampling of the local GPUs (with idle-GPU reclaim) when NVML found them;
    otherwise off, saying why."""
    if inventory.source == "nvml" and inventory.nodes:
        return GpuTelemetry.open(store, clock, inventory.nodes[0].name, idle=idle)
    if inventory.source == "declared":
        return GpuTelemetry.off("the GPUs were declared with --gpus; NVML sees none")
    if inventory.source == "slurm":
        return GpuTelemetry.off("jobs run on Slurm nodes, which this server does not sample")
    return GpuTelemetry.off("no GPU on this machine")


def app_of(server: Server) -> FastAPI:
    """The REST API of ``server``, with its OIDC verifier and rate limit."""
    from allot.api.auth import RateLimits
    from allot.api.oidc import JwtVerifier

    jwt = None if server.oidc is None else JwtVerifier(server.oidc)
    rate = server.config.rate_limit
    return create_app(
        server.control,
        jwt=jwt,
        rate_limits=RateLimits(rate, rate * 10),
        metrics=server.metrics,
        scrape_token_hash=server.scrape_token_hash,
    )


def serve(server: Server, sock: socket.socket) -> None:
    """Serve the API on ``sock`` (bound by ``claim``) until interrupted, then stop the
    scheduling loop (jobs keep running) and write what the audit trail holds."""
    import uvicorn

    from allot.api.connections import protocol_with_header_timeout

    config = server.config
    log.info("allot serving on http://%s:%d", config.host, config.port)
    try:
        uvicorn.Server(
            uvicorn.Config(
                app_of(server),
                log_level="warning",
                access_log=False,
                http=protocol_with_header_timeout(),
            )
        ).run(sockets=[sock])
    finally:
        server.close()
