"""Bearer tokens (JWT) with roles.

Claims used by medgov:
- `sub`: the caller (a user id; for a patient, any id),
- `roles`: list of roles from ROLES,
- `institution`: the caller's institution id (hospital, vendor),
- `subject`: for a patient, the pseudonym of their own records.
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ROLES = frozenset(
    {"applicant", "irb_reviewer", "drb_reviewer", "hospital", "patient", "fund_admin", "council", "operator"}
)

_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True)
class Principal:
    id: str
    roles: frozenset[str]
    institution: str | None
    subject: str | None
    region: str | None

    def has_any(self, roles: Iterable[str]) -> bool:
        return bool(self.roles.intersection(roles))


class TokenVerifier:
    def __init__(self, *, secret: str | None = None, public_key: str | None = None) -> None:
        if not (secret or public_key):
            raise ValueError("TokenVerifier needs a shared secret or a public key")
        self._key = public_key or secret
        self._algorithms = ["RS256", "ES256"] if public_key else ["HS256"]

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(token, self._key, algorithms=self._algorithms, options={"require": ["sub", "exp"]})
        except jwt.ExpiredSignatureError:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bearer token expired; sign in again") from None
        except jwt.InvalidSignatureError as error:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid bearer token: {error}") from None
        except jwt.DecodeError:
            # PyJWT's own text here names a codec or a padding error, not the token.
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "invalid bearer token: not a JWT (three base64url parts: header, claims, signature)"
            ) from None
        except jwt.InvalidTokenError as error:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid bearer token: {error}") from None
        caller = claims["sub"]
        if not isinstance(caller, str) or not caller.strip():
            # Audit records and decisions name the caller by this id.
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid bearer token: 'sub' must name the caller")
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid bearer token: 'roles' must be a list of strings")
        unknown = set(roles) - ROLES
        if unknown:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid bearer token: unknown roles {sorted(unknown)}")
        return Principal(
            id=caller,
            roles=frozenset(roles),
            institution=claims.get("institution"),
            subject=claims.get("subject"),
            region=claims.get("region"),
        )


def issue_token(
    secret: str,
    *,
    subject_id: str,
    roles: Iterable[str],
    institution: str | None = None,
    patient_subject: str | None = None,
    region: str | None = None,
    ttl_s: int = 3600,
) -> str:
    """Sign an HS256 token; used by the demo, the CLI and tests with the development secret."""
    now = int(time.time())
    claims = {"sub": subject_id, "roles": sorted(roles), "iat": now, "exp": now + ttl_s}
    if institution:
        claims["institution"] = institution
    if patient_subject:
        claims["subject"] = patient_subject
    if region:
        claims["region"] = region
    return jwt.encode(claims, secret, algorithm="HS256")


def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier.verify(credentials.credentials)


def require_roles(*roles: str) -> Callable[..., Principal]:
    """FastAPI dependency: the caller must hold one of `roles`, else 403 naming them."""
    unknown = set(roles) - ROLES
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.has_any(roles):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this action needs one of the roles {sorted(roles)}"
            )
        return principal

    return dependency
