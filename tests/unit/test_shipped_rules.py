"""The rule files shipped in rules/ stay clean, documented, and runnable in the sandbox.

- `syncd check rules/` passes with no error and no warning;
- every rules file points editors at the JSON Schema on its first line;
- docs/processes.md has a section ("Rule file: `rules/<id>.yaml`") for every process file and
  names every rule id, and no section names a missing file;
- every named template is used by some rule;
- every field the rules read exists in the sandbox's example company (config/sandbox-seed.yaml):
  Zendesk custom fields, Salesforce custom fields, SharePoint list columns.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from syncd import resources
from syncd.cli import app
from syncd.resources import shipped
from syncd.rules.language.loader import load_rules

ROOT = Path(__file__).resolve().parents[2]
RULES = Path(str(shipped(resources.RULES)))
TEMPLATES = RULES / "templates"
DOCS = ROOT / "docs" / "processes.md"
SEED = Path(str(shipped(resources.SANDBOX_SEED)))
SCHEMA_LINE = "# yaml-language-server: $schema=../schema/rules.schema.json"
NOT_A_PROCESS = {"calendars"}  # shared definitions, not a process

RULE_FILES = sorted(RULES.glob("*.yaml"))
PROCESS_FILES = [p for p in RULE_FILES if p.stem not in NOT_A_PROCESS]


def _all_text() -> str:
    """Every rules file and named template, as one text."""
    files = [*RULE_FILES, *sorted(TEMPLATES.glob("*.j2"))]
    return "\n".join(p.read_text(encoding="utf-8") for p in files)


def _rule_ids(path: Path) -> list[str]:
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    return [rule["id"] for rule in data.get("rules") or []]


def test_check_is_clean_without_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(RULES.parent)
    result = CliRunner().invoke(app, ["check", "rules/"])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"ok: \d+ rules in \d+ files, \d+ calendars\n", result.output), \
        result.output
    loaded = load_rules(RULES)
    assert loaded.diagnostics == []
    assert len(loaded.ruleset.rules) == sum(len(_rule_ids(p)) for p in RULE_FILES)


def test_there_is_one_file_per_process() -> None:
    assert len(PROCESS_FILES) >= 12
    for path in PROCESS_FILES:
        assert _rule_ids(path), f"{path.name} defines no rule"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_first_line_references_the_schema(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == SCHEMA_LINE
    assert (path.parent / "../schema/rules.schema.json").resolve().is_file()


def test_docs_and_rule_files_match() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    documented = re.findall(r"^\*\*Rule file:\*\* `rules/([a-z0-9-]+)\.yaml`$", docs, re.M)
    assert len(documented) == len(set(documented)), "a process is documented twice"
    assert set(documented) == {p.stem for p in PROCESS_FILES}
    for path in PROCESS_FILES:
        assert f"| `rules/{path.name}` |" in docs, f"{path.name} missing from the index table"


@pytest.mark.parametrize("path", PROCESS_FILES, ids=lambda p: p.name)
def test_docs_name_every_rule(path: Path) -> None:
    docs = DOCS.read_text(encoding="utf-8")
    section = docs.split(f"**Rule file:** `rules/{path.name}`", 1)[1].split("\n## ", 1)[0]
    for rule_id in _rule_ids(path):
        # the four triage rules share one table row: `itpro-triage-priority-urgent`, `-high`...
        short = "`-" + rule_id.rsplit("-", 1)[1] + "`"
        assert f"`{rule_id}`" in section or short in section, f"{rule_id} not in its section"


def test_every_named_template_is_used() -> None:
    found = re.findall(r"template: (?:\"([^\"]+)\"|([^\s,}]+))", "\n".join(
        p.read_text(encoding="utf-8") for p in RULE_FILES))
    names = [quoted or bare for quoted, bare in found]
    assert "si-week-{{ week }}" in names
    patterns = [re.compile(".+".join(re.escape(part) for part in re.split(r"\{\{.*?\}\}", n)))
                for n in names]
    unused = [t.stem for t in TEMPLATES.glob("*.j2")
              if not any(p.fullmatch(t.stem) for p in patterns)]
    assert unused == []


def test_fields_the_rules_read_exist_in_the_sandbox_company() -> None:
    seed = YAML(typ="safe").load(SEED.read_text(encoding="utf-8"))
    text = _all_text()

    zendesk = {f.get("key") or f["title"] for f in seed["zendesk"]["ticket_fields"]}
    used = set(re.findall(r"custom\.(?:get\(')?([a-z_]+)", text)) - {"get"}
    assert used, "no Zendesk custom field found: the pattern is stale"
    assert used <= zendesk, f"Zendesk fields missing from the seed: {used - zendesk}"

    salesforce = {f["name"] if isinstance(f, dict) else f
                  for fields in seed["salesforce"]["settings"]["custom_fields"].values()
                  for f in fields}
    used = set(re.findall(r"\b([A-Za-z0-9_]+__c)\b", text))
    assert used, "no Salesforce custom field found: the pattern is stale"
    assert used <= salesforce, f"Salesforce fields missing from the seed: {used - salesforce}"

    lists = {sp["name"]: sp for sp in seed["graph"]["lists"]}
    columns = {"Title"} | {c["name"] if isinstance(c, dict) else c
                           for sp in lists.values() for c in sp["columns"]}
    used = set(re.findall(r"fields\.(?:get\(')?([A-Za-z]+)", text)) - {"get"}
    assert used, "no SharePoint column found: the pattern is stale"
    assert used <= columns, f"SharePoint columns missing from the seed: {used - columns}"
    named = set(re.findall(r"\blist: ([A-Z][A-Za-z ]+?)[,}]", text))
    assert named, "no SharePoint list found: the pattern is stale"
    assert named <= set(lists), f"SharePoint lists missing from the seed: {named - set(lists)}"
