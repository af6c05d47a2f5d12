"""Metering: what a month of the Philly trace costs, and how fast the ledger's reports are.

1. A month of the Microsoft Philly trace (jobs submitted in the first 30 days) through the
   simulator on ``examples/cluster-philly.yaml`` (768 GPUs), policy ``allot``, with a sample
   price catalog (the generic ``philly-gpu`` flavor at an amortised on-prem 2.50 USD per
   GPU-hour, lowered to 2.00 from day 20, so costs split at the change): cost per tenant,
   idle share (idle cost shared by cost, OpenCost-style), cost per GPU-hour of finished work.
   Then the same month with a monthly hard budget per tenant (``--budget``, default 60,000
   USD): which tenants it holds back, how many jobs and for how long (job-hours waiting on the
   budget), and the replay's wall time with and without the budget check.
2. Time to build a 30-day report by tenant and by tenant and user over 1,000,000 ledger rows
   (``Metering.report`` on a real store: the database sums, Python prices), on SQLite and on
   PostgreSQL (``--postgres URL`` or ``$ALLOT_TEST_POSTGRES_URL``; a fresh database per run).
   The ledger is 10,000 jobs of 12 tenants and 200 users with 100 runs each over 30 days, on
   4 flavors, with one price change inside the window; the records and their daily rollup are
   written in the same transactions, through the store's own rollup writer, in bulk. Each
   report is read two ways: from the records alone (``ledger_sums``, as before the rollup) and
   through the rollup (``usage_sums``, what the store does). Median of 5 runs, after one
   warm-up; wall time, and the CPU time of this process (all of the work on SQLite: what the
   report costs on an idle machine when the machine is shared), with the load average. On
   PostgreSQL the filled tables are vacuumed and analysed first, as autovacuum would.

The budget check's cost per submission and per cycle: ``benchmarks/control_plane.py
--budgets FILE`` (same figures with budgets checked at admission).

Run: ``.venv/bin/python benchmarks/metering.py [--rows 1000000] [--postgres URL] [--skip-sim]``.
Needs ``../shared/traces/philly/philly-2017-09-10.csv`` for part 1 (or ``--trace PATH``).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Collection, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, insert, select

from allot.control.clock import SystemClock
from allot.control.metering import Metering, MeteringConfig
from allot.control.principal import Principal
from allot.control.records import Launch, NewJob
from allot.core.model import Node, Resources
from allot.core.policy import get_policy
from allot.metering.budgets import Budget, BudgetBook
from allot.metering.ledger import Sums
from allot.metering.prices import Price, PriceCatalog
from allot.sim.cluster import load_cluster
from allot.sim.cost import SimBudgets, cost_report
from allot.sim.engine import Simulation, with_estimates
from allot.sim.traces import read_philly
from allot.store import SqlStore, rollup, usage
from allot.store.tables import RunRow, UsageDayRow, UsageRow

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = ROOT.parent / "shared" / "traces" / "philly" / "philly-2017-09-10.csv"
DAY = 86400.0
MONTH = 30 * DAY
console = Console(width=150)


# ------------------------------------------------------------------ 1. Philly month


def philly_month(trace: Path, budget: float, policy: str) -> None:
    jobs = [j for j in read_philly(trace) if j.spec.submit_time < MONTH]
    workload = with_estimates(jobs, "exact")
    cluster = load_cluster(ROOT / "examples" / "cluster-philly.yaml").cluster
    prices = PriceCatalog((Price("philly-gpu", 2.50), Price("philly-gpu", 2.00, since=20 * DAY)))
    started = time.perf_counter()
    plain = Simulation(cluster, workload, get_policy(policy)).run()
    plain_s = time.perf_counter() - started
    free = cost_report(plain, cluster, prices)
    book = BudgetBook(
        tuple(Budget(t, hard_limit=budget) for t in sorted({j.spec.tenant for j in jobs}))
    )
    budgets = SimBudgets(book, prices, cluster)
    sim = Simulation(
        cluster,
        workload,
        get_policy(policy),
        admission=budgets.admission,
        on_plan=budgets.on_plan,
    )
    budgets.attach(sim.result)
    started = time.perf_counter()
    held = sim.run()
    held_s = time.perf_counter() - started
    capped = cost_report(held, cluster, prices, budgets=budgets)
    after = {t.tenant: t for t in capped.tenants}
    table = Table(
        title=f"Philly, first 30 days: {len(jobs):,} jobs on {cluster.total_gpus} GPUs, policy "
        f"{policy}; 2.50 USD/GPU-h, 2.00 from day 20; idle {free.idle_share:.1%} of capacity "
        f"({free.idle_cost:,.0f} USD), shared by cost"
    )
    for column in (
        "tenant",
        "GPU-h",
        "cost USD",
        "idle share USD",
        "USD per work GPU-h",
        f"with {budget:,.0f} USD/month: cost",
        "jobs held back",
        "job-h waiting on budget",
    ):
        table.add_column(column, justify="left" if column == "tenant" else "right")
    for t in sorted(free.tenants, key=lambda t: -t.cost):
        b = after.get(t.tenant)
        per = t.cost_per_work_hour
        table.add_row(
            t.tenant[:10],
            f"{t.gpu_hours:,.0f}",
            f"{t.cost:,.0f}",
            f"{t.idle_cost:,.0f}",
            "-" if per is None else f"{per:.2f}",
            "-" if b is None else f"{b.cost:,.0f}",
            "-" if b is None else f"{b.held_back_jobs:,}",
            "-" if b is None else f"{b.held_back_hours:,.0f}",
        )
    console.print(table)
    before = sum(t.cost for t in free.tenants)
    with_budget = sum(t.cost for t in capped.tenants)
    console.print(
        f"replay wall time: {plain_s:.1f} s without budgets, {held_s:.1f} s with the budget check"
        f" ({plain.cycles:,} and {held.cycles:,} cycles); total cost {before:,.0f} USD without"
        f" budgets, {with_budget:,.0f} with"
    )


# ------------------------------------------------------------------ 2. report over the ledger


FLAVORS = ("H100", "A100", "L40S", "T4")


def fill_ledger(store: SqlStore, rows: int, now: float, seed: int = 1) -> None:
    """``rows`` ledger records over the 30 days before ``now`` (see the module docstring)."""
    rng = random.Random(seed)
    jobs_n = max(1, rows // 100)
    runs_per_job = rows // jobs_n
    tenants = [f"team-{i:02d}" for i in range(12)]
    new = []
    for i in range(jobs_n):
        tenant = tenants[i % len(tenants)]
        new.append(
            NewJob(
                f"j{i}",
                tenant,
                f"user-{rng.randrange(200):03d}",
                f"q-{tenant}",
                (Resources.of(gpus=rng.choice((1, 2, 4, 8)), cpus=4, memory_mib=32768),),
                Launch(("true",)),
            )
        )
    ids = []
    for start in range(0, len(new), 2000):
        chunk = new[start : start + 2000]
        made = store.submit_many(
            chunk,
            at=now - MONTH,
            actor="bench",
            idempotency_keys=[None] * len(chunk),
            request_hashes=[None] * len(chunk),
        )
        ids += [record.id for record, _ in made]
    run_rows, usage_rows = [], []

    def flush() -> None:
        with store.engine.begin() as conn:
            conn.execute(insert(RunRow), run_rows)
            conn.execute(insert(UsageRow), usage_rows)
            rollup.add(conn, usage_rows)  # as ending a run does, in the same transaction
        run_rows.clear()
        usage_rows.clear()

    for job_id, job in zip(ids, new, strict=True):
        gpu = job.tasks[0].gpu_milli
        flavor = FLAVORS[job_id % len(FLAVORS)]
        for attempt in range(1, runs_per_job + 1):
            started = now - MONTH * 1.02 + rng.random() * MONTH
            ended = started + rng.expovariate(1 / 3600.0)
            run_id = f"r{job_id}-{attempt}"
            run_rows.append(
                {"run_id": run_id, "job_id": job_id, "attempt": attempt, "phase": "ended",
                 "flavor": flavor, "started_at": started, "stop_by": None, "stop_cause": None,
                 "stop_reason": None, "ended_at": ended, "exit_code": 0, "executor": "local"}
            )  # fmt: skip
            usage_rows.append(
                {"job_id": job_id, "run_id": run_id, "tenant": job.tenant, "user": job.user,
                 "queue": job.queue, "flavor": flavor, "started_at": started, "ended_at": ended,
                 "gpu_milli": gpu, "cpu_milli": 4000, "memory_mib": 32768}
            )  # fmt: skip
            if len(run_rows) >= 50_000:
                flush()
    if run_rows:
        flush()


class LedgerOnlyStore(SqlStore):
    """The store as reports read it before the daily rollup: every record of the window."""

    def usage_sums(
        self,
        by: Sequence[str],
        cuts: Sequence[float],
        tenants: Collection[str] | None = None,
    ) -> list[Sums]:
        with self.engine.connect() as conn:
            return usage.ledger_sums(conn, by, cuts, tenants)


Timing = dict[str, list[float]]  # "tenant" / "tenant,user" -> [wall, CPU, load average]


def report_times(url: str, rows: int) -> tuple[float, int, int, Timing, Timing]:
    """(fill seconds, ledger rows, rollup rows, and per report (by tenant, by tenant and
    user) the median wall and CPU seconds of this process and the load average: from the
    records alone, and through the rollup). On SQLite this process does all the work, so its
    CPU time is what the report costs on an idle machine; on PostgreSQL the server does most
    of it."""
    store = SqlStore(url)
    store.migrate()
    clock = SystemClock()
    now = clock.now()
    store.sync_nodes(
        [Node(f"{f}-{i}", f, 8, 64_000, 512 * 1024) for f in FLAVORS for i in range(32)],
        at=now,
        pool="local",
    )
    started = time.perf_counter()
    fill_ledger(store, rows, now)
    fill_s = time.perf_counter() - started
    if store.engine.dialect.name == "postgresql":
        # What autovacuum does after bulk inserts: without it no index-only scan is planned.
        with store.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            for name in ("usage_records", "usage_daily"):
                conn.exec_driver_sql(f"VACUUM ANALYZE {name}")
    prices = PriceCatalog(
        (
            Price("H100", 4.0),
            Price("H100", 3.5, since=now - 10 * DAY),
            Price("A100", 2.5),
            Price("L40S", 1.5),
            Price("T4", 0.5),
        )
    )
    with store.engine.connect() as conn:
        ledger_n = conn.execute(select(func.count()).select_from(UsageRow)).scalar_one()
        daily_n = conn.execute(select(func.count()).select_from(UsageDayRow)).scalar_one()
    before = LedgerOnlyStore(url)
    admin = Principal.admin("bench")
    out: list[Timing] = []
    for reader in (before, store):
        metering = Metering(reader, clock, MeteringConfig(prices))
        timing: Timing = {}
        for by in (("tenant",), ("tenant", "user")):
            reports = [metering.report(by, now - MONTH, until=now, principal=admin)]  # warm-up
            wall, cpu = [], []
            for _ in range(5):
                started, used = time.perf_counter(), time.process_time()
                reports.append(metering.report(by, now - MONTH, until=now, principal=admin))
                wall.append(time.perf_counter() - started)
                cpu.append(time.process_time() - used)
            load = os.getloadavg()[0]
            timing[",".join(by)] = [statistics.median(wall), statistics.median(cpu), load]
            timing[",".join(by) + " rows"] = [float(len(reports[-1].rows))]
            timing[",".join(by) + " cost"] = [sum(r.used.cost for r in reports[-1].rows)]
        out.append(timing)
    before.close()
    store.close()
    return fill_s, ledger_n, daily_n, out[0], out[1]


def postgres_database(admin_url: str) -> str:
    import psycopg

    name = f"allot_bench_{uuid.uuid4().hex[:8]}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def reports(rows: int, postgres: str | None) -> None:
    table = Table(title=f"30-day usage report over {rows:,} ledger rows (median of 5)")
    for column in (
        "database",
        "reads",
        "by tenant: wall",
        "CPU here",
        "load",
        "by tenant and user: wall",
        "CPU here",
        "load",
        "report rows",
        "cost of use",
    ):
        table.add_column(column, justify="left" if column in ("database", "reads") else "right")
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("SQLite", f"sqlite:///{Path(tmp) / 'ledger.db'}")]
        if postgres:
            targets.append(("PostgreSQL", postgres_database(postgres)))
        for label, url in targets:
            fill_s, ledger_n, daily_n, before, after = report_times(url, rows)
            console.print(
                f"{label}: {ledger_n:,} records and {daily_n:,} rollup rows written in"
                f" {fill_s:.0f} s"
            )
            for reads, got in (
                (f"before: records ({ledger_n:,} rows)", before),
                (f"after: rollup ({daily_n:,} rows) + edge days", after),
            ):
                tenant, user = got["tenant"], got["tenant,user"]
                table.add_row(
                    label,
                    reads,
                    f"{tenant[0]:.3f} s",
                    f"{tenant[1]:.3f} s",
                    f"{tenant[2]:.1f}",
                    f"{user[0]:.3f} s",
                    f"{user[1]:.3f} s",
                    f"{user[2]:.1f}",
                    f"{got['tenant rows'][0]:,.0f} / {got['tenant,user rows'][0]:,.0f}",
                    f"{got['tenant cost'][0]:,.2f}",
                )
    console.print(table)
    if not postgres:
        console.print("PostgreSQL: not measured (pass --postgres or set ALLOT_TEST_POSTGRES_URL)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--policy", default="allot")
    parser.add_argument("--budget", type=float, default=60_000.0, help="USD per tenant-month")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=os.environ.get("ALLOT_TEST_POSTGRES_URL"))
    parser.add_argument("--skip-sim", action="store_true")
    parser.add_argument("--skip-report", action="store_true")
    args = parser.parse_args()
    if not args.skip_sim:
        if not args.trace.exists():
            sys.exit(f"needs the Philly trace at {args.trace}; pass --trace or --skip-sim")
        philly_month(args.trace, args.budget, args.policy)
    if not args.skip_report:
        reports(args.rows, args.postgres)


if __name__ == "__main__":
    main()
