"""OIDC bearer mode: a JWT from the site's identity provider is checked with PyJWT against
the provider's keys (JWKS) and the configuration (``allot.config.oidc``): its signature (by a
key of the JWKS, with an allowed asymmetric algorithm), issuer, audience and expiry (``exp``
is required; ``nbf`` and ``iat`` are checked when present, with the configured leeway).

Its claims make the principal: the user from ``user_claim``; the roles from the groups in
``groups_claim``: a group of ``cluster_admin_groups`` makes a cluster admin, a group of
``tenants`` a role in that tenant (the strongest one when several groups name one tenant).
Nobody is created in the store: the token alone says who the caller is.

Keys: from a JWKS file (read at start) or URL (PyJWKClient, which caches the set for five
minutes and fetches it again for a key id it does not know). Nothing else is fetched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt

from allot.api.auth import CredentialError, Identity
from allot.config.oidc import OidcConfig
from allot.control.principal import Principal, Role

_STRENGTH = {Role.VIEWER: 0, Role.MEMBER: 1, Role.TENANT_ADMIN: 2}


class JwtVerifier:
    """Checks a JWT and maps its claims to an ``Identity`` (see the module docstring)."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._client: jwt.PyJWKClient | None = None
        self._keys: jwt.PyJWKSet | None = None
        if config.jwks.startswith(("http://", "https://")):
            self._client = jwt.PyJWKClient(config.jwks, cache_jwk_set=True, lifespan=300)
        else:
            self._keys = jwt.PyJWKSet.from_json(Path(config.jwks).read_text())

    def _key(self, token: str) -> Any:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token)
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None:
            if len(self._keys.keys) == 1:
                return self._keys.keys[0]
            raise CredentialError("the JWT names no key (kid) and the JWKS has several")
        try:
            return self._keys[kid]
        except KeyError:
            raise CredentialError("the JWT's key is not in the identity provider's JWKS") from None

    def __call__(self, token: str) -> Identity:
        config = self.config
        try:
            claims = jwt.decode(
                token,
                self._key(token),
                algorithms=list(config.algorithms),
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise CredentialError("the JWT has expired") from None
        except jwt.PyJWKClientError as err:
            raise CredentialError(f"the JWT's key could not be found: {err}") from None
        except jwt.InvalidTokenError as err:
            raise CredentialError(f"the JWT is not valid: {err}") from None
        user = claims.get(config.user_claim)
        if not isinstance(user, str) or not user:
            raise CredentialError(f"the JWT has no {config.user_claim!r} claim naming the user")
        groups = claims.get(config.groups_claim, [])
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list):
            groups = []
        memberships: dict[str, Role] = {}
        for group in groups:
            if not isinstance(group, str) or group not in config.tenants:
                continue
            tenant, name = config.tenants[group]
            role = Role(name)
            held = memberships.get(tenant)
            if held is None or _STRENGTH[role] > _STRENGTH[held]:
                memberships[tenant] = role
        admin = any(isinstance(g, str) and g in config.cluster_admin_groups for g in groups)
        return Identity(Principal(user, memberships, cluster_admin=admin), None, f"jwt:{user}")
