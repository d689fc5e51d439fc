"""The suite-wide secret scan really fails a run that leaks (tests/secret_scan.py), also when
the suite runs on several xdist workers (`make test`), where each worker holds its own logs,
secrets and temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

PLUGIN = (Path(__file__).resolve().parents[1] / "secret_scan.py").read_text()
SECRET = "zd-token-0123456789abcdef"

CONFTEST = f"""
import secret_scan
from secret_scan import pytest_configure, pytest_sessionfinish, pytest_testnodedown
secret_scan.secrets.add({SECRET!r})
"""


@pytest.fixture
def scanned(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(secret_scan=PLUGIN)
    pytester.makeconftest(CONFTEST)
    pytester.syspathinsert()
    return pytester


# one process, and two xdist workers reporting to the controller
WORKERS = pytest.mark.parametrize("workers", [
    pytest.param([], id="serial"),
    pytest.param(["-n", "2"], id="xdist", marks=pytest.mark.slow),  # three pytest processes
])


@WORKERS
def test_a_secret_in_a_log_record_fails_the_run(
    scanned: pytest.Pytester, workers: list[str]
) -> None:
    scanned.makepyfile(test_leak=f"""
import logging
def test_leaks():
    logging.getLogger("syncd.connector").info("calling with token %s", {SECRET!r})
""")
    result = scanned.runpytest_subprocess(*workers)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*SECRET SCAN FAILED: 1 leak*", "*log record*"])


@WORKERS
def test_a_secret_in_a_persisted_store_fails_the_run(
    scanned: pytest.Pytester, workers: list[str]
) -> None:
    scanned.makepyfile(test_leak=f"""
import sqlite3
def test_leaks(tmp_path):
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("create table audit (detail text)")
    db.execute("insert into audit values (?)", ("token={SECRET}",))
    db.commit()
""")
    result = scanned.runpytest_subprocess(*workers)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*persisted file*state.db*"])


@WORKERS
def test_a_clean_run_passes(scanned: pytest.Pytester, workers: list[str]) -> None:
    scanned.makepyfile(test_clean="""
import logging
def test_clean():
    logging.getLogger("syncd").info("calling with token ***")
""")
    assert scanned.runpytest_subprocess(*workers).ret == pytest.ExitCode.OK
