"""Notice that the rules directory changed, by polling its files' size and mtime (no inotify
dependency; a few stat calls every couple of seconds).

Debounced: a change is reported once the directory has looked the same on two checks in a
row, so an editor's temporary files or a `git pull` touching several files cause one reload
of the finished state, not one per file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

CHECK_EVERY_S = 2.0

Fingerprint = frozenset[tuple[str, int, int]]


def fingerprint(directory: Path) -> Fingerprint:
    """(relative path, mtime in ns, size) of every file under `directory`; empty if missing."""
    found = set()
    try:
        paths = [p for p in directory.rglob("*") if p.is_file()]
        for path in paths:
            stat = path.stat()
            found.add((str(path.relative_to(directory)), stat.st_mtime_ns, stat.st_size))
    except OSError:  # a file vanished mid-scan: the next check sees the settled state
        return frozenset()
    return frozenset(found)


class RulesWatcher:
    def __init__(self, directory: Path, every_s: float = CHECK_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self.every_s = every_s
        self._clock = clock
        self._loaded = fingerprint(directory)
        self._seen = self._loaded
        self._checked = clock()

    def loading(self) -> None:
        """A reload is about to read the directory: what it reads now counts as loaded,
        whether it is accepted or refused (a refused set is not retried until it changes)."""
        self._loaded = self._seen = fingerprint(self.directory)

    def changed(self) -> bool:
        """Whether the directory changed and has settled since the last load; cheap to call
        often (it looks at most every `every_s` seconds)."""
        now = self._clock()
        if now - self._checked < self.every_s:
            return False
        self._checked = now
        current = fingerprint(self.directory)
        settled = current == self._seen
        self._seen = current
        return settled and current != self._loaded
