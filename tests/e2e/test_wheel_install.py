"""What a user installs works without the checkout: build the wheel, install it into a fresh
venv outside the source tree, and run what the README's install section runs.

pip reaches only the configured package index (and its caches) for syncd's dependencies.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "syncd" / "shipped"


def run(*args: str | Path, cwd: Path, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a build, an install from the index and the demo, on a busy host
def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, ROOT,
        cwd=tmp_path)
    (wheel,) = dist.glob("syncd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [str(p.relative_to(ROOT)) for p in SHIPPED.rglob("*")
               if p.is_file() and str(p.relative_to(ROOT)) not in names]
    assert missing == [], "files the program reads at run time are not in the wheel"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=tmp_path)
    syncd = venv / "bin" / "syncd"
    work = tmp_path / "elsewhere"  # neither the checkout nor where the wheel was built
    work.mkdir()

    assert run(syncd, "--version", cwd=work).startswith("syncd ")
    out = run(syncd, "init", work / "etc", cwd=work)
    assert "next steps:" in out
    assert run(syncd, "check", work / "etc" / "rules", cwd=work).startswith("ok: ")
    table = run(syncd, "demo", "--quiet", cwd=work, timeout=900)
    assert "processes ✓" in table
