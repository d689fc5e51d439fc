"""`syncd demo`: every shipped process at work against the built-in sandbox (`make demo`)."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from syncd.demo.checks import judge
from syncd.demo.report import TimelinePrinter, document, print_header, print_results
from syncd.demo.runner import run_story
from syncd.demo.story import END, START
from syncd.logs import configure_logging
from syncd.sandbox.server import SandboxServer


def demo(
    json_out: Annotated[
        str | None,
        typer.Option("--json", metavar="PATH",
                     help="Also write the timeline and the verdicts as JSON to PATH; '-' is "
                          "stdout (the readable output then goes to stderr)."),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the sandbox running afterwards (Ctrl-C stops it).")
    ] = False,
    until: Annotated[
        str | None,
        typer.Option("--until", metavar="ISO",
                     help="Stop the story at this simulated instant (processes not reached "
                          "show ✗)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print only the final table.")] = False,
) -> None:
    """Run the shipped processes against the sandbox over simulated weeks, and judge each.

    The real daemon and the shipped rules, on an accelerated clock; every process is judged
    from the sandbox's state. Exit 1 if any process did not complete."""
    stop = _instant(until) if until else None
    console = Console(stderr=json_out == "-", highlight=False)
    workdir = Path(tempfile.mkdtemp(prefix="syncd-demo-"))
    try:
        with SandboxServer(directory=workdir / "sandbox") as server, _log_to(workdir, server):
            if not quiet:
                print_header(console, START, min(END, stop) if stop else END)
            printer = (lambda event: None) if quiet else TimelinePrinter(console)
            run = run_story(server, workdir, until=stop, on_event=printer)
            results = judge(run.seen)
            print_results(console, run, results)
            if json_out:
                _write_json(json_out, document(run, results))
            if keep:
                _serve_until_interrupted(console, server, workdir)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


@contextmanager
def _log_to(workdir: Path, server: SandboxServer) -> Iterator[None]:
    """syncd's own log goes to a file: the demo shows what the vendors show instead."""
    secrets = [server.info["zendesk"]["token"], server.info["salesforce"]["client_secret"],
               server.info["graph"]["client_secret"]]
    root = logging.getLogger()
    level = root.level
    with (workdir / "syncd.log").open("w") as stream:
        handler = configure_logging("keyvalue", "INFO", secrets, stream=stream)
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(level)


def _write_json(target: str, doc: dict[str, object]) -> None:
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if target == "-":
        sys.stdout.write(text)
    else:
        Path(target).write_text(text)


def _serve_until_interrupted(console: Console, server: SandboxServer, workdir: Path) -> None:
    console.print(
        f"\nThe sandbox is still running at [bold]{server.url}[/], its clock where the story "
        f"stopped. Point the vendors' own clients at it as README.md, 'The sandbox', shows: "
        f"{server.directory} has ca.pem, sandbox.json and syncd.toml; syncd's log is "
        f"{workdir / 'syncd.log'}. Ctrl-C (or SIGTERM) stops it; the directory stays."
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


def _instant(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not an ISO-8601 instant: {text!r}",
                                 param_hint="--until") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
