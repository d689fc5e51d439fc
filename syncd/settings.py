"""syncd's settings: a TOML file, overridden by `SYNCD_*` environment variables, plus secrets
read only from a credentials directory.

Secrets come from `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`) or `[secrets] dir`, one
file per secret, and are held as `SecretStr` so that no log line, repr or dump shows them. A
secret in the TOML file or the environment is refused: those end up in backups, unit files and
`/proc/*/environ`.

`load_settings` merges the layers itself, with pydantic validating the result, so that every
error names the file or variable and the key that caused it. (pydantic-settings is not used:
its sources cannot say which layer a bad value came from, and its secrets directory maps files
to top-level fields only, not `zendesk_token` to `[zendesk] token`.)
"""

from __future__ import annotations

import contextlib
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from syncd.errors import Fatal
from syncd.model import LIMIT_KINDS

DEFAULT_CONFIG = Path("/etc/syncd/syncd.toml")
ENV_PREFIX = "SYNCD_"
CONFIG_ENV = "SYNCD_CONFIG"
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"

# (section, key) -> file name in the credentials directory.
SECRET_FILES: dict[tuple[str, str], str] = {
    ("zendesk", "token"): "zendesk_token",
    ("salesforce", "client_secret"): "salesforce_client_secret",
    ("salesforce", "private_key"): "salesforce_private_key",
    ("graph", "client_secret"): "graph_client_secret",
    ("webhooks", "signing_secret"): "zendesk_webhook_secret",
}


class SettingsError(Fatal, ValueError):
    """Settings that cannot be used; the message names the file or variable and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyncdSection(_Section):
    rules_dir: Path = Path("/etc/syncd/rules")
    state_dir: Path = Path("/var/lib/syncd")
    # `{state_dir}` in these two is replaced by the state directory.
    store_url: str = "sqlite:///{state_dir}/state.db"
    kill_switch_file: Path = Path("{state_dir}/STOP")
    timezone: str = "UTC"
    poll_interval_s: float = Field(30.0, gt=0)
    log_format: Literal["keyvalue", "json"] = "keyvalue"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Reload the rules when a file in rules_dir changes (SIGHUP / `systemctl reload` always do).
    watch_rules: bool = True
    dry_run: bool = False
    max_attempts: int = Field(8, ge=1)
    # A source's first poll: "baseline" records what is there without acting on it (instant
    # rules are skipped, audited); "fire" acts on every record as if it had just changed.
    first_sync: Literal["baseline", "fire"] = "baseline"
    # Timeline steps already past due when the baseline first sees a record: "skip" records
    # them skipped ("before go-live", audited); "fire" sends them (each rule's `catch_up`).
    first_sync_catch_up: Literal["skip", "fire"] = "skip"
    # Several hosts on one PostgreSQL elect one leader (docs/ha.md): it holds a lease of this
    # term, renewed this often; a standby takes over when the term runs out (real seconds).
    lease_term_s: float = Field(10.0, gt=0)
    lease_renew_s: float = Field(3.0, gt=0)
    # The largest file syncd attaches to a ticket (streamed through a temporary file) or
    # copies: Zendesk takes up to 50 MB per attachment. A larger one takes the else path.
    max_attachment_mb: float = Field(50.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _expand_state_dir(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        state_dir = str(data.get("state_dir", cls.model_fields["state_dir"].default))
        expanded = dict(data)
        for key in ("store_url", "kill_switch_file"):
            value = expanded.get(key, cls.model_fields[key].default)
            if isinstance(value, str | Path):
                expanded[key] = str(value).replace("{state_dir}", state_dir)
        return expanded

    @model_validator(mode="after")
    def _renewed_within_the_term(self) -> SyncdSection:
        if self.lease_renew_s * 2 > self.lease_term_s:
            raise ValueError("lease_renew_s must be at most half of lease_term_s")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class TlsSection(_Section):
    ca_bundle: FilePath | None = None  # None: the system's trust store


class ProxySection(_Section):
    https: str | None = None


def _https(value: str | None) -> str | None:
    """Credentials go to every vendor URL (a Basic token, a client secret, a bearer token):
    plain http would send them in clear."""
    if value is not None and not value.lower().startswith("https://"):
        raise ValueError("must be an https:// URL: syncd sends credentials there, never in clear")
    return value


HttpsUrl = Annotated[str, AfterValidator(_https)]


class ZendeskSection(_Section):
    subdomain: str
    email: str
    token: SecretStr | None = None
    scheme: Literal["https"] = Field("https", description="only https: the token goes along")
    netloc: str | None = None  # custom host (or sandbox) instead of {subdomain}.zendesk.com
    rate_share: float = Field(0.5, gt=0, le=1)
    plan_rate_per_minute: int = Field(700, gt=0)
    incremental_per_minute: int = Field(10, gt=0)
    # syncd's share of the export's own budget. A poll reads it at most twice a minute, so it
    # binds only on a backlog (a go-live, a catch-up after an outage), which it then paces.
    export_share: float = Field(1.0, gt=0, le=1)
    # How long the agents, groups and memberships syncd read stay in use: an agent's away flag
    # is seen within it. Somebody missing from them is read again at once (once a minute).
    directory_ttl_s: float = Field(900.0, gt=0)


class SalesforceSection(_Section):
    token_url: HttpsUrl = "https://login.salesforce.com/services/oauth2/token"
    client_id: str
    client_secret: SecretStr | None = None
    username: str | None = None  # with private_key: JWT bearer flow
    private_key: SecretStr | None = None
    instance_url: HttpsUrl | None = None
    api_version: str = "59.0"
    lookback_s: int = Field(300, ge=0)
    objects: list[str] = Field(default_factory=lambda: ["Opportunity", "Account", "Task"])
    # The org's API requests per rolling 24 h (Setup > Company Information), and the share of
    # it syncd may spend; the rest stays for the org's other integrations.
    daily_api_requests: int = Field(15000, gt=0)
    share: float = Field(0.5, gt=0, le=1)
    # JWT bearer `aud`; unset: the login host of token_url (login./test.salesforce.com, My Domain)
    jwt_audience: str | None = None
    # relationship paths polled beyond each parent's name field, e.g. "Task.What.Name"
    parent_fields: list[str] = Field(default_factory=list)

    @field_validator("parent_fields")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if len(path.split(".")) < 3 or not all(path.split(".")):
                raise ValueError(f"{path!r} is not an sObject, a relationship and a field, "
                                 "like 'Task.What.Name'")
        return value


class GraphSection(_Section):
    authority: HttpsUrl = "https://login.microsoftonline.com"
    tenant_id: str
    client_id: str
    client_secret: SecretStr | None = None
    base_url: HttpsUrl = "https://graph.microsoft.com/v1.0"
    scope: str = "https://graph.microsoft.com/.default"
    site_id: str | None = None
    drive_id: str | None = None
    mailbox: str | None = None
    watched_folders: list[str] = Field(default_factory=list)
    lists: list[str] = Field(default_factory=list)


METRICS_PORT = 9841  # not 9464, the OpenTelemetry Prometheus exporter's default


LimitCounts = dict[Literal[LIMIT_KINDS], int]  # type: ignore[valid-type]


class LimitsSection(_Section):
    """Blast-radius limits (daemon/limits.py): past one, intents are held for a person
    (`syncd intents --held`, `--release RULE`). Kinds: LIMIT_KINDS. `rule_*` apply to each rule
    on its own (a rule's `limits:` replaces them kind by kind), the others to all rules
    together; `per_cycle` counts one executor pass, `per_hour` the last 60 minutes."""

    rule_per_cycle: LimitCounts = Field(default_factory=lambda: {"any": 100})
    rule_per_hour: LimitCounts = Field(default_factory=lambda: {"write": 50, "mail": 50})
    per_cycle: LimitCounts = Field(default_factory=lambda: {"any": 500})
    per_hour: LimitCounts = Field(default_factory=lambda: {"write": 1000, "mail": 200})

    @field_validator("rule_per_cycle", "rule_per_hour", "per_cycle", "per_hour")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        bad = sorted(kind for kind, n in value.items() if n < 1)
        if bad:
            raise ValueError(f"limits must be 1 or more ({', '.join(bad)})")
        return value


class MetricsSection(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(METRICS_PORT, ge=1, le=65535)


class StoreSection(_Section):
    # Field history, audit rows, settled intents and ended timers older than this go (0: keep
    # everything); what a pending timer or an open intent needs stays (store/retention.py).
    keep_days: int = Field(400, ge=0)
    prune_every_s: float = Field(3600.0, gt=0)


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def metrics_exposed(settings: Settings) -> str | None:
    """Why `/metrics` is reachable beyond this host (`[metrics] host`), or None."""
    metrics = settings.metrics
    if not metrics.enabled or metrics.host in LOOPBACK or metrics.host.startswith("127."):
        return None
    return (f"[metrics] host = {metrics.host!r}: /metrics (record counts, vendors, rule "
            f"activity) is served on port {metrics.port} to whoever can reach this host")


class WebhooksSection(_Section):
    """Zendesk webhooks as a push source (daemon/push.py): off by default; the export stays."""

    enabled: bool = False
    host: str = "127.0.0.1"  # loopback: behind a reverse proxy that terminates TLS
    port: int = Field(8788, ge=1, le=65535)
    path: str = "/webhooks/zendesk"
    tls_cert: Path | None = None  # both or neither: syncd serves HTTPS itself
    tls_key: Path | None = None
    signing_secret: SecretStr | None = None  # credentials file zendesk_webhook_secret
    max_age_s: float = Field(300.0, gt=0)  # older signature timestamps are refused
    batch_s: float = Field(0.5, ge=0)  # how long ticket ids gather before one show_many

    @model_validator(mode="after")
    def _complete(self) -> WebhooksSection:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.enabled and self.signing_secret is None:
            raise ValueError("enabled needs the webhook's signing secret: the file "
                             "zendesk_webhook_secret in the credentials directory")
        return self


class SecretsSection(_Section):
    dir: Path | None = None  # used when $CREDENTIALS_DIRECTORY is not set


class Settings(BaseModel):
    """Everything syncd reads at start-up. Vendor sections are None when not configured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    syncd: SyncdSection = SyncdSection()
    secrets: SecretsSection = SecretsSection()
    tls: TlsSection = TlsSection()
    proxy: ProxySection = ProxySection()
    zendesk: ZendeskSection | None = None
    salesforce: SalesforceSection | None = None
    graph: GraphSection | None = None
    metrics: MetricsSection = MetricsSection()
    store: StoreSection = StoreSection()
    limits: LimitsSection = LimitsSection()
    webhooks: WebhooksSection = WebhooksSection()

    def missing_secrets(self) -> list[str]:
        """Credential files a configured vendor needs but that were not found."""
        missing = []
        if self.zendesk and self.zendesk.token is None:
            missing.append("zendesk_token")
        sf = self.salesforce
        if sf and sf.client_secret is None and not (sf.username and sf.private_key):
            missing.append("salesforce_client_secret (or username + salesforce_private_key)")
        if self.graph and self.graph.client_secret is None:
            missing.append("graph_client_secret")
        return missing


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from `path` (else `$SYNCD_CONFIG`, else /etc/syncd/syncd.toml), then
    `SYNCD_<SECTION>__<KEY>` variables, then the credentials directory."""
    env = os.environ if env is None else env
    path = path or Path(env.get(CONFIG_ENV) or DEFAULT_CONFIG)
    file_values = _read_toml(path)
    env_values = _read_env(env)
    merged = _deep_merge(file_values, env_values)
    _refuse_inline_secrets(path, file_values, env_values)
    credentials = _credentials_dir(path, merged, env)
    if credentials is not None:
        for (section, key), name in SECRET_FILES.items():
            secret = _read_secret(credentials / name)
            if secret and isinstance(merged.get(section), dict):
                merged[section][key] = secret
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise SettingsError(_describe(path, exc, env_values)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(
            f"{path}: no such settings file (see --config / {CONFIG_ENV})"
        ) from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read settings: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None


def _read_env(env: Mapping[str, str]) -> dict[str, Any]:
    """`SYNCD_ZENDESK__RATE_SHARE=0.3` -> {"zendesk": {"rate_share": "0.3"}}. Variables whose
    first part is not a settings section (SYNCD_CONFIG, other tools' knobs) are ignored; JSON
    arrays and objects are decoded (`SYNCD_GRAPH__LISTS='["Onboarding"]'`)."""
    sections = set(Settings.model_fields)
    values: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) < 2 or parts[0] not in sections:
            continue
        value: Any = raw
        if raw.lstrip().startswith(("[", "{")):
            with contextlib.suppress(json.JSONDecodeError):  # else validation names it
                value = json.loads(raw)
        node = values
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return values


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """A new nested dict: `top` over `base`, neither of them modified."""
    merged: dict[str, Any] = {}
    for key in base.keys() | top.keys():
        low, high = base.get(key), top.get(key)
        if isinstance(low, Mapping) and isinstance(high, Mapping):
            merged[key] = _deep_merge(low, high)
        else:
            value = high if key in top else low
            merged[key] = _deep_merge(value, {}) if isinstance(value, Mapping) else value
    return merged


def _refuse_inline_secrets(
    path: Path, file_values: Mapping[str, Any], env_values: Mapping[str, Any]
) -> None:
    for (section, key), name in SECRET_FILES.items():
        where = None
        if _has_path(file_values, (section, key)):
            where = f"{path}: {section}.{key}"
        elif _has_path(env_values, (section, key)):
            where = f"{_env_name((section, key))}: {section}.{key}"
        if where:
            raise SettingsError(
                f"{where}: secrets are read only from the credentials directory; put it in a "
                f"file named {name} there ($CREDENTIALS_DIRECTORY or [secrets] dir)"
            )


def _credentials_dir(path: Path, merged: Mapping[str, Any], env: Mapping[str, str]) -> Path | None:
    """$CREDENTIALS_DIRECTORY (systemd) wins over `[secrets] dir`; a named one must exist."""
    if env.get(CREDENTIALS_ENV):
        where, directory = CREDENTIALS_ENV, Path(env[CREDENTIALS_ENV])
    elif isinstance(merged.get("secrets"), Mapping) and merged["secrets"].get("dir"):
        where, directory = f"{path}: secrets.dir", Path(merged["secrets"]["dir"])
    else:
        return None
    if not directory.is_dir():
        raise SettingsError(f"{where}: credentials directory {directory} does not exist")
    return directory


def _read_secret(path: Path) -> str | None:
    """A secret file's content without surrounding whitespace; None if absent or empty."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read credential: {exc.strerror}") from None


def _env_name(loc: tuple[str | int, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def _describe(path: Path, exc: ValidationError, env_values: Mapping[str, Any]) -> str:
    """One `key: message` line per error, marking keys that came from the environment.
    Input values are never shown: one of them could be a secret."""
    lines = [f"{path}: invalid settings"]
    for error in exc.errors():
        loc = error["loc"]
        key = ".".join(str(part) for part in loc) or "(top level)"
        origin = f" (from {_env_name(loc)})" if _has_path(env_values, loc) else ""
        lines.append(f"  {key}{origin}: {error['msg']}")
    return "\n".join(lines)


def _has_path(values: Mapping[str, Any], loc: tuple[str | int, ...]) -> bool:
    node: Any = values
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True
