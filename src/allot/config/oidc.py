"""OIDC files: how a site's identity provider maps onto allot's users, tenants and roles
(``allot up --oidc FILE``; the format is in ``docs/tenancy.md``)::

    issuer: https://idp.example.com/realms/lab      # the tokens' iss, exactly
    audience: allot                                 # the tokens' aud must contain it
    jwks: https://idp.example.com/realms/lab/certs  # or a path to a JWKS file
    algorithms: [RS256]                             # default: RS256 and ES256
    user_claim: preferred_username                  # default: sub
    groups_claim: groups                            # default: groups
    leeway_seconds: 30                              # clock skew allowed on exp/nbf/iat
    cluster_admin_groups: [gpu-admins]
    tenants:                                        # a group -> a tenant and a role there
      vision-team: {tenant: vision, role: member}
      vision-leads: {tenant: vision, role: tenant_admin}

Invariants: every problem raises ``ConfigError`` naming the file, the line and the field; an
algorithm must be an asymmetric one (a shared-secret HS* algorithm would let anyone holding
the JWKS mint tokens); a role is a tenant's role (``tenant_admin``, ``member``, ``viewer``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from allot.config.yamldoc import load_yaml

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
              "EdDSA")  # fmt: skip
TENANT_ROLES = ("tenant_admin", "member", "viewer")
_KEYS = ("issuer", "audience", "jwks", "algorithms", "user_claim", "groups_claim",
         "leeway_seconds", "cluster_admin_groups", "tenants")  # fmt: skip


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """How JWTs are checked and what their claims mean (see the module docstring)."""

    issuer: str
    audience: str
    jwks: str  # an http(s) URL or a file path
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    user_claim: str = "sub"
    groups_claim: str = "groups"
    leeway_seconds: float = 30.0
    cluster_admin_groups: frozenset[str] = frozenset()
    tenants: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # group -> (tenant, role)


def load_oidc(path: Path) -> OidcConfig:
    """Read and check an OIDC file; raises ConfigError."""
    doc = load_yaml(path)
    doc.check_keys(_KEYS, required=("issuer", "audience", "jwks"))
    algorithms = tuple(n.as_str() for n in doc.get_list("algorithms", default_empty=True))
    for i, name in enumerate(algorithms):
        if name not in ALGORITHMS:
            node = doc.get_list("algorithms")[i]
            raise node.error(f"must be one of {', '.join(ALGORITHMS)} (asymmetric), got {name!r}")
    tenants: dict[str, tuple[str, str]] = {}
    if "tenants" in doc:
        mapping = doc.get_map("tenants")
        groups = mapping.keys()
        for group in groups:
            entry = mapping.get_map(group)
            entry.check_keys(("tenant", "role"), required=("tenant", "role"))
            role = entry.get_str("role")
            if role not in TENANT_ROLES:
                raise entry.error("role", f"must be one of {', '.join(TENANT_ROLES)}")
            tenants[group] = (entry.get_str("tenant"), role)
    jwks = doc.get_str("jwks")
    if not jwks.startswith(("http://", "https://")):
        resolved = (path.parent / jwks).resolve()
        if not resolved.is_file():
            raise doc.error("jwks", f"no such file: {resolved}")
        jwks = str(resolved)
    return OidcConfig(
        issuer=doc.get_str("issuer"),
        audience=doc.get_str("audience"),
        jwks=jwks,
        algorithms=algorithms or ("RS256", "ES256"),
        user_claim=doc.get_str("user_claim", default="sub"),
        groups_claim=doc.get_str("groups_claim", default="groups"),
        leeway_seconds=doc.get_float("leeway_seconds", default=30.0),
        cluster_admin_groups=frozenset(
            n.as_str() for n in doc.get_list("cluster_admin_groups", default_empty=True)
        ),
        tenants=tenants,
    )
