"""The rules directory watcher: a change is reported once, after it has settled."""

from __future__ import annotations

import os
from pathlib import Path

from syncd.daemon.watch import RulesWatcher


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def touch(path: Path, text: str, stamp: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(stamp, stamp))


def test_a_change_is_reported_once_it_settled(tmp_path: Path) -> None:
    touch(tmp_path / "a.yaml", "rules: []\n", 1_000)
    ticks = Ticks()
    watcher = RulesWatcher(tmp_path, every_s=2.0, clock=ticks)
    ticks.now = 2.0
    assert not watcher.changed()  # nothing changed
    touch(tmp_path / "a.yaml", "rules: [] # edited\n", 2_000)
    ticks.now = 3.0
    assert not watcher.changed()  # not looked yet: checks every 2 s
    ticks.now = 4.0
    assert not watcher.changed()  # seen once: maybe still being written
    touch(tmp_path / "b.yaml", "rules: []\n", 3_000)  # a second file of the same save
    ticks.now = 6.0
    assert not watcher.changed()
    ticks.now = 8.0
    assert watcher.changed()  # settled
    watcher.loading()
    ticks.now = 10.0
    assert not watcher.changed()  # loaded (accepted or refused): not again until it changes


def test_nested_files_and_removals_count(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    touch(tmp_path / "templates" / "mail.txt", "Hello", 1_000)
    ticks = Ticks()
    watcher = RulesWatcher(tmp_path, every_s=1.0, clock=ticks)
    (tmp_path / "templates" / "mail.txt").unlink()
    for step in (1.0, 2.0):
        ticks.now = step
        found = watcher.changed()
    assert found
