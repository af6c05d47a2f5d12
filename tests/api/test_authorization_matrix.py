"""Authorisation on every endpoint, as a matrix generated from the served OpenAPI: every
operation x every role (cluster admin, tenant admin, member, viewer) x the target's place
(the caller's own tenant, another user's job in it, another tenant). An operation the
OpenAPI lists without a row in ``RULES`` and ``REQUESTS`` fails the test, so a new endpoint
cannot ship without a rule.

Expectations: another tenant's job is a 404 exactly like a job that does not exist; an action
beyond the role is a 403; neither body holds anything of the other tenant's (its job names,
commands, users); a listing shows only the caller's tenants' jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from allot.api.app import create_app
from allot.api.auth import RateLimits
from allot.control.principal import Role
from allot.control.records import Launch, NewJob
from allot.core.model import Resources
from allot.core.quota.config import QueueSpec, QuotaConfig, ResourceQuota, TenantSpec
from harness import Harness, InProcessTransport, add_token, make_harness

ROLES = ("cluster_admin", "tenant_admin", "member", "viewer")
TARGETS = ("own", "peer", "other")  # the caller's tenant, another user's job there, elsewhere
QUEUE = {"own": "see", "peer": "see", "other": "read"}
TENANT = {"own": "vision", "peer": "vision", "other": "nlp"}
SECRET = "nlp-private-project"  # what another tenant's job is called; must never show
CALLERS = {"cluster_admin": "root", "tenant_admin": "vera", "member": "max", "viewer": "vic"}


@dataclass
class World:
    """A harness with two tenants, a user per role in ``vision``, and a job per target."""

    harness: Harness
    jobs: dict[str, int]
    own_token: dict[str, int]  # caller -> the id of its own token
    other_token: int  # a token of the other tenant's user


def _world() -> World:
    quotas = QuotaConfig(
        (TenantSpec("vision"), TenantSpec("nlp")),
        (QueueSpec("see", "vision"), QueueSpec("read", "nlp")),
    )
    harness = make_harness(quotas=quotas)
    add_token(harness.store, "t-root", "root")
    for role, user in CALLERS.items():
        if role != "cluster_admin":
            add_token(harness.store, f"t-{user}", user, cluster_admin=False,
                      roles={"vision": Role(role)})  # fmt: skip
    add_token(harness.store, "t-peer", "pia", cluster_admin=False, roles={"vision": Role.MEMBER})
    add_token(harness.store, "t-nina", "nina", cluster_admin=False, roles={"nlp": Role.MEMBER})
    harness.store.set_grant("vision", {("H100-80G", "gpu"): ResourceQuota(8000)})

    def job(name: str, user: str, tenant: str, queue: str) -> int:
        new = NewJob(name, tenant, user, queue, (Resources.of(gpus=1, cpus=1, memory_mib=64),),
                     Launch(("python", f"{name}.py")))  # fmt: skip
        return harness.store.submit(new, at=harness.clock.now(), actor=user)[0].id

    jobs = {
        "mine": job("mine", "max", "vision", "see"),
        "peer": job("peer", "pia", "vision", "see"),
        "other": job(SECRET, "nina", "nlp", "read"),
    }
    tokens = {t.user: t.id for t in harness.store.tokens()}
    return World(harness, jobs, tokens, tokens["nina"])


def _job_of(world: World, role: str, target: str) -> int:
    if target == "other":
        return world.jobs["other"]
    # The member's own job for "own"; for other roles the tenant's jobs are all "peer"-owned.
    return world.jobs["mine"] if target == "own" else world.jobs["peer"]


Request = tuple[str, str, object]
Build = Callable[[World, str, str], Request]


def _job_path(suffix: str) -> Build:
    return lambda w, role, target: ("GET", f"/v1/jobs/{_job_of(w, role, target)}{suffix}", None)


def _job_action(action: str) -> Build:
    def build(w: World, role: str, target: str) -> Request:
        return ("POST", f"/v1/jobs/{_job_of(w, role, target)}/{action}", None)

    return build


def _token_to_revoke(w: World, role: str, target: str) -> Request:
    token = w.own_token[CALLERS[role]] if target != "other" else w.other_token
    return ("POST", f"/v1/tokens/{token}/revoke", None)


REQUESTS: dict[str, Build] = {
    "submit_job": lambda w, r, t: ("POST", "/v1/jobs", {"command": ["true"], "queue": QUEUE[t]}),
    "submit_jobs": lambda w, r, t: (
        "POST",
        "/v1/jobs/batch",
        {"jobs": [{"command": ["true"], "queue": QUEUE[t]}]},
    ),
    "list_jobs": lambda w, r, t: ("GET", f"/v1/jobs?tenant={TENANT[t]}", None),
    "get_job": _job_path(""),
    "job_events": _job_path("/events"),
    "explain_job": _job_path("/explain"),
    "job_logs": _job_path("/logs"),
    "cancel_job": _job_action("cancel"),
    "hold_job": _job_action("hold"),
    "release_job": _job_action("release"),
    "list_nodes": lambda w, r, t: ("GET", "/v1/nodes", None),
    "drain_node": lambda w, r, t: ("POST", "/v1/nodes/gpu-1/drain", None),
    "undrain_node": lambda w, r, t: ("POST", "/v1/nodes/gpu-1/undrain", None),
    "list_queues": lambda w, r, t: ("GET", "/v1/queues", None),
    "who_am_i": lambda w, r, t: ("GET", "/v1/me", None),
    "list_users": lambda w, r, t: ("GET", "/v1/users", None),
    "create_user": lambda w, r, t: ("POST", "/v1/users", {"name": "newcomer"}),
    "set_role": lambda w, r, t: (
        "PUT",
        f"/v1/users/{'nina' if t == 'other' else 'pia'}/tenants/{TENANT[t]}",
        {"role": "viewer"},
    ),
    "remove_role": lambda w, r, t: (
        "DELETE",
        f"/v1/users/{'nina' if t == 'other' else 'pia'}/tenants/{TENANT[t]}",
        None,
    ),
    "list_tokens": lambda w, r, t: ("GET", "/v1/tokens", None),
    "create_token": lambda w, r, t: ("POST", "/v1/tokens", {"name": "ci"}),
    "revoke_token": _token_to_revoke,
    "list_tenants": lambda w, r, t: ("GET", "/v1/tenants", None),
    "create_tenant": lambda w, r, t: ("POST", "/v1/tenants", {"name": "audio"}),
    "set_grant": lambda w, r, t: ("PUT", f"/v1/tenants/{TENANT[t]}/grant", {"quotas": {}}),
    "create_cohort": lambda w, r, t: ("POST", "/v1/cohorts", {"name": "org"}),
    "put_queue": lambda w, r, t: (
        "PUT",
        f"/v1/queues/{QUEUE[t]}",
        {"tenant": TENANT[t], "quotas": {"H100-80G": {"gpu": {"nominal": 2}}}},
    ),
    "read_audit": lambda w, r, t: ("GET", "/v1/audit", None),
    "job_profile": _job_path("/profile"),
    "job_recommendation": _job_action("recommendation"),
    "record_node_check": lambda w, r, t: (
        "POST",
        "/v1/nodes/gpu-1/checks",
        {"device": "cpu", "measurements": [{"name": "memory", "device": "cpu", "value": 10.0}]},
    ),
    "flavor_speeds": lambda w, r, t: ("GET", "/v1/flavor-speeds", None),
    "usage_report": lambda w, r, t: ("GET", f"/v1/usage?by=user&tenant={TENANT[t]}", None),
    "job_cost": _job_path("/cost"),
    "list_budgets": lambda w, r, t: ("GET", "/v1/budgets", None),
}

Rule = Callable[[str, str], int]  # (role, target) -> the status expected


def _read_job(role: str, target: str) -> int:
    return 404 if target == "other" and role != "cluster_admin" else 200


def _act_on_job(role: str, target: str) -> int:
    if role == "cluster_admin":
        return 200
    if target == "other":
        return 404
    if role == "tenant_admin" or (role == "member" and target == "own"):
        return 200
    return 403


def _submit(created: int) -> Rule:
    def rule(role: str, target: str) -> int:
        if role == "cluster_admin" or (target != "other" and role != "viewer"):
            return created
        return 403

    return rule


def _anyone(status: int = 200) -> Rule:
    return lambda role, target: status


def _cluster_admin(status: int = 200) -> Rule:
    return lambda role, target: status if role == "cluster_admin" else 403


def _tenant_admin(role: str, target: str) -> int:
    if role == "cluster_admin" or (role == "tenant_admin" and target != "other"):
        return 200
    return 403


def _own_token(role: str, target: str) -> int:
    return 404 if target == "other" and role != "cluster_admin" else 200


def _audit(role: str, target: str) -> int:
    return 200 if role in ("cluster_admin", "tenant_admin") else 403


def _read_tenant(role: str, target: str) -> int:
    """A tenant's usage: its members read it; another tenant's is refused."""
    return 403 if target == "other" and role != "cluster_admin" else 200


def _not_profiled(role: str, target: str) -> int:
    """Anyone who may read the job gets past authorisation to a 409: it was not profiled."""
    return 404 if _read_job(role, target) == 404 else 409


RULES: dict[str, Rule] = {
    "submit_job": _submit(201),
    "submit_jobs": _submit(201),
    "list_jobs": _anyone(),
    "get_job": _read_job,
    "job_events": _read_job,
    "explain_job": _read_job,
    "job_logs": _read_job,
    "cancel_job": _act_on_job,
    "hold_job": _act_on_job,
    "release_job": _act_on_job,
    "list_nodes": _anyone(),
    "drain_node": _cluster_admin(),
    "undrain_node": _cluster_admin(),
    "list_queues": _anyone(),
    "who_am_i": _anyone(),
    "list_users": _cluster_admin(),
    "create_user": _cluster_admin(201),
    "set_role": _cluster_admin(),
    "remove_role": _cluster_admin(),
    "list_tokens": _anyone(),
    "create_token": _anyone(201),
    "revoke_token": _own_token,
    "list_tenants": _anyone(),
    "create_tenant": _cluster_admin(201),
    "set_grant": _cluster_admin(),
    "create_cohort": _cluster_admin(201),
    "put_queue": _tenant_admin,
    "read_audit": _audit,
    "job_profile": _not_profiled,
    "job_recommendation": _not_profiled,
    "record_node_check": _cluster_admin(201),
    "flavor_speeds": _anyone(),
    "usage_report": _read_tenant,
    "job_cost": _read_job,
    "list_budgets": _anyone(),
}


def _served_operations() -> list[str]:
    schema = create_app(make_harness().control).openapi()
    found = []
    for path, methods in schema["paths"].items():
        if not path.startswith("/v1/"):
            continue
        found.extend(op["operationId"] for op in methods.values())
    return sorted(found)


OPERATIONS = _served_operations()
JOB_OPERATIONS = {op for op, build in REQUESTS.items() if "job" in op and op not in
                  ("submit_job", "submit_jobs", "list_jobs")}  # fmt: skip
CASES = [
    (op, role, target)
    for op in OPERATIONS
    for role in ROLES
    for target in TARGETS
    if target != "peer" or op in JOB_OPERATIONS
]


def test_every_served_operation_has_a_rule() -> None:
    missing = [op for op in OPERATIONS if op not in RULES or op not in REQUESTS]
    assert missing == [], f"operations without an authorisation rule: {missing}"
    assert len(CASES) >= 200  # the matrix's size is reported in docs/tenancy.md


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[World, httpx.Client, Callable[[], None]]]:
    """One app over one world (building an app takes longer than every request of a case),
    and how to put the world back as it was before each case."""
    world = _world()
    store = world.harness.store
    app = create_app(world.harness.control, rate_limits=RateLimits(1e6, 1e6))
    first = store._db.copy()

    def reset() -> None:
        world.harness.control.audit.flush()
        store._db = first.copy()
        app.state.token_verifier.forget()
        world.harness.control.forget_cluster()

    with httpx.Client(transport=InProcessTransport(app), base_url="http://allot.test") as client:
        yield world, client, reset


@pytest.mark.parametrize(("op", "role", "target"), CASES)
def test_the_matrix(
    served: tuple[World, httpx.Client, Callable[[], None]], op: str, role: str, target: str
) -> None:
    if op not in RULES or op not in REQUESTS:
        pytest.fail(f"{op} has no authorisation rule: add it to RULES and REQUESTS")
    world, client, reset = served
    reset()
    method, path, body = REQUESTS[op](world, role, target)
    headers = {"Authorization": f"Bearer t-{CALLERS[role]}"}
    response = client.request(method, path, json=body, headers=headers)
    expected = RULES[op](role, target)
    assert response.status_code == expected, (op, role, target, response.text)
    if role != "cluster_admin":
        # The problem's ``instance`` is the path the caller itself sent: leave it out.
        shown = response.text if response.is_success else response.json()["detail"]
        assert SECRET not in shown
        assert "nina" not in shown
    if response.status_code == 404:
        assert response.json()["detail"] in (
            f"job {world.jobs['other']} does not exist",
            f"token {world.other_token} does not exist",
        )
    if op == "list_jobs" and role != "cluster_admin":
        tenants = {job["tenant"] for job in response.json()["items"]}
        assert tenants <= {"vision"}
