"""Under journald each line carries its syslog priority, so `journalctl -p err -u syncd` finds
the errors; elsewhere lines stay as they are. `--log-level` / `[syncd] log_level` choose what
is written."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncd.cli import app
from syncd.logs import configure_logging, get_logger


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    root.handlers[:], root.level = saved
    logging.captureWarnings(False)


def _log_to(path: Path, env: dict[str, str], level: str = "INFO") -> list[str]:
    with path.open("w") as stream:
        configure_logging("keyvalue", level, stream=stream, env=env)
        log = get_logger("syncd.test")
        log.debug("looked")
        log.info("polled", source="zendesk")
        log.warning("reload_refused")
        log.error("intent_failed")
        logging.getLogger("syncd.test").critical("store_lost")
    return path.read_text().splitlines()


@pytest.mark.usefixtures("restore_root")
def test_journal_stream_lines_start_with_their_syslog_priority(tmp_path: Path) -> None:
    out = tmp_path / "journal"
    out.touch()
    stat = os.stat(out)
    lines = _log_to(out, {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"})
    assert [line[:3] for line in lines] == ["<6>", "<4>", "<3>", "<2>"]
    assert lines[0].startswith("<6>ts=") and "event=polled" in lines[0]


@pytest.mark.usefixtures("restore_root")
def test_other_streams_get_no_prefix(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.touch()
    lines = _log_to(tmp_path / "file", {"JOURNAL_STREAM": f"{os.stat(other).st_dev}:1"})
    assert lines and all(line.startswith("ts=") for line in lines)
    assert len(_log_to(tmp_path / "debug", {}, level="DEBUG")) == 5


def test_log_level_must_be_a_level() -> None:
    result = CliRunner().invoke(app, ["run", "--log-level", "loud", "--once"])
    assert result.exit_code == 2 and "one of debug, info, warning, error" in result.output
