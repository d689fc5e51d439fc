"""Settings: TOML + SYNCD_* environment + credentials directory; secrets never shown."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from syncd import settings as settings_module
from syncd.resources import EXAMPLE_SETTINGS, shipped
from syncd.settings import SECRET_FILES, Settings, SettingsError, load_settings

NONE = type(None)
TOKEN = "zd-token-that-must-never-print"
SF_SECRET = "sf-secret-that-must-never-print"
GRAPH_SECRET = "graph-secret-that-must-never-print"

TOML = """
[syncd]
rules_dir = "/srv/rules"
state_dir = "{state}"
timezone = "Europe/London"

[zendesk]
subdomain = "acme"
email = "bot@acme.test"
netloc = "127.0.0.1:8443"
scheme = "https"

[salesforce]
client_id = "consumer-key"
objects = ["Opportunity"]

[graph]
tenant_id = "tenant"
client_id = "app"
watched_folders = ["Clients"]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(TOML.replace("{state}", str(tmp_path / "state")))
    return path


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir()
    (directory / "zendesk_token").write_text(TOKEN + "\n")
    (directory / "salesforce_client_secret").write_text(SF_SECRET)
    (directory / "graph_client_secret").write_text(GRAPH_SECRET)
    return directory


def _error(path: Path | None, env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(path, env)
    return str(caught.value)


def test_file_values_defaults_and_state_dir_templates(config: Path, tmp_path: Path) -> None:
    settings = load_settings(config, {})
    state = tmp_path / "state"
    assert settings.syncd.rules_dir == Path("/srv/rules")
    assert settings.syncd.store_url == f"sqlite:///{state}/state.db"
    assert settings.syncd.kill_switch_file == state / "STOP"
    assert settings.syncd.tz.key == "Europe/London"
    assert (settings.syncd.poll_interval_s, settings.syncd.max_attempts) == (30, 8)
    assert settings.syncd.log_format == "keyvalue" and not settings.syncd.dry_run
    assert settings.zendesk is not None and settings.zendesk.netloc == "127.0.0.1:8443"
    assert (settings.zendesk.rate_share, settings.zendesk.plan_rate_per_minute) == (0.5, 700)
    assert settings.zendesk.incremental_per_minute == 10
    assert settings.salesforce is not None and settings.salesforce.objects == ["Opportunity"]
    assert settings.salesforce.api_version == "59.0" and settings.salesforce.lookback_s == 300
    assert settings.graph is not None and settings.graph.watched_folders == ["Clients"]
    assert settings.graph.base_url == "https://graph.microsoft.com/v1.0"
    assert (settings.metrics.host, settings.metrics.port) == ("127.0.0.1", 9841)
    assert settings.tls.ca_bundle is None and settings.proxy.https is None


def test_unconfigured_vendors_are_none(tmp_path: Path) -> None:
    path = tmp_path / "minimal.toml"
    path.write_text("")
    settings = load_settings(path, {})
    assert (settings.zendesk, settings.salesforce, settings.graph) == (None, None, None)
    assert settings.syncd.store_url == "sqlite:////var/lib/syncd/state.db"


def test_environment_overrides_the_file(config: Path) -> None:
    env = {
        "SYNCD_SYNCD__POLL_INTERVAL_S": "5",
        "SYNCD_SYNCD__DRY_RUN": "true",
        "SYNCD_ZENDESK__RATE_SHARE": "0.25",
        "syncd_metrics__port": "9999",
        "SYNCD_GRAPH__LISTS": '["Onboarding", "Offboarding"]',
        "SYNCD_SYNCD__STORE_URL": "postgresql+psycopg://syncd@db/syncd",
        "SYNCD_SANDBOX_PORT": "8443",  # another tool's variable: not a settings section
        "SYNCD_CONFIG": "/ignored/because/a/path/was/given.toml",
    }
    settings = load_settings(config, env)
    assert settings.syncd.poll_interval_s == 5 and settings.syncd.dry_run
    assert settings.zendesk is not None and settings.zendesk.rate_share == 0.25
    assert settings.zendesk.subdomain == "acme"  # the rest of the section still from the file
    assert settings.metrics.port == 9999
    assert settings.graph is not None and settings.graph.lists == ["Onboarding", "Offboarding"]
    assert settings.syncd.store_url == "postgresql+psycopg://syncd@db/syncd"


def test_config_path_from_syncd_config_then_default(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(None, {"SYNCD_CONFIG": str(config)})
    assert settings.syncd.rules_dir == Path("/srv/rules")
    assert Path("/etc/syncd/syncd.toml") == settings_module.DEFAULT_CONFIG
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG", tmp_path / "etc" / "syncd.toml")
    message = _error(None, {})
    assert message.startswith(f"{tmp_path / 'etc' / 'syncd.toml'}: no such settings file")


def test_secrets_come_from_the_systemd_credentials_directory(
    config: Path, credentials: Path
) -> None:
    settings = load_settings(config, {"CREDENTIALS_DIRECTORY": str(credentials)})
    assert settings.zendesk is not None and settings.zendesk.token is not None
    assert settings.zendesk.token.get_secret_value() == TOKEN  # trailing newline trimmed
    assert settings.salesforce is not None and settings.salesforce.client_secret is not None
    assert settings.salesforce.client_secret.get_secret_value() == SF_SECRET
    assert settings.graph is not None and settings.graph.client_secret is not None
    assert settings.missing_secrets() == []


def test_secrets_dir_from_the_file_when_systemd_gives_none(config: Path, credentials: Path) -> None:
    config.write_text(config.read_text() + f'\n[secrets]\ndir = "{credentials}"\n')
    settings = load_settings(config, {})
    assert settings.zendesk is not None and settings.zendesk.token is not None
    assert settings.zendesk.token.get_secret_value() == TOKEN


def test_missing_secret_files_are_reported_not_fatal(config: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "zendesk_token").write_text("\n")  # an empty file is no secret
    settings = load_settings(config, {"CREDENTIALS_DIRECTORY": str(empty)})
    assert settings.missing_secrets() == [
        "zendesk_token",
        "salesforce_client_secret (or username + salesforce_private_key)",
        "graph_client_secret",
    ]


def test_a_missing_credentials_directory_is_an_error(config: Path, tmp_path: Path) -> None:
    message = _error(config, {"CREDENTIALS_DIRECTORY": str(tmp_path / "gone")})
    assert "CREDENTIALS_DIRECTORY: credentials directory" in message


def test_secrets_never_appear_in_repr_str_or_dumps(config: Path, credentials: Path) -> None:
    settings = load_settings(config, {"CREDENTIALS_DIRECTORY": str(credentials)})
    shown = [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())]
    for text in shown:
        for secret in (TOKEN, SF_SECRET, GRAPH_SECRET):
            assert secret not in text
    assert "**********" in settings.model_dump_json()


def test_secrets_in_the_file_are_refused(config: Path) -> None:
    config.write_text(config.read_text().replace('email = "', f'token = "{TOKEN}"\nemail = "'))
    message = _error(config, {})
    assert message.startswith(f"{config}: zendesk.token: secrets are read only from")
    assert "zendesk_token" in message and TOKEN not in message


def test_secrets_in_the_environment_are_refused(config: Path) -> None:
    message = _error(config, {"SYNCD_GRAPH__CLIENT_SECRET": GRAPH_SECRET})
    assert message.startswith("SYNCD_GRAPH__CLIENT_SECRET: graph.client_secret: secrets are")
    assert GRAPH_SECRET not in message


def test_errors_name_the_file_and_every_bad_key(config: Path) -> None:
    config.write_text(
        config.read_text()
        .replace('scheme = "https"', 'scheme = "https"\nrate_share = 2\nsubdomian = "typo"')
        .replace('objects = ["Opportunity"]', 'objects = "Opportunity"')
        .replace('timezone = "Europe/London"', 'timezone = "Mars/Olympus"')
    )
    message = _error(config, {"SYNCD_METRICS__PORT": "99999"})
    lines = message.splitlines()
    assert lines[0] == f"{config}: invalid settings"
    assert "  syncd.timezone: Value error, unknown IANA time zone 'Mars/Olympus'" in lines
    assert "  zendesk.rate_share: Input should be less than or equal to 1" in lines
    assert "  zendesk.subdomian: Extra inputs are not permitted" in lines
    assert "  salesforce.objects: Input should be a valid list" in lines
    assert (
        "  metrics.port (from SYNCD_METRICS__PORT): Input should be less than or equal to 65535"
        in lines
    )


def test_required_keys_of_a_configured_vendor(tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text('[graph]\nclient_id = "app"\n\n[zendesk]\nsubdomain = "acme"\n')
    lines = _error(path, {}).splitlines()
    assert "  graph.tenant_id: Field required" in lines
    assert "  zendesk.email: Field required" in lines


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text("[syncd]\npoll_interval_s = \n")
    assert _error(path, {}).startswith(f"{path}: not valid TOML: ")
    assert "line 2" in _error(path, {})


def test_ca_bundle_must_exist(config: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    config.write_text(config.read_text() + f'\n[tls]\nca_bundle = "{bundle}"\n')
    assert "  tls.ca_bundle: Path does not point to a file" in _error(config, {}).splitlines()
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert load_settings(config, {}).tls.ca_bundle == bundle


def test_the_example_file_documents_a_loadable_configuration(credentials: Path) -> None:
    example = Path(str(shipped(EXAMPLE_SETTINGS)))
    settings = load_settings(example, {"CREDENTIALS_DIRECTORY": str(credentials)})
    assert isinstance(settings, Settings) and settings.missing_secrets() == []
    text = example.read_text()
    for section in ("syncd", "secrets", "tls", "proxy", "zendesk", "salesforce", "graph"):
        assert f"[{section}]" in text
    for section, field in Settings.model_fields.items():
        (model,) = [a for a in get_args(field.annotation) or (field.annotation,) if a is not NONE]
        for key in model.model_fields:
            documented = f"{key} =" in text or SECRET_FILES.get((section, key), "?") in text
            assert documented, f"{section}.{key} is not documented in the example"


def test_salesforce_parent_fields_must_be_paths(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text('[salesforce]\nclient_id = "c"\nparent_fields = ["Task.What"]\n')
    with pytest.raises(SettingsError) as info:
        load_settings(config, env={})
    assert "parent_fields" in str(info.value) and "'Task.What'" in str(info.value)


@pytest.mark.parametrize(
    ("section", "line"),
    [
        ('[zendesk]\nsubdomain = "acme"\nemail = "a@acme.example"', 'scheme = "http"'),
        ('[salesforce]\nclient_id = "c"', 'token_url = "http://login.example/token"'),
        ('[salesforce]\nclient_id = "c"', 'instance_url = "http://acme.my.salesforce.com"'),
        ('[graph]\ntenant_id = "t"\nclient_id = "c"', 'authority = "http://login.example"'),
        ('[graph]\ntenant_id = "t"\nclient_id = "c"', 'base_url = "http://graph.example/v1.0"'),
    ],
)
def test_a_vendor_url_that_is_not_https_is_refused_at_load(tmp_path: Path, section: str,
                                                           line: str) -> None:
    """Each would carry a credential (Basic token, client secret, bearer token) in clear."""
    config = tmp_path / "syncd.toml"
    config.write_text(f'[syncd]\nstate_dir = "{tmp_path}"\n{section}\n{line}\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(config, env={})
    key = line.split(" =")[0]
    assert key in str(caught.value) and "https" in str(caught.value)


def test_webhooks_need_their_signing_secret_and_both_tls_files(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text("[webhooks]\nenabled = true\n")
    with pytest.raises(SettingsError, match="zendesk_webhook_secret"):
        load_settings(config, env={})
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "zendesk_webhook_secret").write_text("a-signing-secret-from-zendesk\n")
    settings = load_settings(config, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert settings.webhooks.signing_secret is not None
    assert settings.webhooks.signing_secret.get_secret_value() == "a-signing-secret-from-zendesk"
    assert "a-signing-secret" not in repr(settings)
    config.write_text('[webhooks]\nenabled = true\ntls_cert = "/etc/x.pem"\n')
    with pytest.raises(SettingsError, match="tls_cert and tls_key"):
        load_settings(config, env={"CREDENTIALS_DIRECTORY": str(creds)})
