"""`syncd sandbox`: the loopback HTTPS emulators of Zendesk, Salesforce and Graph."""

from __future__ import annotations

import signal
import tempfile
import threading
from pathlib import Path
from typing import Annotated

import typer

from syncd.sandbox.server import SandboxServer, load_fixture


def sandbox(
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one.")] = 0,
    dir: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Where to write ca.pem, sandbox.json and syncd.toml "
            "(default: a fresh temporary directory).",
        ),
    ] = None,
    seed: Annotated[
        Path | None, typer.Option(help="A fixture (YAML or JSON) to load at start.")
    ] = None,
    persist: Annotated[
        bool, typer.Option(help="Keep the data in DIR/state.json across restarts.")
    ] = False,
) -> None:
    """Run the sandbox until SIGINT or SIGTERM."""
    directory = dir or Path(tempfile.mkdtemp(prefix="syncd-sandbox-"))
    fixture = load_fixture(seed) if seed else None
    server = SandboxServer(host=host, port=port, directory=directory, persist=persist)
    if fixture:
        server.sandbox.seed(fixture)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    typer.echo(f"sandbox ready at {server.url} ({directory})", err=False)
    try:
        stop.wait()
    finally:
        server.stop()
