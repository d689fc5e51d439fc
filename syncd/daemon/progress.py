"""How far a first sync has read, for a person at a terminal: a rich progress bar per source.

The log line `baseline_progress` says it page by page wherever logs go (the journal); the bar
is drawn only when stderr is a terminal, and log lines are printed above it while it runs.
No export tells its total in advance, so the bar pulses and counts pages and records.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn


class FirstSyncProgress(Protocol):
    def page(self, source: str, pages: int, records: int, through: datetime | None) -> None:
        """One more page of `source`'s first sync is stored."""

    def done(self, source: str) -> None:
        """`source`'s first sync has read to the end (or stopped)."""

    def close(self) -> None: ...


class Silent:
    """No terminal: the log lines say it all."""

    def page(self, source: str, pages: int, records: int, through: datetime | None) -> None:
        pass

    def done(self, source: str) -> None:
        pass

    def close(self) -> None:
        pass


class Bar:
    """A live progress bar on `console`, shown from the first page until every source that
    started one is done."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f} records, {task.fields[pages]}"),
            TextColumn("{task.fields[through]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {}
        self._streams: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    def page(self, source: str, pages: int, records: int, through: datetime | None) -> None:
        starting = not self._tasks
        if source not in self._tasks:
            self._tasks[source] = self._progress.add_task(f"{source}: first sync", total=None,
                                                          pages="", through="")
        shown = f"{pages} page{'s' if pages != 1 else ''}"
        read = f"through {through:%Y-%m-%d %H:%M}" if through else ""
        self._progress.update(self._tasks[source], completed=records, pages=shown, through=read)
        if starting:
            self._start()

    def done(self, source: str) -> None:
        task = self._tasks.get(source)
        if task is None:
            return
        self._progress.update(task, total=self._progress.tasks[task].completed)
        self._progress.stop_task(task)
        if all(t.finished for t in self._progress.tasks):
            self.close()

    def close(self) -> None:
        if not self._tasks:
            return
        self._progress.stop()
        for handler, stream in self._streams:
            handler.setStream(stream)
        self._streams.clear()
        self._tasks.clear()
        for task in list(self._progress.task_ids):
            self._progress.remove_task(task)

    def _start(self) -> None:
        """Start drawing; log handlers writing to the terminal write through rich's proxy of
        stderr meanwhile, so their lines go above the bar instead of through it."""
        real = sys.stderr
        self._progress.start()
        if sys.stderr is real:  # not redirected (the console is not the terminal's stderr)
            return
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is real:
                self._streams.append((handler, handler.setStream(sys.stderr)))


def for_stream(stream: TextIO) -> FirstSyncProgress:
    """A bar when `stream` (stderr) is a terminal, else nothing but the log lines."""
    if not stream.isatty():
        return Silent()
    return Bar(Console(file=stream))
