"""Users, their roles in tenants (memberships) and the tenants' grants.

Invariants: a user's name is unique; a user has at most one role per tenant; a grant is a
list of quota objects (the shape of ``quotas.py``), one per flavor and resource.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, delete, insert, select

from allot.control.ports import NotFoundError
from allot.control.principal import Role
from allot.control.records import UserRecord
from allot.core.quota.config import FlavorResource, Quotas, ResourceQuota
from allot.store.quotas import quotas_from_json, quotas_json
from allot.store.tables import GrantRow, MembershipRow, UserRow


def add(conn: Connection, name: str, *, cluster_admin: bool, at: float) -> UserRecord:
    """Store a new user; raises IntegrityError when the name is taken."""
    conn.execute(insert(UserRow), {"name": name, "created_at": at, "cluster_admin": cluster_admin})
    return UserRecord(name, at, cluster_admin)


def _memberships(conn: Connection, names: list[str] | None) -> dict[str, dict[str, Role]]:
    query = select(MembershipRow.user, MembershipRow.tenant, MembershipRow.role).order_by(
        MembershipRow.user, MembershipRow.tenant
    )
    if names is not None:
        query = query.where(MembershipRow.user.in_(names))
    found: dict[str, dict[str, Role]] = defaultdict(dict)
    for row in conn.execute(query):
        found[row.user][row.tenant] = Role(row.role)
    return found


def get(conn: Connection, name: str) -> UserRecord:
    """The user with its memberships; raises NotFoundError."""
    row = conn.execute(
        select(UserRow.name, UserRow.created_at, UserRow.cluster_admin).where(UserRow.name == name)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"user {name!r} does not exist")
    roles = _memberships(conn, [name]).get(name, {})
    return UserRecord(row.name, row.created_at, row.cluster_admin, roles)


def listed(conn: Connection) -> list[UserRecord]:
    """Every user, by name."""
    roles = _memberships(conn, None)
    rows = conn.execute(
        select(UserRow.name, UserRow.created_at, UserRow.cluster_admin).order_by(UserRow.name)
    )
    return [UserRecord(r.name, r.created_at, r.cluster_admin, roles.get(r.name, {})) for r in rows]


def set_membership(conn: Connection, user: str, tenant: str, role: Role | None) -> UserRecord:
    """Give ``user`` ``role`` in ``tenant`` (None: take it out of the tenant); raises
    NotFoundError for an unknown user, ValueError for a role that is not a tenant's."""
    if role is Role.CLUSTER_ADMIN:
        raise ValueError("role: cluster_admin is not a role within a tenant")
    get(conn, user)
    conn.execute(
        delete(MembershipRow).where(MembershipRow.user == user, MembershipRow.tenant == tenant)
    )
    if role is not None:
        conn.execute(insert(MembershipRow), {"user": user, "tenant": tenant, "role": role.value})
    return get(conn, user)


def set_grant(conn: Connection, tenant: str, quotas: Quotas | None) -> None:
    """Replace ``tenant``'s grant (None: remove it)."""
    conn.execute(delete(GrantRow).where(GrantRow.tenant == tenant))
    if quotas is not None:
        conn.execute(insert(GrantRow), {"tenant": tenant, "quotas": quotas_json(quotas)})


def grants(conn: Connection) -> dict[str, dict[FlavorResource, ResourceQuota]]:
    """Every tenant's grant, by tenant."""
    rows = conn.execute(select(GrantRow.tenant, GrantRow.quotas).order_by(GrantRow.tenant))
    return {row.tenant: quotas_from_json(row.quotas) for row in rows}
