"""Structured log lines, and no secret in them whichever way it was passed."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from syncd.logs import configure_logging, get_logger, settings_secrets
from syncd.settings import load_settings

SECRET = "zd-Tok3n+/=s3cr3t"  # characters that URL- and form-encoding change
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeW5jZCJ9.c2lnbmF0dXJl"
Configure = Callable[..., io.StringIO]


@pytest.fixture
def configure() -> Iterator[Configure]:
    """configure_logging into a buffer; the root logger is restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    chatty = {name: logging.getLogger(name).level for name in ("httpx", "apscheduler")}

    def _configure(fmt: str = "keyvalue", level: str = "INFO", secrets: tuple = ()) -> io.StringIO:
        stream = io.StringIO()
        configure_logging(fmt, level, secrets, stream=stream)  # type: ignore[arg-type]
        return stream

    yield _configure
    root.handlers[:], root.level = saved
    for name, level in chatty.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(False)


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_keyvalue_line_with_logfmt_quoting(configure: Configure) -> None:
    out = configure()
    get_logger("syncd.test").info(
        "poll_done",
        source="zendesk",
        changes=3,
        partial=False,
        cursor=None,
        subject='Printer on fire = "urgent"',
        note="two\nlines",
        tags=["vip", "escalated"],
        at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    )
    (line,) = _lines(out)
    assert re.fullmatch(
        r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info event=poll_done "
        r"logger=syncd\.test source=zendesk changes=3 partial=false cursor=null "
        r'subject="Printer on fire = \\"urgent\\"" note="two\\nlines" '
        r'tags="\[\\"vip\\",\\"escalated\\"\]" at=2026-03-02T09:00:00\+00:00',
        line,
    ), line


def test_json_line_with_bound_context(configure: Configure) -> None:
    out = configure("json")
    log = get_logger("syncd.executor").bind(record="zendesk.ticket:7", rule="triage")
    log.warning("intent_failed", intent="triage/abc", attempts=2, logger="shadowed")
    (line,) = _lines(out)
    event = json.loads(line)
    assert list(event)[:4] == ["ts", "level", "event", "logger"]
    assert event["ts"].endswith("Z")
    assert event | {"ts": None} == {
        "ts": None,
        "level": "warning",
        "event": "intent_failed",
        "logger": "syncd.executor",
        "record": "zendesk.ticket:7",
        "rule": "triage",
        "intent": "triage/abc",
        "attempts": 2,
        "logger_": "shadowed",  # a field cannot overwrite the line's own keys
    }


def test_an_exception_stays_on_one_line(configure: Configure) -> None:
    out = configure()
    try:
        raise ValueError("bad answer\nfrom vendor")
    except ValueError:
        get_logger("syncd.test").exception("cycle_failed", source="graph")
    (line,) = _lines(out)
    assert line.split(" ")[1:4] == ["level=error", "event=cycle_failed", "logger=syncd.test"]
    assert 'exc="Traceback (most recent call last):\\n' in line
    assert "ValueError: bad answer\\nfrom vendor" in line


def test_library_records_and_levels(configure: Configure) -> None:
    out = configure(level="INFO")
    logging.getLogger("apscheduler.executors").info("Running job every 30s")  # quieted
    logging.getLogger("syncd.test").debug("too detailed")
    logging.getLogger("somelib").warning("disk %s%% full", 91)
    (line,) = _lines(out)
    assert line.endswith(' level=warning event="disk 91% full" logger=somelib')


def test_reconfiguring_replaces_the_handler(configure: Configure) -> None:
    first = configure(secrets=("old-secret-1",))
    second = configure("json", secrets=("new-secret-2",))
    logging.getLogger("syncd.test").info("rotated old-secret-1 new-secret-2")
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["event"] == "rotated old-secret-1 ***"


def test_a_bad_format_string_logs_instead_of_raising(configure: Configure) -> None:
    out = configure()
    # Alone with syncd's handler: pytest's own capture handler would raise on this record.
    isolated = logging.getLogger("syncd.test.isolated")
    isolated.propagate = False
    isolated.handlers = [h for h in logging.getLogger().handlers if h.get_name() == "syncd"]
    try:
        isolated.info("attempt %d", SECRET)
    finally:
        isolated.handlers, isolated.propagate = [], True
    (line,) = _lines(out)
    assert "attempt %d (log arguments did not match the format)" in line
    assert SECRET not in line


@pytest.mark.parametrize("fmt", ["keyvalue", "json"])
def test_configured_secrets_never_reach_the_output(configure: Configure, fmt: str) -> None:
    out = configure(fmt, secrets=(SECRET, PEM))
    log = get_logger("syncd.test", vendor="zendesk")
    log.info("login with %s", SECRET)
    log.info("auth_retry", token_hint=f"prefix-{SECRET}-suffix", detail={"nested": [SECRET]})
    log.info("form_sent", body=f"grant_type=x&assertion_value={quote(SECRET, safe='')}")
    log.info("key_loaded", key=PEM.splitlines()[1])
    log.info("json_body", body=json.dumps({"pem": PEM}))
    try:
        raise ConnectionError(f"401 for https://acme.zendesk.com/?t={SECRET}")
    except ConnectionError:
        log.exception("poll_failed")
    text = out.getvalue()
    assert len(_lines(out)) == 6
    for leaked in (SECRET, quote(SECRET, safe=""), PEM, *PEM.splitlines()[1:2]):
        assert leaked not in text
        assert json.dumps(leaked)[1:-1] not in text
    assert text.count("***") >= 7


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("GET /token Authorization: Bearer abc.def-ghi", "GET /token Authorization: Bearer ***"),
        ("{'Authorization': 'Basic dXNlcjpw', 'X': 1}", "{'Authorization': 'Basic ***', 'X': 1}"),
        ("authorization=plainvalue", "authorization=***"),
        ("retry with bearer ya29.A0ARrdaM", "retry with bearer ***"),
        ("https://x/y?access_token=abc123&top=10", "https://x/y?access_token=***&top=10"),
        ("grant_type=x&client_secret=s3cr3t&scope=y", "grant_type=x&client_secret=***&scope=y"),
        ('{"refresh_token": "r1", "expires_in": 9}', '{"refresh_token": "***", "expires_in": 9}'),
        (f"assertion {JWT} refused", "assertion *** refused"),
        ("password: hunter2", "password: ***"),
        ("429 Too Many Requests, Retry-After: 30", "429 Too Many Requests, Retry-After: 30"),
    ],
)
def test_token_shapes_are_redacted_without_configuration(
    configure: Configure, message: str, shown: str
) -> None:
    out = configure("json")
    logging.getLogger("httpx").warning(message)
    assert json.loads(out.getvalue())["event"] == shown


def test_fields_named_like_credentials_are_hidden(configure: Configure) -> None:
    out = configure("json")
    get_logger("syncd.test").info(
        "token_refreshed",
        access_token="opaque-value-1",
        headers={"Authorization": "Token opaque-value-2", "Accept": "application/json"},
    )
    event = json.loads(out.getvalue())
    assert event["access_token"] == "***"
    assert event["headers"] == {"Authorization": "***", "Accept": "application/json"}


def test_settings_secrets_lists_every_loaded_secret(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "zendesk_token").write_text("zd-token-value\n")
    (credentials / "graph_client_secret").write_text("graph-secret-value")
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[syncd]\nstate_dir = "{tmp_path}"\n'
        '[zendesk]\nsubdomain = "acme"\nemail = "a@acme.example"\n'
        '[graph]\ntenant_id = "t"\nclient_id = "c"\n'
    )
    settings = load_settings(config, env={"CREDENTIALS_DIRECTORY": str(credentials)})
    basic = [base64.b64encode(b"a@acme.example/token:zd-token-value").decode(),
             base64.b64encode(b"c:graph-secret-value").decode()]  # as clients send them
    assert sorted(settings_secrets(settings)) == sorted(
        ["graph-secret-value", "zd-token-value", *basic])
