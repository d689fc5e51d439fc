"""`[syncd] watch_rules = false`: a saved rule file does not go live by itself; a reload
(SIGHUP, `systemctl reload`) still loads it."""

from __future__ import annotations

import time
from pathlib import Path

from e2e_world import TRIAGE, World, serving, wait_for

from syncd.daemon.runtime import open_runtime
from syncd.daemon.watch import CHECK_EVERY_S
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings

OK = b'syncd_reloads_total{result="ok"} 1.0'


def test_rule_files_saved_while_not_watched_wait_for_a_reload(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, TRIAGE)
    settings = load_settings(world.config, env={**world.env, "SYNCD_SYNCD__WATCH_RULES": "false"})
    rt = open_runtime(settings, world.clock)
    with serving(rt) as service:
        (world.rules_dir / "more.yaml").write_text(TRIAGE.replace("id: triage", "id: second"))
        time.sleep(3 * CHECK_EVERY_S)  # the watcher would have reloaded by now
        assert OK not in service.metrics.render()
        assert set(rt.engine.rules) == {"triage"}
        service.reload()
        wait_for(lambda: OK in service.metrics.render())
        assert set(rt.engine.rules) == {"triage", "second"}
