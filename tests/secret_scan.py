"""A pytest plugin: no configured secret may appear in any log record or persisted state the
whole suite produces (issue 7). It collects every log record, and at the end scans them and
every SQLite store and sandbox state file under the session's temporary directory for the
secrets of every sandbox the suite started and every credentials file it wrote. Under xdist
each worker scans its own records and files and hands what it found to the controller.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

MIN_SECRET_LEN = 12  # shorter test values ("s3cret") could match stored bytes by chance


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string is not ours to judge here
            text = str(record.msg)
        extra = " ".join(str(v) for k, v in vars(record).items() if k not in _STANDARD)
        self.texts.append(f"{record.name} {text} {extra} {record.exc_text or ''}")


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
_collector = _Collector()
secrets: set[str] = set()


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    root.addHandler(_collector)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def _persisted_files(base: Path) -> list[Path]:
    patterns = ("*.db", "*.db-wal", "state.json")
    return [p for pattern in patterns for p in base.rglob(pattern) if p.is_file()]


def _credential_values(base: Path) -> set[str]:
    return {p.read_text(errors="replace").strip() for p in base.rglob("credentials/*")
            if p.is_file()}


def _leaks(session: pytest.Session) -> list[str]:
    factory = getattr(session.config, "_tmp_path_factory", None)
    base = factory.getbasetemp() if factory is not None else None
    known = set(secrets) | (_credential_values(base) if base else set())
    known = {s for s in known if len(s) >= MIN_SECRET_LEN}
    leaks: list[str] = []
    for text in _collector.texts:
        leaks += [f"log record: {text[:120]!r}" for s in known if s in text]
    for path in _persisted_files(base) if base else []:
        data = path.read_bytes()
        leaks += [f"persisted file {path}" for s in known if s.encode() in data]
    return leaks


_worker_leaks: list[str] = []  # on an xdist controller: what its workers found


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """An xdist worker has finished: keep the leaks it found in its own logs and files."""
    _worker_leaks.extend(getattr(node, "workeroutput", {}).get("secret_leaks", []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = _leaks(session)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports and fails the run
        workeroutput["secret_leaks"] = leaks
        return
    leaks += _worker_leaks
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"SECRET SCAN FAILED: {len(leaks)} leak(s)", red=True)
            for leak in leaks[:20]:
                reporter.write_line(f"  {leak}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
