"""``allot admin``: who may do what. Users and their roles in tenants, API tokens, tenants and
their grants, cohorts, queues and their quotas, and the audit log; each sub-command is one SDK
call (the server decides who may do it: cluster admins everything, tenant admins their
tenant's queues within its grant and its audit entries, everyone its own tokens).

``ADMIN_COMMANDS`` lists the sub-commands in the order ``allot admin --help`` shows them; like
the top-level commands they are loaded on use. Quotas are written
``FLAVOR:RESOURCE=NOMINAL[:BORROWING_LIMIT]`` with resources ``gpu`` (GPUs), ``cpu`` (cores)
and ``memory_mib``, e.g. ``--quota H100-80G:gpu=8:4``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from allot.cli import output
from allot.cli.command import Entry, LazyGroup
from allot.cli.output import (
    InputError,
    OutputFormat,
    OutputOption,
    TokenOption,
    UrlOption,
    reported,
    when,
)
from allot.core.units import number

if TYPE_CHECKING:
    from allot.wire.tenancy import FlavorQuotas, QuotaIn, ResourceName, TokenOut

ADMIN_COMMANDS = {
    "whoami": Entry("allot.cli.admin:whoami", "Who the token speaks for: user, tenants, roles."),
    "users": Entry("allot.cli.admin:users", "List users and their roles in tenants."),
    "user-add": Entry("allot.cli.admin:user_add", "Create a user (cluster admins)."),
    "role": Entry(
        "allot.cli.admin:role", "Give a user a role in a tenant, or 'none' to take it out."
    ),
    "tokens": Entry("allot.cli.admin:tokens", "List API tokens (never their secrets)."),
    "token-create": Entry(
        "allot.cli.admin:token_create", "Create an API token; its secret is printed once."
    ),
    "token-revoke": Entry("allot.cli.admin:token_revoke", "Revoke an API token."),
    "tenants": Entry("allot.cli.admin:tenants", "List tenants, their shares and grants."),
    "tenant-add": Entry("allot.cli.admin:tenant_add", "Create a tenant (cluster admins)."),
    "grant": Entry(
        "allot.cli.admin:grant", "Set what a tenant's admins may hand out to its queues."
    ),
    "cohort-add": Entry("allot.cli.admin:cohort_add", "Create a cohort (cluster admins)."),
    "queue": Entry(
        "allot.cli.admin:queue", "Create a queue or replace its tenant, cohort and quotas."
    ),
    "audit": Entry(
        "allot.cli.admin:audit", "Read the audit log, newest first (admins: their scope)."
    ),
}

Name = Annotated[str, typer.Argument(metavar="NAME", show_default=False)]
Quotas = Annotated[
    list[str] | None,
    typer.Option(
        "--quota",
        metavar="FLAVOR:RESOURCE=N[:BORROW]",
        help="A quota, e.g. H100-80G:gpu=8:4 (repeat for several).",
    ),
]


class AdminGroup(LazyGroup):
    """Who may do what: users, roles, tokens, tenants, grants, cohorts, queues, audit log."""

    entries = ADMIN_COMMANDS


def _quotas(specs: list[str] | None) -> dict[str, FlavorQuotas]:
    from allot.client._admin import quota_spec

    try:
        return quota_spec(specs or [])
    except ValueError as err:
        raise InputError(f"--quota: {err}") from None


def whoami(
    url: UrlOption = None, token: TokenOption = None, fmt: OutputOption = OutputFormat.table
) -> None:
    """Who the token speaks for: user, tenants, roles."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        me = allot.me()
    if fmt is OutputFormat.json:
        output.print_json(me)
        return
    roles = ", ".join(f"{t}: {r}" for t, r in sorted(me.tenants.items())) or "no tenant"
    admin = " (cluster admin)" if me.cluster_admin else ""
    output.say(f"{escape(me.user)}{admin}; {escape(roles)}")


def users(
    url: UrlOption = None, token: TokenOption = None, fmt: OutputOption = OutputFormat.table
) -> None:
    """List users and their roles in tenants."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        found = allot.users()
    if fmt is OutputFormat.json:
        output.print_json(found)
        return
    grid = output.table("USER", "CLUSTER ADMIN", "TENANTS")
    for user in found:
        roles = ", ".join(f"{t}: {r}" for t, r in sorted(user.tenants.items())) or "-"
        grid.add_row(escape(user.name), "yes" if user.cluster_admin else "no", escape(roles))
    output.print_table(grid)


def user_add(
    name: Name,
    cluster_admin: Annotated[
        bool, typer.Option("--cluster-admin", help="May do everything.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Create a user (cluster admins)."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        user = allot.create_user(name, cluster_admin=cluster_admin)
    output.answer(fmt, user, f"created user {escape(user.name)}")


def role(
    user: Annotated[str, typer.Argument(metavar="USER", show_default=False)],
    tenant: Annotated[str, typer.Argument(metavar="TENANT", show_default=False)],
    new_role: Annotated[
        str,
        typer.Argument(
            metavar="ROLE", help="tenant_admin, member, viewer or none.", show_default=False
        ),
    ],
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Give a user a role in a tenant, or 'none' to take it out."""
    with reported(fmt=fmt):
        if new_role not in ("tenant_admin", "member", "viewer", "none"):
            raise InputError("ROLE: must be one of tenant_admin, member, viewer, none")
        with output.make_client(url, token) as allot:
            changed = allot.set_role(user, tenant, None if new_role == "none" else new_role)
    output.answer(fmt, changed, f"{escape(user)} in {escape(tenant)}: {new_role}")


def _token_row(t: TokenOut) -> list[str]:
    state = "revoked" if t.revoked_at else "live"
    return [str(t.id), escape(t.user), escape(t.name), when(t.created_at), when(t.expires_at),
            when(t.last_used_at), state]  # fmt: skip


def tokens(
    user: Annotated[str | None, typer.Option(metavar="USER", help="Only this user's.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """List API tokens (never their secrets)."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        found = allot.tokens(user)
    if fmt is OutputFormat.json:
        output.print_json(found)
        return
    grid = output.table("ID", "USER", "NAME", "CREATED", "EXPIRES", "LAST USED", "STATE")
    for t in found:
        grid.add_row(*_token_row(t))
    output.print_table(grid)


def token_create(
    name: Name,
    user: Annotated[
        str | None, typer.Option(metavar="USER", help="For this user (cluster admins).")
    ] = None,
    expires_in: Annotated[
        float | None, typer.Option(metavar="DAYS", help="Days until it expires (default 90).")
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Create an API token; its secret is printed once."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        made = allot.create_token(name, user=user, expires_in_days=expires_in)
    if fmt is OutputFormat.json:
        output.print_json(made)
        return
    output.write(made.secret + "\n")
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"token {made.id} of {escape(made.user)} expires {when(made.expires_at)}; the secret"
        " above is shown only now"
    )


def token_revoke(
    token_id: Annotated[int, typer.Argument(metavar="TOKEN_ID", show_default=False)],
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Revoke an API token."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        revoked = allot.revoke_token(token_id)
    output.answer(
        fmt,
        revoked,
        f"revoked token {revoked.id} ({escape(revoked.name)} of {escape(revoked.user)})",
    )


def _quota_text(quotas: Mapping[str, Mapping[ResourceName, QuotaIn]] | None) -> str:
    """Quotas as the command line writes them."""
    if not quotas:
        return "-"
    parts = []
    for flavor, resources in sorted(quotas.items()):
        for resource, quota in sorted(resources.items()):
            borrowing = quota.borrowing_limit
            limit = "" if borrowing is None else f":{number(borrowing)}"
            parts.append(f"{flavor}:{resource}={number(quota.nominal)}{limit}")
    return " ".join(parts)


def tenants(
    url: UrlOption = None, token: TokenOption = None, fmt: OutputOption = OutputFormat.table
) -> None:
    """List tenants, their shares and grants."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        found = allot.tenants()
    if fmt is OutputFormat.json:
        output.print_json(found)
        return
    grid = output.table("TENANT", "SHARE", "GRANT")
    for t in found:
        grid.add_row(escape(t.name), number(t.share), escape(_quota_text(t.grant)))
    output.print_table(grid)


def tenant_add(
    name: Name,
    share: Annotated[float, typer.Option(min=0.001, help="Fair-share entitlement.")] = 1.0,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Create a tenant (cluster admins)."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        made = allot.create_tenant(name, share=share)
    output.answer(fmt, made, f"created tenant {escape(made.name)}")


def grant(
    tenant: Annotated[str, typer.Argument(metavar="TENANT", show_default=False)],
    quota: Quotas = None,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Set what a tenant's admins may hand out to its queues."""
    with reported(fmt=fmt):
        quotas = _quotas(quota)
        with output.make_client(url, token) as allot:
            changed = allot.set_grant(tenant, quotas)
    output.answer(
        fmt, changed, f"{escape(tenant)} may hand out: {escape(_quota_text(changed.grant))}"
    )


def cohort_add(
    name: Name,
    parent: Annotated[str | None, typer.Option(metavar="COHORT", help="Its parent.")] = None,
    quota: Quotas = None,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Create a cohort (cluster admins)."""
    with reported(fmt=fmt):
        quotas = _quotas(quota)
        with output.make_client(url, token) as allot:
            allot.create_cohort(name, parent=parent, quotas=quotas)
    if fmt is OutputFormat.table:
        output.say(f"created cohort {escape(name)}")


def queue(
    name: Name,
    tenant: Annotated[str, typer.Option(metavar="TENANT", help="The tenant it belongs to.")],
    quota: Quotas = None,
    cohort: Annotated[str | None, typer.Option(metavar="COHORT", help="Its cohort.")] = None,
    weight: Annotated[float, typer.Option(min=0, help="Fair-sharing weight.")] = 1.0,
    unconstrained: Annotated[
        bool, typer.Option("--unconstrained", help="No quotas at all (cluster admins).")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Create a queue or replace its tenant, cohort and quotas."""
    with reported(fmt=fmt):
        if unconstrained and quota:
            raise InputError("--unconstrained: give it or --quota, not both")
        quotas = None if unconstrained else _quotas(quota)
        with output.make_client(url, token) as allot:
            made = allot.put_queue(name, tenant=tenant, quotas=quotas, cohort=cohort, weight=weight)
    if fmt is OutputFormat.json:
        output.print_json(made)
        return
    shown = "unconstrained" if made.quotas is None else _quota_text(made.quotas)
    output.say(f"queue {escape(made.name)} of {escape(made.tenant)}: {escape(shown)}")


def audit(
    since: Annotated[
        datetime | None,
        typer.Option(metavar="WHEN", help="Entries at or after this time (ISO 8601)."),
    ] = None,
    actor: Annotated[str | None, typer.Option(metavar="USER", help="Only this actor's.")] = None,
    job: Annotated[int | None, typer.Option(metavar="JOB_ID", help="Only about this job.")] = None,
    tenant: Annotated[
        str | None, typer.Option(metavar="TENANT", help="Only this tenant's.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, metavar="N", help="At most N.")] = 100,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Read the audit log, newest first (admins: their scope)."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        page = allot.audit(since=since, actor=actor, job=job, tenant=tenant, limit=limit)
    if fmt is OutputFormat.json:
        output.print_json(page)
        return
    grid = output.table("TIME", "ACTOR", "TENANT", "ACTION", "TARGET", "OUTCOME", "REASON")
    for e in page.items:
        grid.add_row(when(e.time), escape(e.actor), escape(e.tenant or "-"), escape(e.action),
                     escape(e.target), e.outcome, escape(e.reason))  # fmt: skip
    output.print_table(grid)
