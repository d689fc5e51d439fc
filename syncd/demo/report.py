"""How `syncd demo` shows its run: the timeline as it happens and the ✓/✗ table (rich), or the
same as one JSON document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from syncd.demo.checks import Result
from syncd.demo.runner import Run
from syncd.rehearsal.timeline import SYNCD, Event

_SYSTEM_STYLE = {"Zendesk": "green", "Salesforce": "blue", "SharePoint": "magenta",
                 "Mail": "yellow"}


def _day(at: datetime) -> str:
    return f"{at:%A} {at.day} {at:%B %Y}"


class TimelinePrinter:
    """Prints each event as it comes, one rule per simulated day."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._day: str | None = None

    def __call__(self, event: Event) -> None:
        day = _day(event.at)
        if day != self._day:
            self._day = day
            self.console.rule(f"[bold]{day}", align="left")
        person = event.by != SYNCD
        row = Table.grid(padding=(0, 1), expand=True)
        row.add_column(width=5, no_wrap=True)
        row.add_column(width=21, no_wrap=True, overflow="ellipsis", style="cyan")
        row.add_column(width=10, no_wrap=True, style=_SYSTEM_STYLE.get(event.system, ""))
        row.add_column(ratio=3, overflow="fold", style="italic" if person else "")
        row.add_column(ratio=2, overflow="fold", style="dim")
        what = Text(f"{event.by}: {event.what}" if person else event.what)
        row.add_row(f"{event.at:%H:%M}", event.process or "-", event.system, what, event.record)
        self.console.print(row)


def print_header(console: Console, run_from: datetime, run_to: datetime) -> None:
    console.print(
        f"[bold]syncd demo[/]: the real daemon runs the shipped rules (rules/) against the "
        f"sandbox, seeded with a small fictional company (config/sandbox-seed.yaml), from "
        f"{_day(run_from)} {run_from:%H:%M} to {_day(run_to)} {run_to:%H:%M} (simulated). "
        "Lines naming a person are the story's actions (in italics); every other line is "
        "something syncd did, as the vendors show it."
    )


def print_results(console: Console, run: Run, results: list[Result]) -> None:
    table = Table(title="Every process, judged from what the sandbox shows", title_justify="left")
    table.add_column("", width=1)
    table.add_column("process", style="cyan", no_wrap=True)
    table.add_column("what it must do")
    table.add_column("seen", justify="right", no_wrap=True)
    for r in results:
        mark = Text("✓", style="bold green") if r.ok else Text("✗", style="bold red")
        failed = [line for line in r.evidence if line.startswith("✗")]
        what = Text(r.check.title)
        for line in failed:
            what.append(f"\n{line}", style="red")
        table.add_row(mark, r.check.process, what, f"{len(r.evidence) - len(failed)}/"
                      f"{len(r.evidence)}")
    console.print(table)
    passed = sum(r.ok for r in results)
    style = "bold green" if passed == len(results) else "bold red"
    console.print(
        f"[{style}]{passed}/{len(results)} processes ✓[/] · simulated {_day(run.started)} "
        f"{run.started:%H:%M} → {_day(run.ended)} {run.ended:%H:%M} in {run.seconds:.0f} s of "
        f"real time ({run.cycles} daemon cycles)"
    )
    for failure in run.failures:
        console.print(f"[yellow]syncd reported: {failure}")


def document(run: Run, results: list[Result]) -> dict[str, Any]:
    """The run as JSON: the same timeline and verdicts as printed."""
    return {
        "ok": all(r.ok for r in results),
        "simulated": {"from": run.started.isoformat(), "to": run.ended.isoformat()},
        "real_seconds": round(run.seconds, 1),
        "cycles": run.cycles,
        "processes": [{"name": r.check.name, "process": r.check.process, "title": r.check.title,
                       "ok": r.ok, "evidence": r.evidence} for r in results],
        "timeline": [e.to_json() for e in run.events],
        "syncd_failures": run.failures,
    }
