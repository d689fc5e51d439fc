"""The Microsoft identity platform (Entra ID v2.0) as msal's client-credentials flow meets it.

Paths: `GET /{tenant}/v2.0/.well-known/openid-configuration` (msal needs `authorization_endpoint`
and `token_endpoint`, graph.md §1) and `POST /{tenant}/oauth2/v2.0/token`. Errors use Entra's
OAuth2 shape `{"error", "error_description": "AADSTSnnnn: ...", "error_codes": [n], "timestamp",
"trace_id", "correlation_id", "error_uri"}` with Entra's statuses: a wrong or missing client
secret is 401 `invalid_client` (as Entra answers, although msal's own throttle only caches 400s),
an unknown tenant 400 (`invalid_tenant` on discovery, `invalid_request` on the token endpoint).

Only the client-credentials grant is emulated; other grant types answer
`unsupported_grant_type`. Access tokens are HS256 JWTs (opaque to clients) valid for
`token_lifetime_s` on the sandbox clock, whose `roles` claim lists the app's application
permissions (`DEFAULT_ROLES`, or the seed's `graph.app_roles`: a token keeps the roles it was
issued with, as Entra's does); the `TokenRegistry` is what Graph consults. Tokens live
in memory only: they survive `reset` (an app keeps its token when the tenant's content is
wiped) but not a restart, after which clients get 401 and must acquire again.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote

import jwt

from syncd.sandbox.core import Request, Response, SandboxClock, SandboxContext, Vendor

DEFAULT_TOKEN_LIFETIME_S = 3599
GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# The application permissions an admin granted the app (the token's `roles` claim); a seed's
# `graph.app_roles` replaces them, to rehearse a tenant where one is missing.
DEFAULT_ROLES = ("Sites.ReadWrite.All", "Mail.Send", "Mail.Read", "User.Read.All")
_PATH = re.compile(
    r"^/(?P<tenant>[^/]+)/(?:(?P<oauth>oauth2/v2\.0/(?:token|authorize))"
    r"|(?P<oidc>v2\.0/\.well-known/openid-configuration))$"
)


@dataclass(frozen=True)
class Grant:
    """What an access token stands for."""

    client_id: str
    tenant_id: str
    expires_at: datetime
    roles: frozenset[str] = frozenset(DEFAULT_ROLES)


class TokenRegistry:
    """Access tokens issued by the identity platform, shared with the Graph emulator."""

    def __init__(self, clock: SandboxClock) -> None:
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._grants: dict[str, Grant] = {}
        self.lifetime_s = DEFAULT_TOKEN_LIFETIME_S
        self.roles: tuple[str, ...] = DEFAULT_ROLES

    def issue(self, client_id: str, tenant_id: str) -> str:
        now = self._clock.now()
        self._grants = {t: g for t, g in self._grants.items() if g.expires_at > now}
        expires = now + timedelta(seconds=self.lifetime_s)
        claims = {
            "aud": GRAPH_RESOURCE,
            "iss": f"https://sts.windows.net/{tenant_id}/",
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "appid": client_id,
            "tid": tenant_id,
            "idtyp": "app",
            "roles": list(self.roles),
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
        }
        token = jwt.encode(claims, self._key, algorithm="HS256")
        self._grants[token] = Grant(client_id, tenant_id, expires, frozenset(self.roles))
        return token

    def lookup(self, token: str) -> Grant | None:
        """The grant behind `token` (possibly expired), or None if it was never issued here."""
        return self._grants.get(token)


class IdentityVendor(Vendor):
    """`/{tenant}/v2.0/.well-known/openid-configuration` and `/{tenant}/oauth2/v2.0/token`."""

    name = "auth"

    def __init__(self, ctx: SandboxContext) -> None:
        super().__init__(ctx)
        self.tokens = TokenRegistry(ctx.clock)

    @property
    def _creds(self) -> dict[str, str]:
        return self.ctx.credentials["graph"]

    def matches(self, path: str) -> bool:
        return _PATH.match(path) is not None

    def handle(self, req: Request) -> Response:
        match = _PATH.match(req.path)
        assert match is not None  # the server routes only matching paths here
        tenant = match["tenant"]
        if match["oidc"]:
            return self._discovery(req, tenant)
        if match["oauth"].endswith("authorize"):
            return self._error(
                req,
                400,
                "invalid_request",
                900561,
                "Interactive sign-in is not emulated by the sandbox; use the "
                "client credentials flow.",
            )
        if req.method != "POST":
            return self._error(
                req,
                400,
                "invalid_request",
                900561,
                f"The endpoint only accepts POST requests. Received a {req.method} request.",
            )
        return self._token(req, tenant)

    def error_response(self, status: int, retry_after: int | None = None) -> Response:
        if status == 429:
            code, number, text = (
                "temporarily_unavailable",
                90055,
                ("TenantThrottlingError - There are too many incoming requests."),
            )
        elif status >= 500:
            code, number, text = (
                "temporarily_unavailable",
                90033,
                ("A transient error has occurred. Please try again."),
            )
        else:
            code, number, text = "invalid_request", 90014, "The request could not be processed."
        response = self._error(None, status, code, number, text)
        if retry_after is not None:
            response.headers["Retry-After"] = str(int(retry_after))
        return response

    # -- endpoints ----------------------------------------------------------------------------

    def _known_tenant(self, tenant: str) -> bool:
        return tenant.casefold() == self._creds["tenant_id"].casefold()

    def _discovery(self, req: Request, tenant: str) -> Response:
        if req.method != "GET":
            return Response.json(405, {"error": "invalid_request"}, {"Allow": "GET"})
        if not self._known_tenant(tenant):
            return self._error(req, 400, "invalid_tenant", 90002, _tenant_not_found(tenant))
        base = f"{req.base_url}/{tenant}"
        return Response.json(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
            },
        )

    def _token(self, req: Request, tenant: str) -> Response:
        form = req.form()
        basic = _basic_credentials(req.header("Authorization")) or ("", "")
        client_id = form.get("client_id") or basic[0]
        secret = form.get("client_secret") or basic[1]
        problem = self._token_problem(tenant, form, client_id, secret)
        if problem:
            return self._error(req, *problem)
        token = self.tokens.issue(self._creds["client_id"], self._creds["tenant_id"])
        lifetime = self.tokens.lifetime_s
        return Response.json(
            200,
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            },
            {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )

    def _token_problem(
        self, tenant: str, form: dict[str, str], client_id: str, secret: str
    ) -> tuple[int, str, int, str] | None:
        """The first problem with a token request: (status, error, AADSTS number, text)."""
        if not self._known_tenant(tenant):
            return 400, "invalid_request", 90002, _tenant_not_found(tenant)
        for needed, value in (("grant_type", form.get("grant_type")), ("client_id", client_id)):
            if not value:
                return 400, "invalid_request", 900144, _missing(f"'{needed}'")
        if form["grant_type"] != "client_credentials":
            grant = form["grant_type"]
            return (
                400,
                "unsupported_grant_type",
                70003,
                (f"The app requested an unsupported grant type '{grant}'."),
            )
        if client_id.casefold() != self._creds["client_id"].casefold():
            return (
                400,
                "unauthorized_client",
                700016,
                (
                    f"Application with identifier '{client_id}' was not found in the directory "
                    f"'{tenant}'. This can happen if the application has not been installed by the "
                    f"administrator of the tenant."
                ),
            )
        if not secret:
            return 401, "invalid_client", 7000218, _missing("'client_assertion' or 'client_secret'")
        if not secrets.compare_digest(secret.encode(), self._creds["client_secret"].encode()):
            return (
                401,
                "invalid_client",
                7000215,
                (
                    "Invalid client secret provided. Ensure the secret being sent in the "
                    "request is the client secret value, not the client secret ID, for a "
                    f"secret added to app '{client_id}'."
                ),
            )
        return _check_scope(form.get("scope", ""))

    def _error(
        self, req: Request | None, status: int, error: str, number: int, text: str
    ) -> Response:
        now = self.ctx.clock.now()
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        trace = str(uuid.uuid4())
        correlation = (req.header("client-request-id") if req else None) or str(uuid.uuid4())
        description = (
            f"AADSTS{number}: {text}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {correlation}\r\nTimestamp: {stamp}"
        )
        return Response.json(
            status,
            {
                "error": error,
                "error_description": description,
                "error_codes": [number],
                "timestamp": stamp,
                "trace_id": trace,
                "correlation_id": correlation,
                "error_uri": f"https://login.microsoftonline.com/error?code={number}",
            },
            {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )


def _missing(what: str) -> str:
    return f"The request body must contain the following parameter: {what}."


def _tenant_not_found(tenant: str) -> str:
    return (
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
        f"are signing into the correct cloud."
    )


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """client_secret_basic: `Authorization: Basic base64(urlencoded id:secret)`."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = raw.partition(":")
    return (unquote(user), unquote(password)) if sep else None


def _check_scope(scope: str) -> tuple[int, str, int, str] | None:
    """Client credentials need exactly one `<resource>/.default` scope, here Graph's."""
    scopes = scope.split()
    if not scopes:
        return 400, "invalid_request", 900144, _missing("'scope'")
    if len(scopes) > 1 or not scopes[0].endswith("/.default"):
        return (
            400,
            "invalid_scope",
            1002012,
            (
                f"The provided value for scope {scope} is not valid. Client credential flows must "
                f"have a scope value with /.default suffixed to the resource identifier "
                f"(application ID URI)."
            ),
        )
    resource = scopes[0][: -len("/.default")]
    if resource.rstrip("/").casefold() not in (GRAPH_RESOURCE, GRAPH_APP_ID):
        return (
            400,
            "invalid_resource",
            500011,
            (f"The resource principal named {resource} was not found in the tenant."),
        )
    return None
