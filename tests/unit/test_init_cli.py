"""`syncd --version`, shell completion and `syncd init DIR`: what a new user starts from."""

from __future__ import annotations

import json
import re
import stat
from importlib.metadata import version
from pathlib import Path

import jsonschema
from typer.testing import CliRunner

from syncd import __version__
from syncd.cli import app
from syncd.settings import SECRET_FILES, load_settings

runner = CliRunner()


def test_version_is_the_installed_distributions() -> None:
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.output) == (0, f"syncd {__version__}\n")
    assert version("syncd") == __version__  # pyproject reads it from syncd.__version__


def test_shell_completion_script_is_offered() -> None:
    result = runner.invoke(app, ["--show-completion", "bash"], prog_name="syncd")
    assert result.exit_code == 0, result.output
    assert "_SYNCD_COMPLETE=complete_bash" in result.output


def test_init_writes_a_configuration_that_loads_and_checks(tmp_path: Path) -> None:
    target = tmp_path / "etc"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert "next steps:" in result.output
    assert f"doctor --config {target}/syncd.toml" in result.output

    credentials = target / "credentials"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o700
    for name in set(SECRET_FILES.values()) - {"salesforce_private_key"}:
        (credentials / name).write_text("s3cret\n")
    settings = load_settings(target / "syncd.toml", env={})
    assert settings.syncd.rules_dir == target / "rules"
    assert settings.missing_secrets() == []
    # the settings the shipped processes need, not the example's empty lists
    assert settings.graph is not None and "Releases" in settings.graph.lists
    assert settings.graph.watched_folders == ["Transcripts"]

    checked = runner.invoke(app, ["check", str(target / "rules")])
    assert checked.exit_code == 0 and checked.output.startswith("ok: "), checked.output
    assert list((target / "rules" / "templates").glob("*.j2"))


def test_init_puts_the_schema_where_the_rule_files_point(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 0
    rule_files = sorted((tmp_path / "rules").glob("*.yaml"))
    assert rule_files
    for path in rule_files:
        first = path.read_text().splitlines()[0]
        ref = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
        assert ref, f"{path.name}: {first}"
        schema = json.loads((path.parent / ref[1]).read_text())
        jsonschema.Draft202012Validator.check_schema(schema)


def test_init_unit_runs_this_installation_with_the_written_settings(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 0
    unit = (tmp_path / "syncd.service").read_text()
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    assert exec_start.endswith(f"/syncd run --config {tmp_path}/syncd.toml")
    assert f"LoadCredential=zendesk_token:{tmp_path}/credentials/zendesk_token" in unit
    assert "/etc/syncd/" not in unit and "/opt/syncd" not in unit


def test_init_does_not_overwrite_without_force(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 0
    (tmp_path / "syncd.toml").write_text("# mine\n")
    again = runner.invoke(app, ["init", str(tmp_path)])
    assert again.exit_code == 1 and "--force" in again.output
    assert (tmp_path / "syncd.toml").read_text() == "# mine\n"
    assert runner.invoke(app, ["init", "--force", str(tmp_path)]).exit_code == 0
    assert (tmp_path / "syncd.toml").read_text() != "# mine\n"


def test_the_example_settings_say_what_dry_run_does_to_what_it_plans() -> None:
    from syncd.resources import EXAMPLE_SETTINGS, shipped

    text = shipped(EXAMPLE_SETTINGS).read_text()
    before = text.split("\ndry_run = false", 1)[0].rsplit("\n\n", 1)[-1]
    assert "skipped for good" in before and "not carried out later" in before
