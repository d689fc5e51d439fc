"""`syncd rehearse`: try rules over simulated weeks against a running sandbox before they go
live: the demo's accelerated clock (syncd/rehearsal/runner.py) on your own world and story."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from syncd.daemon.cycle import CycleReport
from syncd.demo.report import TimelinePrinter
from syncd.rehearsal.client import NotASandbox, SandboxClient
from syncd.rehearsal.runner import Rehearsal, rehearse
from syncd.rehearsal.script import ScriptError, instant, load_script
from syncd.settings import Settings, load_settings


def rehearse_command(
    sandbox: Annotated[Path, typer.Option("--sandbox", metavar="DIR",
                       help="The running sandbox's directory (sandbox.json, syncd.toml).")],
    until: Annotated[str, typer.Option("--until", metavar="ISO",
                     help="The simulated instant to stop at.")],
    start: Annotated[str | None, typer.Option("--from", metavar="ISO",
                     help="The simulated instant to start at (default: the sandbox's clock).")
                     ] = None,
    rules: Annotated[Path | None, typer.Option("--rules", metavar="DIR",
                     help="The rules to rehearse (default: the configuration's rules_dir).")
                     ] = None,
    config: Annotated[Path | None, typer.Option("--config", metavar="FILE",
                      help="syncd settings (default: DIR/syncd.toml, written by the sandbox).")
                      ] = None,
    script: Annotated[Path | None, typer.Option("--script", metavar="FILE",
                      help="What people do, and when (YAML; see docs).")] = None,
    stop_at: Annotated[list[str] | None, typer.Option("--stop-at", metavar="ISO",
                       help="Pause after the cycle at this instant (repeatable): act in the "
                            "sandbox, then press Enter.")] = None,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", metavar="DIR",
                         help="syncd's state for the rehearsal (default: a fresh one).")] = None,
    first_sync: Annotated[str, typer.Option("--first-sync",
                          help="'fire': the sandbox's records are the story's news (default); "
                               "'baseline': as going live would treat them.")] = "fire",
    json_out: Annotated[str | None, typer.Option("--json", metavar="PATH",
                        help="Also write the timeline as JSON to PATH; '-' is stdout (the "
                             "readable output then goes to stderr).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print only the summary.")] = False,
) -> None:
    """Rehearse rules against a running sandbox over simulated time, weeks in seconds.

    The real daemon's cycles, with its clock and the sandbox's moved together to the next
    instant at which something can happen. Refuses anything that is not a sandbox. Exit 1 if
    a cycle reported a failure."""
    console = Console(stderr=json_out == "-", highlight=False)
    client = SandboxClient.from_directory(sandbox) if sandbox.is_dir() else None
    scratch: Path | None = None  # syncd's state, when no --state-dir keeps it
    try:
        if client is None:
            raise NotASandbox(f"{sandbox}: no such directory")
        clock = client.ensure_sandbox()
        if state_dir is None:
            state_dir = scratch = Path(tempfile.mkdtemp(prefix="syncd-rehearse-"))
        settings = _settings(config or sandbox / "syncd.toml", rules, state_dir, first_sync)
        elsewhere = _elsewhere(settings, client.url)
        if elsewhere:
            raise NotASandbox(f"{', '.join(elsewhere)} in the settings point away from the "
                              f"sandbox at {client.url}: a rehearsal never touches a real "
                              "vendor")
        begin = _when(start or clock, "--from")
        end = _when(until, "--until")
        stops = sorted({_when(s, "--stop-at") for s in stop_at or []})
        steps = load_script(script, client) if script else []
    except (NotASandbox, ScriptError) as exc:
        console.print(f"[red]error:[/] {exc}")
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise typer.Exit(2) from None
    if end < begin:
        raise typer.BadParameter("--until is before --from", param_hint="--until")
    if not quiet:
        console.print(f"[bold]syncd rehearse[/]: the rules in {settings.syncd.rules_dir} "
                      f"against the sandbox at {client.url}, from {begin.isoformat()} to "
                      f"{end.isoformat()} (simulated).")
    printer = (lambda event: None) if quiet else TimelinePrinter(console)
    try:
        run = rehearse(settings, client, begin, end, script=steps, stops=stops,
                       on_event=printer, at_stop=_pause(console))
    except ScriptError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    finally:
        client.close()
        if scratch is not None:  # a fresh state per rehearsal (--state-dir keeps one)
            shutil.rmtree(scratch, ignore_errors=True)
    _summary(console, run)
    if json_out:
        doc = {**run.to_json(), "until": end.isoformat(), "sandbox": client.url}
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        sys.stdout.write(text) if json_out == "-" else Path(json_out).write_text(text)
    raise typer.Exit(1 if run.failures else 0)


def _settings(path: Path, rules: Path | None, state: Path, first_sync: str) -> Settings:
    if first_sync not in ("fire", "baseline"):
        raise typer.BadParameter("'fire' or 'baseline'", param_hint="--first-sync")
    env = {
        "SYNCD_SYNCD__STATE_DIR": str(state),
        "SYNCD_SYNCD__FIRST_SYNC": first_sync,
        "SYNCD_METRICS__ENABLED": "false",
    }
    if rules is not None:
        env["SYNCD_SYNCD__RULES_DIR"] = str(rules.resolve())
    return load_settings(path, env=env)


def _elsewhere(settings: Settings, url: str) -> list[str]:
    """The configured vendor endpoints that are not the sandbox's."""
    netloc = url.split("://", 1)[-1]
    found = []
    if settings.zendesk is not None and settings.zendesk.netloc != netloc:
        found.append("zendesk.netloc")
    if settings.salesforce is not None:
        found += [f"salesforce.{name}" for name in ("token_url", "instance_url")
                  if not str(getattr(settings.salesforce, name) or url).startswith(url)]
    if settings.graph is not None:
        found += [f"graph.{name}" for name in ("authority", "base_url")
                  if not str(getattr(settings.graph, name)).startswith(url)]
    return found


def _when(text: str, option: str) -> datetime:
    try:
        return instant(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO-8601 instant: {text!r}",
                                 param_hint=option) from None


def _pause(console: Console):  # type: ignore[no-untyped-def]
    def pause(at: datetime, report: CycleReport) -> None:
        console.print(f"[bold]paused at {at.isoformat()}[/] (simulated; the sandbox's clock "
                      "stands there): look or act through the vendors' APIs, then press "
                      "Enter to go on.")
        sys.stdin.readline()  # end of input (a script, no terminal): go on at once

    return pause


def _summary(console: Console, run: Rehearsal) -> None:
    console.print(f"{len(run.events)} events · simulated {run.started.isoformat()} → "
                  f"{run.ended.isoformat()} in {run.seconds:.0f} s of real time "
                  f"({run.cycles} daemon cycles)")
    for failure in run.failures:
        console.print(f"[red]failure:[/] {failure}")
