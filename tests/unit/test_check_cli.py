"""`syncd check` and `syncd schema` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncd.cli import app
from syncd.resources import RULES, shipped

FIXTURES = Path(__file__).parent / "rules_fixtures"
runner = CliRunner()


def test_clean_rules_exit_0_with_a_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES / "clean")
    result = runner.invoke(app, ["check", "."])
    assert result.exit_code == 0, result.output
    assert result.output == "ok: 7 rules in 3 files, 1 calendar\n"


def test_errors_exit_1_and_are_all_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES / "errors")
    result = runner.invoke(app, ["check", "unknown_key.yaml", "action_kind.yaml"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "action_kind.yaml:6:9: error: action 'create_task' cannot act on " \
        "sharepoint.file (it works on salesforce.opportunity, salesforce.account, " \
        "salesforce.task, salesforce.record)"
    assert "unknown_key.yaml:4:5: error: unknown key 'wen' (did you mean 'when'?)" in lines
    assert lines[-1] == "failed: 5 errors, 0 warnings"


def test_warnings_alone_exit_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES / "errors")
    result = runner.invoke(app, ["check", "warnings.yaml"])
    assert result.exit_code == 0
    assert result.output.splitlines()[-1] == "ok: 1 rule in 1 file, 0 calendars, 2 warnings"


def test_default_path_is_rules_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["check"]).output == "rules: error: no such file or directory\n" \
        "failed: 1 error, 0 warnings\n"
    (tmp_path / "rules").mkdir()
    result = runner.invoke(app, ["check"])
    assert (result.exit_code, result.output) == (0, "ok: 0 rules in 0 files, 0 calendars\n")


def test_shipped_rules_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(str(shipped(RULES))).parent)
    result = runner.invoke(app, ["check", "rules/"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")


def test_schema_prints_the_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    document = json.loads(result.output)
    assert document["$schema"].endswith("2020-12/schema")
    assert set(document["properties"]) == {"calendars", "defaults", "vars", "rules"}


def test_check_json_lists_every_diagnostic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES / "errors")
    result = runner.invoke(app, ["check", "--json", "unknown_key.yaml", "warnings.yaml"])
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["ok"] is False and document["errors"] >= 1 and document["warnings"] >= 1
    assert {"file": "unknown_key.yaml", "line": 4, "col": 5, "severity": "error",
            "message": "unknown key 'wen' (did you mean 'when'?)"} in document["diagnostics"]
    clean = runner.invoke(app, ["check", "--json", str(FIXTURES / "clean")])
    assert clean.exit_code == 0
    assert json.loads(clean.output) | {"diagnostics": []} == {
        "ok": True, "errors": 0, "warnings": 0, "rules": 7, "files": 3, "calendars": 1,
        "diagnostics": []}


def test_limits_are_checked_with_file_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "limits.yaml").write_text(
        "rules:\n"
        "  - id: close-stale\n"
        "    on: zendesk.ticket\n"
        "    limits:\n"
        "      per_hour: {zendsk.write: 3, write: 0}\n"
        "      per_day: {any: 4}\n"
        "    when: {status: new}\n"
        "    do: [{set: {status: solved}}]\n"
    )
    result = runner.invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 1
    text = result.output.replace(str(tmp_path) + "/", "")
    assert "limits.yaml:5:32: error: limits.per_hour.zendsk.write.[key]: input should be " \
        "'any', 'write', 'mail', 'zendesk.write', 'salesforce.write' or 'graph.write', got " \
        "'zendsk.write'" in text
    assert "limits.yaml:5:42: error: limits.per_hour.write: input should be greater than 0" in text
    assert "limits.yaml:6:7: error: unknown key 'per_day'" in text


def test_canary_mode_is_checked(tmp_path: Path) -> None:
    rule = "  - id: {id}\n    on: zendesk.ticket\n{extra}    when: {{status: new}}\n" \
        "    do: [{{tag: [x]}}]\n"
    extras = {
        "a": "    mode: canary\n",
        "b": "    canary: {percent: 10}\n",
        "c": "    mode: canary\n    canary: {percent: 10, scope: {tags: {contains: x}}}\n",
        "d": "    mode: canary\n    canary: {scope: {statsu: new}}\n",
        "e": "    mode: canary\n    canary: {percent: 100}\n",
        "f": "    mode: canary\n    canary: {percent: 12.5}\n",
    }
    (tmp_path / "canary.yaml").write_text(
        "rules:\n" + "".join(rule.format(id=k, extra=v) for k, v in extras.items()))
    result = runner.invoke(app, ["check", str(tmp_path)])
    lines = [line.replace(str(tmp_path) + "/", "") for line in result.output.splitlines()]
    assert lines == [
        "canary.yaml:2:5: error: mode: canary needs 'canary: {percent: N}' or "
        "'canary: {scope: ...}'",
        "canary.yaml:9:5: error: 'canary' goes with 'mode: canary'",
        "canary.yaml:15:13: error: a canary needs exactly one of 'percent' and 'scope'",
        "canary.yaml:21:22: error: unknown field 'statsu' for zendesk.ticket (did you mean "
        "'status'?)",
        "canary.yaml:27:23: error: canary.percent: input should be less than 100, got 100",
        "failed: 5 errors, 0 warnings",
    ]
