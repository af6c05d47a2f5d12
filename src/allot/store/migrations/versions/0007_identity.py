"""Users, tenant memberships with roles, tokens bound to a user with expiry and last use, and
tenant grants: ``users.cluster_admin``, the ``memberships`` and ``tenant_grants`` tables,
``api_tokens.user``, ``expires_at`` and ``last_used_at``; ``users.tenant`` and
``api_tokens.role`` go (roles now live in memberships).

Existing rows: every token so far was an admin token; each token's name becomes a user of
that name, a cluster admin, and the token is bound to it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_tokens = sa.table(
    "api_tokens",
    sa.column("name", sa.String()),
    sa.column("user", sa.String()),
    sa.column("created_at", sa.Double()),
)
_users = sa.table(
    "users",
    sa.column("name", sa.String()),
    sa.column("created_at", sa.Double()),
    sa.column("cluster_admin", sa.Boolean()),
)


def upgrade() -> None:
    """Add the tables and columns, make each token's name a cluster admin, bind the token."""
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("cluster_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.drop_column("tenant")
    conn = op.get_bind()
    known = set(conn.execute(sa.select(_users.c.name)).scalars())
    first: dict[str, float] = {}
    for name, created in conn.execute(sa.select(_tokens.c.name, _tokens.c.created_at)):
        first[name] = min(created, first.get(name, created))
    new = [{"name": n, "created_at": t, "cluster_admin": True} for n, t in first.items()]
    if new := [row for row in new if row["name"] not in known]:
        conn.execute(sa.insert(_users), new)
    conn.execute(sa.update(_users).where(_users.c.name.in_(list(first))).values(cluster_admin=True))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("user", sa.String(), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.Double(), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.Double(), nullable=True))
    conn.execute(sa.update(_tokens).values(user=_tokens.c.name))
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("user", existing_type=sa.String(), nullable=False)
        batch.drop_column("role")
        batch.create_foreign_key(op.f("fk_api_tokens_user_users"), "users", ["user"], ["name"])
    op.create_table(
        "memberships",
        sa.Column("user", sa.String(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["user"], ["users.name"], name=op.f("fk_memberships_user_users")),
        sa.PrimaryKeyConstraint("user", "tenant", name=op.f("pk_memberships")),
    )
    op.create_table(
        "tenant_grants",
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("quotas", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", name=op.f("pk_tenant_grants")),
    )


def downgrade() -> None:
    """Back to admin tokens by name: every token keeps working, as an admin's."""
    op.drop_table("tenant_grants")
    op.drop_table("memberships")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint(op.f("fk_api_tokens_user_users"), type_="foreignkey")
        batch.add_column(sa.Column("role", sa.String(), nullable=False, server_default="admin"))
        batch.drop_column("last_used_at")
        batch.drop_column("expires_at")
        batch.drop_column("user")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("tenant", sa.String(), nullable=True))
        batch.drop_column("cluster_admin")
