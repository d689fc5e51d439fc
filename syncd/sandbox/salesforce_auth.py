"""The OAuth 2.0 token endpoint (client credentials, JWT bearer) and the sessions it issues.

Sessions expire on the sandbox clock, so a test or a rehearsal can advance time past the
token lifetime and watch the client re-authenticate. Tokens live in memory only: they are
never part of a snapshot.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from syncd.sandbox.core import Request, Response

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# The login host whose name a JWT bearer `aud` may carry, by kind of org: a production org
# answers for login.salesforce.com, a sandbox org for test.salesforce.com, and either for its
# own My Domain login URL (here: the URL the client reached the sandbox at).
LOGIN_HOSTS = {"production": "https://login.salesforce.com", "sandbox": "https://test.salesforce.com"}


class OAuthError(Exception):
    """A token endpoint refusal: `{"error", "error_description"}` with HTTP 400."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description

    def response(self) -> Response:
        return Response.json(400, {"error": self.error, "error_description": self.description})


def load_public_key(pem: str) -> RSAPublicKey:
    """An RSA public key from a PEM public key or certificate (what a connected app holds)."""
    data = pem.encode()
    try:
        if b"CERTIFICATE" in data:
            key: Any = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError(f"jwt_public_key_pem is not a PEM key or certificate: {exc}") from exc
    if not isinstance(key, RSAPublicKey):
        raise ValueError("jwt_public_key_pem must hold an RSA key (the JWT flow uses RS256)")
    return key


@dataclass(frozen=True)
class Session:
    user_id: str
    expires_at: datetime


@dataclass(frozen=True)
class AuthConfig:
    """What the token endpoint checks against, read fresh for every request."""

    client_id: str
    client_secret: str
    public_key: RSAPublicKey | None
    lifetime_s: int
    instance_url: str
    org_id: str
    org_kind: str = "production"  # production | sandbox: which login host the org answers for


UserLookup = Callable[[str], Mapping[str, Any] | None]  # by Username


class Sessions:
    """Issued access tokens and the user each one acts as."""

    def __init__(self) -> None:
        self._tokens: dict[str, Session] = {}

    def clear(self) -> None:
        self._tokens.clear()

    def check(self, token: str, now: datetime) -> Session | None:
        session = self._tokens.get(token)
        if session is None or now >= session.expires_at:
            return None
        return session

    def token_endpoint(self, req: Request, config: AuthConfig, users: UserLookup,
                       run_as: Mapping[str, Any] | None, now: datetime) -> Response:
        try:
            user = self._grant(req, config, users, run_as, now)
        except OAuthError as exc:
            return exc.response()
        token = f"{config.org_id[:15]}!{secrets.token_urlsafe(48)}"
        self._tokens[token] = Session(user["Id"], now + timedelta(seconds=config.lifetime_s))
        issued_at = str(int(now.timestamp() * 1000))
        identity = f"{config.instance_url}/id/{config.org_id}/{user['Id']}"
        signature = hmac.new(config.client_secret.encode(), (identity + issued_at).encode(),
                             hashlib.sha256).digest()
        return Response.json(200, {
            "access_token": token,
            "scope": "api",  # the connected app's selected OAuth scope
            "instance_url": config.instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": base64.b64encode(signature).decode(),
        }, headers={"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"})

    def _grant(self, req: Request, config: AuthConfig, users: UserLookup,
               run_as: Mapping[str, Any] | None, now: datetime) -> Mapping[str, Any]:
        if req.method != "POST":
            raise OAuthError("invalid_request", "must use HTTP POST")
        form = req.form()
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            _check_client(req, form, config)
            if run_as is None:
                raise OAuthError("invalid_grant", "no client credentials user enabled")
            return _active(run_as)
        if grant == JWT_GRANT:
            return _active(_jwt_user(form.get("assertion", ""), config, users, req, now))
        raise OAuthError("unsupported_grant_type", "grant type not supported")


def _check_client(req: Request, form: Mapping[str, str], config: AuthConfig) -> None:
    """Client id and secret from the form or from HTTP Basic, as Salesforce accepts both."""
    client_id, secret = form.get("client_id"), form.get("client_secret")
    basic = req.header("Authorization") or ""
    if basic.lower().startswith("basic "):
        try:
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "invalid client credentials") from None
    if not client_id or not hmac.compare_digest(client_id, config.client_id):
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if not secret or not hmac.compare_digest(secret, config.client_secret):
        raise OAuthError("invalid_client", "invalid client credentials")


def _jwt_user(assertion: str, config: AuthConfig, users: UserLookup, req: Request,
              now: datetime) -> Mapping[str, Any]:
    if config.public_key is None:
        raise OAuthError("invalid_grant", "invalid assertion (the sandbox has no "
                         "jwt_public_key_pem in its Salesforce seed settings)")
    audiences = [LOGIN_HOSTS[config.org_kind], req.base_url]
    try:
        claims = jwt.decode(
            assertion, config.public_key, algorithms=["RS256"], audience=audiences,
            options={"require": ["iss", "sub", "aud", "exp"], "verify_exp": False,
                     "verify_iat": False, "verify_nbf": False},
        )
    except (jwt.InvalidAudienceError, jwt.MissingRequiredClaimError) as exc:
        if isinstance(exc, jwt.MissingRequiredClaimError) and exc.claim != "aud":
            raise OAuthError("invalid_grant", "invalid assertion") from None
        raise OAuthError("invalid_grant", "audience is invalid") from None
    except jwt.PyJWTError:
        raise OAuthError("invalid_grant", "invalid assertion") from None
    if claims["iss"] != config.client_id:
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if float(claims["exp"]) <= now.timestamp():  # on the sandbox clock, not the host's
        raise OAuthError("invalid_grant", "expired authorization code")
    user = users(str(claims["sub"]))
    if user is None:
        raise OAuthError("invalid_grant", "user hasn't approved this consumer")
    return user


def _active(user: Mapping[str, Any]) -> Mapping[str, Any]:
    if not user.get("IsActive"):
        raise OAuthError("invalid_grant", "inactive user")
    return user
